from odoo import fields, models


class HrEmployee(models.Model):
    _inherit = "hr.employee"

    odyssee_user_guid = fields.Char(
        string="Odyssee user GUID",
        copy=False,
        index="btree_not_null",
        groups="hr.group_hr_user",
        help="The technician's user in Odyssee; imported timesheets are booked on this employee.",
    )
