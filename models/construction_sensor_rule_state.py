from odoo import fields, models


class ConstructionSensorRuleState(models.Model):
    """Where a machine stands on a sensor rule: since when it is in breach, alerted or not."""

    _name = "construction.sensor.rule.state"
    _description = "Sensor rule state of a machine"
    _log_access = False

    equipment_id = fields.Many2one(
        "maintenance.equipment", required=True, ondelete="cascade", readonly=True
    )
    rule_id = fields.Many2one(
        "construction.sensor.rule", required=True, ondelete="cascade", readonly=True, index=True
    )
    company_id = fields.Many2one(related="equipment_id.company_id", store=True)
    breach_since = fields.Datetime(readonly=True)
    alerted = fields.Boolean(readonly=True, help="A request was opened for the current breach.")
    last_at = fields.Datetime(string="Last reading at", readonly=True)
    last_value = fields.Float(readonly=True)

    _sql_constraints = [
        (
            "equipment_rule_uniq",
            "unique(equipment_id, rule_id)",
            "A machine has one state per sensor rule.",
        ),
    ]
