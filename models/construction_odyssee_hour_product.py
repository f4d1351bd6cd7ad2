from odoo import fields, models


class ConstructionOdysseeHourProduct(models.Model):
    """The service product that bills an Odyssee hour type (its line code)."""

    _name = "construction.odyssee.hour.product"
    _description = "Service product per Odyssee hour type"

    backend_id = fields.Many2one("construction.odyssee.backend", required=True, ondelete="cascade")
    company_id = fields.Many2one(related="backend_id.company_id", store=True)
    line_code = fields.Char(string="Odyssee line code", required=True, help="e.g. NORMAL, TRAVEL")
    product_id = fields.Many2one(
        "product.product", required=True, domain="[('type', '=', 'service')]"
    )

    _sql_constraints = [
        ("backend_code_uniq", "unique(backend_id, line_code)", "One product per line code."),
    ]
