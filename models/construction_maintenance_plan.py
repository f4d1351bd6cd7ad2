from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError


class ConstructionMaintenancePlan(models.Model):
    """A preventive maintenance plan: items due by engine hours, kilometres or days.

    A plan applies to the machines of its categories and to the machines named on
    it, in its company. Each item is tracked per machine by a
    ``construction.maintenance.schedule`` row.
    """

    _name = "construction.maintenance.plan"
    _description = "Preventive maintenance plan"
    _inherit = ["mail.thread", "construction.cached.config.mixin"]
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
    # No one2many to the schedules: as the inverse of their plan_id, its cache would be
    # rebuilt for every schedule created (quadratic when a plan starts on a fleet).

    @api.constrains("horizon_days")
    def _check_horizon(self):
        for plan in self:
            if plan.horizon_days < 0:
                raise ValidationError(self.env._("The forecast horizon cannot be negative."))

    @api.model
    @tools.ormcache()
    def _plan_map(self):
        """What the evaluation after each telematics batch needs of the active plans.

        ``{"by_category": {(company, category): item ids}, "by_machine": {(company,
        machine): item ids}, "items": {item id: (forecast shape, horizon days)},
        "categories": category ids, "machines": machine ids}``, cached until a plan
        or an item changes, so that a batch reads no plan.
        """
        by_category, by_machine, items = {}, {}, {}
        for plan in self.sudo().search([]):
            item_ids = tuple(plan.item_ids.ids)
            if not item_ids:
                continue
            for item in plan.item_ids:
                items[item.id] = (item._forecast_item(), plan.horizon_days)
            company_id = plan.company_id.id
            for category in plan.category_ids:
                key = (company_id, category.id)
                by_category[key] = tuple(sorted({*by_category.get(key, ()), *item_ids}))
            for machine in plan.equipment_ids:
                key = (company_id, machine.id)
                by_machine[key] = tuple(sorted({*by_machine.get(key, ()), *item_ids}))
        return {
            "by_category": by_category,
            "by_machine": by_machine,
            "items": items,
            "categories": sorted({category for _company, category in by_category}),
            "machines": sorted({machine for _company, machine in by_machine}),
        }
