from odoo import fields, models

PREFIX = "construction_asset_sync."


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    telematics_max_body_mb = fields.Float(
        string="Largest request (MB)",
        config_parameter=PREFIX + "telematics_max_body_mb",
        default=5.0,
        help="Telematics requests with a larger body are refused with 413.",
    )
    telematics_max_attempts = fields.Integer(
        string="Attempts before dead",
        config_parameter=PREFIX + "telematics_max_attempts",
        default=5,
    )
    telematics_retention_days = fields.Integer(
        string="Archive processed events after (days)",
        config_parameter=PREFIX + "telematics_retention_days",
        default=30,
    )
    telematics_max_engine_hours_per_day = fields.Float(
        string="Plausible engine hours per day",
        config_parameter=PREFIX + "telematics_max_engine_hours_per_day",
        default=24.0,
        help="A faster rise of the hour meter is stored but flagged suspect.",
    )
    telematics_max_km_per_day = fields.Float(
        string="Plausible km per day",
        config_parameter=PREFIX + "telematics_max_km_per_day",
        default=2000.0,
    )
