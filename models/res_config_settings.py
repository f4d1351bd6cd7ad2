from odoo import fields, models

from .construction_telematics_event import DEFAULTS
from .construction_telematics_event import PARAM_PREFIX as PREFIX


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    telematics_max_body_mb = fields.Float(
        string="Largest request (MB)",
        config_parameter=PREFIX + "telematics_max_body_mb",
        default=DEFAULTS["telematics_max_body_mb"],
        help="Telematics requests with a larger body are refused with 413.",
    )
    telematics_max_attempts = fields.Integer(
        string="Attempts before dead",
        config_parameter=PREFIX + "telematics_max_attempts",
        default=DEFAULTS["telematics_max_attempts"],
    )
    telematics_retention_days = fields.Integer(
        string="Archive processed events after (days)",
        config_parameter=PREFIX + "telematics_retention_days",
        default=DEFAULTS["telematics_retention_days"],
    )
    telematics_max_engine_hours_per_day = fields.Float(
        string="Plausible engine hours per day",
        config_parameter=PREFIX + "telematics_max_engine_hours_per_day",
        default=DEFAULTS["telematics_max_engine_hours_per_day"],
        help="A faster rise of the hour meter is stored but flagged suspect.",
    )
    telematics_max_km_per_day = fields.Float(
        string="Plausible km per day",
        config_parameter=PREFIX + "telematics_max_km_per_day",
        default=DEFAULTS["telematics_max_km_per_day"],
    )
