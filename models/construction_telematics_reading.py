from odoo import fields, models


class ConstructionTelematicsReading(models.Model):
    """Readings history: one row per machine and timestamp.

    The busiest table of the addon, kept lean for bulk inserts: each foreign key
    costs a trigger per row, so the company and the source are reached through
    the machine and the ledger event, and the audit columns live on the event.
    """

    _name = "construction.telematics.reading"
    _description = "Telematics reading"
    _order = "at desc, id desc"
    _rec_name = "at"
    _log_access = False

    equipment_id = fields.Many2one(
        # Indexed with the time by the unique constraint; every extra index slows inserts.
        "maintenance.equipment",
        required=True,
        ondelete="cascade",
    )
    company_id = fields.Many2one(related="equipment_id.company_id")
    source_id = fields.Many2one(related="event_id.source_id")
    event_id = fields.Many2one(
        "construction.telematics.event", required=True, index=True, ondelete="cascade"
    )
    device_id = fields.Char(string="Device ID", required=True)
    at = fields.Datetime(required=True)
    engine_hours = fields.Float(digits=(16, 2), aggregator="max")
    idle_hours = fields.Float(digits=(16, 2), aggregator="max")
    odometer_km = fields.Float(string="Odometer (km)", digits=(16, 1), aggregator="max")
    fuel_level_pct = fields.Float(string="Fuel level (%)", digits=(5, 1), aggregator="avg")
    fuel_used_l = fields.Float(string="Fuel used (L)", digits=(16, 1), aggregator="max")
    def_level_pct = fields.Float(string="DEF level (%)", digits=(5, 1), aggregator="avg")
    lat = fields.Float(string="Latitude", digits=(10, 7), aggregator=None)
    lon = fields.Float(string="Longitude", digits=(10, 7), aggregator=None)
    speed_kmh = fields.Float(string="Speed (km/h)", digits=(6, 1), aggregator="max")
    sensors = fields.Json(
        string="Sensor values", help="Named sensor values beyond the fixed metrics: {name: value}."
    )
    suspect = fields.Boolean()
    suspect_reason = fields.Char()

    # One reading per machine and instant, whichever source reported it. The same
    # index serves the machine's history (scanned backwards for the latest).
    _sql_constraints = [
        (
            "equipment_at_uniq",
            "unique(equipment_id, at)",
            "A reading of this machine at this time was already stored.",
        ),
    ]
