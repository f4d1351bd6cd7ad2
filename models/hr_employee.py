from odoo import fields, models


class HrEmployee(models.Model):
    _name = "hr.employee"
    _inherit = ["hr.employee", "construction.odyssee.bound.mixin"]
    _odyssee_id_field = "odyssee_user_guid"

    # A view of the employee's binding in its company's Odyssee backend.
    odyssee_user_guid = fields.Char(
        string="Odyssee user GUID",
        compute="_compute_odyssee_id",
        inverse="_inverse_odyssee_id",
        search="_search_odyssee_id",
        groups="hr.group_hr_user",
        help="The technician's user in Odyssee; imported timesheets are booked on this employee.",
    )
