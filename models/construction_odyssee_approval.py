from odoo import api, fields, models


class ConstructionOdysseeApproval(models.Model):
    """A signed job approval imported from Odyssee, with the work it covers."""

    _name = "construction.odyssee.approval"
    _description = "Odyssee job approval"
    _order = "modified_dateutc desc, id desc"
    _rec_name = "odyssee_guid"

    backend_id = fields.Many2one(
        "construction.odyssee.backend", required=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one(related="backend_id.company_id", store=True, index=True)
    odyssee_guid = fields.Char(string="Approval GUID", required=True)
    job_guid = fields.Char(string="Job GUID", required=True, index=True)
    request_id = fields.Many2one("maintenance.request", index="btree_not_null", ondelete="set null")
    equipment_id = fields.Many2one(related="request_id.equipment_id", store=True)
    modified_dateutc = fields.Char(string="Modified in Odyssee (UTC)")
    signed_by = fields.Char()
    customer_remarks = fields.Text()
    is_signed = fields.Boolean()
    rating = fields.Integer()
    pdf_attachment_id = fields.Many2one("ir.attachment", string="Signed PDF", ondelete="set null")
    line_ids = fields.One2many("construction.odyssee.usage.line", "approval_id", string="Lines")
    issue_count = fields.Integer(compute="_compute_issue_count", store=True)

    _sql_constraints = [
        (
            "backend_guid_uniq",
            "unique(backend_id, odyssee_guid)",
            "This Odyssee approval was already imported.",
        ),
    ]

    @api.depends("line_ids.issue")
    def _compute_issue_count(self):
        for approval in self:
            approval.issue_count = len(approval.line_ids.filtered("issue"))
