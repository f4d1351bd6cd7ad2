import operator

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .construction_telematics_sensor import SENSOR_CODE

COMPARISONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class ConstructionSensorRule(models.Model):
    """A threshold on a named sensor: breached for long enough, it opens a request.

    The breach goes through the alert lifecycle (``_apply_requests`` of the
    processor): a corrective request to review, one open per machine and rule,
    and a note when the value is back to normal.
    """

    _name = "construction.sensor.rule"
    _description = "Sensor threshold rule"
    _order = "name, id"

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    sensor_code = fields.Char(string="Sensor", required=True, help="e.g. coolant_temp_c")
    comparison = fields.Selection(
        [(">", "above"), (">=", "at or above"), ("<", "below"), ("<=", "at or below")],
        required=True,
        default=">",
    )
    threshold = fields.Float(required=True)
    duration_minutes = fields.Integer(
        string="For at least (minutes)",
        default=0,
        help="The value must stay beyond the threshold this long before a request opens.",
    )
    severity = fields.Selection(
        [("warning", "Warning"), ("critical", "Critical")], required=True, default="warning"
    )
    category_ids = fields.Many2many(
        "maintenance.equipment.category",
        "construction_sensor_rule_category_rel",
        "rule_id",
        "category_id",
        string="Equipment categories",
    )
    equipment_ids = fields.Many2many(
        "maintenance.equipment",
        "construction_sensor_rule_equipment_rel",
        "rule_id",
        "equipment_id",
        string="Machines",
        check_company=True,
    )

    @api.constrains("sensor_code", "duration_minutes")
    def _check_rule(self):
        for rule in self:
            if not SENSOR_CODE.match(rule.sensor_code or ""):
                raise ValidationError(
                    self.env._("%(code)s is not a sensor code.", code=rule.sensor_code)
                )
            if rule.duration_minutes < 0:
                raise ValidationError(self.env._("The duration cannot be negative."))

    def _alert_code(self):
        """The alert code of the rule's requests (one open per machine and code)."""
        self.ensure_one()
        return f"RULE{self.id}:{self.sensor_code}"

    def _breached(self, value):
        return COMPARISONS[self.comparison](value, self.threshold)

    def _describe(self):
        self.ensure_one()
        label = dict(self._fields["comparison"]._description_selection(self.env))[self.comparison]
        return f"{self.sensor_code} {label} {self.threshold:g}"
