from odoo import fields, models


class AccountAnalyticLine(models.Model):
    _inherit = "account.analytic.line"

    odyssee_usage_line_id = fields.Many2one(
        "construction.odyssee.usage.line",
        string="Odyssee line",
        index="btree_not_null",
        ondelete="set null",
        copy=False,
    )
    odyssee_approval_guid = fields.Char(related="odyssee_usage_line_id.approval_guid")
    odyssee_price = fields.Float(related="odyssee_usage_line_id.price", string="Odyssee price")
    odyssee_under_warranty = fields.Boolean(
        related="odyssee_usage_line_id.is_under_warranty", string="Under warranty"
    )
    odyssee_invoiceable = fields.Boolean(
        related="odyssee_usage_line_id.invoiceable", string="Invoiceable (Odyssee)"
    )
