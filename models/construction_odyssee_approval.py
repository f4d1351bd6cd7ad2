from odoo import api, fields, models

from ..set_wise_insert import create_records


class ConstructionOdysseeApproval(models.Model):
    """A signed job approval imported from Odyssee, with the work it covers."""

    _name = "construction.odyssee.approval"
    _description = "Odyssee job approval"
    _inherit = ["construction.odyssee.bound.mixin"]
    _odyssee_id_field = "odyssee_guid"
    _order = "modified_dateutc desc, id desc"
    _rec_names_search = ["odyssee_guid", "job_guid", "request_id"]

    backend_id = fields.Many2one(
        "construction.odyssee.backend", required=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one(related="backend_id.company_id", store=True, index=True)
    # A view of the record's binding in the backend's external system.
    odyssee_guid = fields.Char(
        string="Approval GUID",
        compute="_compute_odyssee_id",
        inverse="_inverse_odyssee_id",
        search="_search_odyssee_id",
    )
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

    @api.depends("request_id", "modified_dateutc")
    def _compute_display_name(self):
        for approval in self:
            approval.display_name = self.env._(
                "Approval of %(job)s, %(when)s",
                job=approval.request_id.display_name or approval.job_guid[:8],
                when=(approval.modified_dateutc or "")[:10],
            )

    @api.depends("line_ids.issue")
    def _compute_issue_count(self):
        for approval in self:
            approval.issue_count = len(approval.line_ids.filtered("issue"))

    @api.model
    def _create_imported(self, vals_list):
        """Create new approvals of an import with their stored fields given, in one INSERT.

        Computed after the insert, they would cost an ``UPDATE`` of every approval
        of a page. The issue count starts at 0: the approval's lines, imported
        next, set it if one of them has an issue.
        """
        Request = self.env["maintenance.request"].sudo()
        Backend = self.env["construction.odyssee.backend"].sudo()
        # One read of the page's machines, not one per approval.
        requests = Request.browse({vals.get("request_id") for vals in vals_list} - {False, None})
        requests.equipment_id  # noqa: B018
        return create_records(
            self,
            [
                vals
                | {
                    "company_id": Backend.browse(vals["backend_id"]).company_id.id,
                    "equipment_id": Request.browse(vals.get("request_id")).equipment_id.id,
                    "issue_count": 0,
                }
                for vals in vals_list
            ],
        )

    def _odyssee_systems(self):
        return {record.id: record.backend_id.external_system_id for record in self}
