from odoo import api, fields, models
from odoo.exceptions import ValidationError


class ConstructionMaintenancePlan(models.Model):
    """A preventive maintenance plan: items due by engine hours, kilometres or days.

    A plan applies to the machines of its categories and to the machines named on
    it, in its company. Each item is tracked per machine by a
    ``construction.maintenance.schedule`` row.
    """

    _name = "construction.maintenance.plan"
    _description = "Preventive maintenance plan"
    _inherit = ["mail.thread"]
    _order = "name, id"

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True, tracking=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    category_ids = fields.Many2many(
        "maintenance.equipment.category",
        "construction_maintenance_plan_category_rel",
        "plan_id",
        "category_id",
        string="Equipment categories",
        help="Every machine of these categories follows the plan.",
    )
    equipment_ids = fields.Many2many(
        "maintenance.equipment",
        "construction_maintenance_plan_equipment_rel",
        "plan_id",
        "equipment_id",
        string="Machines",
        check_company=True,
        help="Machines that follow the plan whatever their category.",
    )
    item_ids = fields.One2many("construction.maintenance.plan.item", "plan_id", string="Items")
    horizon_days = fields.Integer(
        string="Forecast horizon (days)",
        default=7,
        help="A request opens when an item's forecast due date falls within this many days, "
        "even before a trigger reaches its due-soon threshold (0: thresholds only).",
    )
    send_to_odyssee = fields.Boolean(
        help="Queue the requests the plan opens for Odyssee, like a dispatcher's Send.",
    )
    schedule_ids = fields.One2many("construction.maintenance.schedule", "plan_id")

    @api.constrains("horizon_days")
    def _check_horizon(self):
        for plan in self:
            if plan.horizon_days < 0:
                raise ValidationError(self.env._("The forecast horizon cannot be negative."))
