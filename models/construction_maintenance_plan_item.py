from odoo import api, fields, models
from odoo.exceptions import ValidationError


class ConstructionMaintenancePlanItem(models.Model):
    """One task of a plan and when it falls due (see ``protocols/maintenance_forecast.py``)."""

    _name = "construction.maintenance.plan.item"
    _inherit = ["construction.cached.config.mixin"]
    _description = "Preventive maintenance plan item"
    _order = "plan_id, sequence, id"

    plan_id = fields.Many2one(
        "construction.maintenance.plan", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="plan_id.company_id", store=True, index=True)
    sequence = fields.Integer(default=10)
    name = fields.Char(string="Task", required=True)
    instructions = fields.Html()
    combine = fields.Selection(
        [("or", "Whichever comes first"), ("and", "Whichever comes last")],
        string="Triggers combine",
        required=True,
        default="or",
    )
    interval_hours = fields.Float(string="Every (engine hours)")
    interval_km = fields.Float(string="Every (km)")
    interval_days = fields.Integer(string="Every (days)")
    first_hours = fields.Float(
        string="First service at (h)",
        help="Engine hours of the first service, if not one interval.",
    )
    first_km = fields.Float(string="First service at (km)")
    soon_hours = fields.Float(string="Due soon (h before)", default=25.0)
    soon_km = fields.Float(string="Due soon (km before)", default=500.0)
    soon_days = fields.Integer(string="Due soon (days before)", default=14)
    package_of_id = fields.Many2one(
        "construction.maintenance.plan.item",
        string="Included in",
        domain="[('plan_id', '=', plan_id), ('id', '!=', id)]",
        ondelete="set null",
        help="A larger service that includes this one: when both fall due at the same point, "
        "only the larger opens a request, and completing it completes this one too.",
    )
    included_ids = fields.One2many("construction.maintenance.plan.item", "package_of_id")

    @api.constrains("interval_hours", "interval_km", "interval_days")
    def _check_triggers(self):
        for item in self:
            intervals = (item.interval_hours, item.interval_km, item.interval_days)
            if min(intervals) < 0 or not any(intervals):
                raise ValidationError(
                    self.env._(
                        "%(item)s: give at least one positive interval "
                        "(engine hours, kilometres or days).",
                        item=item.name,
                    )
                )

    @api.constrains("package_of_id")
    def _check_package(self):
        if self._has_cycle("package_of_id"):
            raise ValidationError(self.env._("A package cannot include itself."))
        for item in self:
            if item.package_of_id and item.package_of_id.plan_id != item.plan_id:
                raise ValidationError(
                    self.env._("%(item)s: a package belongs to the same plan.", item=item.name)
                )

    def _forecast_item(self):
        """The item as ``protocols/maintenance_forecast.py`` reads it."""
        self.ensure_one()
        return {
            "interval": {
                "hours": self.interval_hours,
                "km": self.interval_km,
                "days": self.interval_days,
            },
            "first": {"hours": self.first_hours, "km": self.first_km},
            "soon": {"hours": self.soon_hours, "km": self.soon_km, "days": self.soon_days},
            "combine": self.combine,
        }

    def _ancestors(self):
        self.ensure_one()
        item, found = self.package_of_id, self.browse()
        while item and item not in found:
            found |= item
            item = item.package_of_id
        return found

    def _descendants(self):
        found, level = self.browse(), self.included_ids
        while level - found:
            found |= level
            level = level.included_ids
        return found
