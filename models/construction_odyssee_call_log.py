from odoo import fields, models


class ConstructionOdysseeCallLog(models.Model):
    """Every call made to Odyssee: what, how long, how it ended. Never a credential."""

    _name = "construction.odyssee.call.log"
    _description = "Odyssee API call"
    _order = "id desc"
    _rec_name = "path"

    backend_id = fields.Many2one(
        "construction.odyssee.backend", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="backend_id.company_id", store=True)
    method = fields.Char(required=True)
    path = fields.Char(required=True)
    query = fields.Char()
    status = fields.Integer()
    duration_ms = fields.Float(string="Duration (ms)", digits=(10, 1))
    retries = fields.Integer()
    correlation_id = fields.Char(string="Correlation ID", index=True)
    error = fields.Text()
