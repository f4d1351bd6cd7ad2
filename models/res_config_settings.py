import logging

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

PREFIX = "construction_asset_sync."
# Every setting of the addon with its default; read with ``_construction_setting``.
DEFAULTS = {
    "telematics_max_body_mb": 5.0,
    "telematics_max_attempts": 5,
    "telematics_retention_days": 30,
    "telematics_batch_size": 500,
    "telematics_batch_items": 20000,
    "telematics_max_engine_hours_per_day": 24.0,
    "telematics_max_km_per_day": 2000.0,
    "maintenance_usage_days": 30,
    "telematics_silent_hours": 24,
    "health_stall_minutes": 10,
    "telematics_reading_retention_days": 400,
    "telematics_idle_share_threshold": 40.0,
    "telematics_unused_days": 7,
    "telematics_geofence_hysteresis_m": 25.0,
    "telematics_map_tile_url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "telematics_map_tile_attribution": "© OpenStreetMap contributors",
    "odyssee_sync_niceness": 10,
}


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
    telematics_silent_hours = fields.Integer(
        string="Silent after (hours)",
        config_parameter=PREFIX + "telematics_silent_hours",
        default=DEFAULTS["telematics_silent_hours"],
        help="A machine that has reported telematics and then sends nothing for this long is "
        "flagged silent on its card and listed under Silent machines.",
    )
    health_stall_minutes = fields.Integer(
        string="Processing stalled after (minutes)",
        config_parameter=PREFIX + "health_stall_minutes",
        default=DEFAULTS["health_stall_minutes"],
        help="When an event due for processing has waited this long, the integration "
        "administrators get an activity, and the scheduled action processes the queue "
        "even while a processing worker is connected.",
    )

    maintenance_usage_days = fields.Integer(
        string="Use per day over (days)",
        config_parameter=PREFIX + "maintenance_usage_days",
        default=DEFAULTS["maintenance_usage_days"],
        help="Maintenance plans forecast due dates from the machine's average use per day "
        "over this many days of readings.",
    )
    telematics_reading_retention_days = fields.Integer(
        string="Keep raw readings (days)",
        config_parameter=PREFIX + "telematics_reading_retention_days",
        default=DEFAULTS["telematics_reading_retention_days"],
        help="Older readings are deleted; the daily utilisation and each machine's "
        "latest state remain. 0 keeps every reading.",
    )
    telematics_idle_share_threshold = fields.Float(
        string="Idle share exception (%)",
        config_parameter=PREFIX + "telematics_idle_share_threshold",
        default=DEFAULTS["telematics_idle_share_threshold"],
        help="A day whose idle share is above this is listed as an exception.",
    )
    telematics_unused_days = fields.Integer(
        string="Unused after (days)",
        config_parameter=PREFIX + "telematics_unused_days",
        default=DEFAULTS["telematics_unused_days"],
        help="A machine whose engine has not run for this many days is listed as unused.",
    )
    telematics_geofence_hysteresis_m = fields.Float(
        string="Geofence margin (m)",
        config_parameter=PREFIX + "telematics_geofence_hysteresis_m",
        default=DEFAULTS["telematics_geofence_hysteresis_m"],
        help="A machine arrives on a site this far inside its fence and leaves it this "
        "far outside, so GPS jitter at the fence does not count as visits.",
    )
    telematics_map_tile_url = fields.Char(
        string="Map tiles URL",
        config_parameter=PREFIX + "telematics_map_tile_url",
        default=DEFAULTS["telematics_map_tile_url"],
        help="A tile server template with {z}, {x} and {y} (OpenStreetMap by default). "
        "Without reachable tiles the fleet map draws on a blank background.",
    )
    telematics_map_tile_attribution = fields.Char(
        string="Map tiles attribution",
        config_parameter=PREFIX + "telematics_map_tile_attribution",
        default=DEFAULTS["telematics_map_tile_attribution"],
    )

    odyssee_sync_niceness = fields.Integer(
        string="Odyssee sync CPU priority (nice)",
        config_parameter=PREFIX + "odyssee_sync_niceness",
        default=DEFAULTS["odyssee_sync_niceness"],
        help="The nice value (0 to 19) the Odyssee synchronisation runs at, as Odoo's "
        "own prefork cron workers do (10), so that telematics receipt and processing "
        "keep their speed while a long import runs. 0 runs it at normal priority.",
    )

    def set_values(self):
        super().set_values()
        # Odoo stores a number 0 as no parameter at all, which reads back as the
        # default; here 0 means something (keep everything, normal priority).
        parameters = self.env["ir.config_parameter"].sudo()
        for name, default in DEFAULTS.items():
            field = self._fields.get(name)
            if field and field.type in ("integer", "float") and default and not self[name]:
                parameters.set_param(PREFIX + name, "0")

    @api.model
    def _construction_setting(self, name):
        """The value of setting ``name`` (a key of ``DEFAULTS``), or its default."""
        default = DEFAULTS[name]
        raw = self.env["ir.config_parameter"].sudo().get_param(PREFIX + name)
        try:
            return type(default)(raw) if raw not in (None, "", False) else default
        except ValueError:
            _logger.warning("ignoring invalid setting %s=%r", PREFIX + name, raw)
            return default
