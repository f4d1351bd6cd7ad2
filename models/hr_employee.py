from odoo import fields, models


class HrEmployee(models.Model):
    _inherit = "hr.employee"

    # A view of the employee's binding in its company's Odyssee backend.
    odyssee_user_guid = fields.Char(
        string="Odyssee user GUID",
        compute="_compute_odyssee_user_guid",
        inverse="_inverse_odyssee_user_guid",
        search="_search_odyssee_user_guid",
        groups="hr.group_hr_user",
        help="The technician's user in Odyssee; imported timesheets are booked on this employee.",
    )

    def _compute_odyssee_user_guid(self):
        self.env["construction.external.id"]._read_into(
            self, "odyssee_user_guid", self.env["construction.odyssee.backend"]._systems_of(self)
        )

    def _inverse_odyssee_user_guid(self):
        self.env["construction.external.id"]._write_from(
            self, "odyssee_user_guid", self.env["construction.odyssee.backend"]._systems_of(self)
        )

    def _search_odyssee_user_guid(self, operator, value):
        return self.env["construction.external.id"]._search_bound(self._name, operator, value)
