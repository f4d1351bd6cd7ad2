from odoo import api, fields, models
from odoo.exceptions import ValidationError


class ConstructionOdysseeInvoiceLink(models.Model):
    """Which imported Odyssee lines an invoice line bills (the invoice's provenance).

    A line is *billed* while its invoice is draft or posted and not reversed.
    A partial unique index allows one billing link per imported line, so no two
    invoices, even created by concurrent wizards, can bill the same work;
    cancelling or reversing the invoice frees the line, and the link stays as
    history.
    """

    _name = "construction.odyssee.invoice.link"
    _description = "Odyssee work billed by an invoice line"

    usage_line_id = fields.Many2one(
        "construction.odyssee.usage.line", required=True, index=True, ondelete="restrict"
    )
    move_line_id = fields.Many2one(
        "account.move.line", required=True, index=True, ondelete="cascade"
    )
    move_id = fields.Many2one(related="move_line_id.move_id", store=True, index=True)
    company_id = fields.Many2one(related="move_line_id.company_id", store=True)
    approval_guid = fields.Char(related="usage_line_id.approval_guid", store=True)
    quantity = fields.Float(related="usage_line_id.quantity")
    kind = fields.Selection(related="usage_line_id.kind")
    billing = fields.Boolean(compute="_compute_billing", store=True, index=True)

    def init(self):
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS construction_odyssee_invoice_link_billing_uniq
               ON construction_odyssee_invoice_link (usage_line_id) WHERE billing"""
        )

    @staticmethod
    def _bills(move):
        return move.state in ("draft", "posted") and move.payment_state != "reversed"

    @api.model_create_multi
    def create(self, vals_list):
        # Say clearly what the unique index would refuse anyway.
        move_lines = self.env["account.move.line"].browse([v["move_line_id"] for v in vals_list])
        billing_lines = [
            vals["usage_line_id"]
            for vals, move_line in zip(vals_list, move_lines, strict=True)
            if self._bills(move_line.move_id)
        ]
        if billing_lines:
            self.flush_model(["billing"])
            existing = self.search(
                [("usage_line_id", "in", billing_lines), ("billing", "=", True)], limit=1
            )
            if existing:
                raise ValidationError(
                    self.env._(
                        "%(line)s is already billed by %(invoice)s.",
                        line=existing.usage_line_id.display_name,
                        invoice=existing.move_id.display_name,
                    )
                )
        return super().create(vals_list)

    @api.depends("move_id.state", "move_id.payment_state")
    def _compute_billing(self):
        for link in self:
            link.billing = self._bills(link.move_id)
