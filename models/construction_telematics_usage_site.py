"""Engine and idle hours per machine, day and job site, rolled up with the daily utilisation.

Written by ``construction.telematics.usage._rollup`` in the same statement as the
machine's daily rollup: each engine-hour and idle-hour rise goes to the job site
the machine was on at its later reading (its site visits); no job site is off
site. A machine's rows of a day add up to that day's engine and idle hours.
"""

from odoo import fields, models


class ConstructionTelematicsUsageSite(models.Model):
    _name = "construction.telematics.usage.site"
    _description = "Daily machine utilisation per job site"
    _order = "day desc, equipment_id, project_id"
    _rec_name = "day"
    _log_access = False

    equipment_id = fields.Many2one(
        "maintenance.equipment", string="Machine", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    category_id = fields.Many2one("maintenance.equipment.category", readonly=True)
    day = fields.Date(required=True, readonly=True, help="Local day in the company's time zone.")
    project_id = fields.Many2one(
        "project.project",
        string="Job site",
        readonly=True,
        ondelete="set null",
        help="Where the machine was, from its site visits; empty when it was off every site.",
    )
    engine_hours = fields.Float(string="Engine hours", digits=(16, 2), readonly=True)
    idle_hours = fields.Float(string="Idle hours", digits=(16, 2), readonly=True)
