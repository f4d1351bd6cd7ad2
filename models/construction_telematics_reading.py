from odoo import fields, models


class ConstructionTelematicsReading(models.Model):
    """Readings history: one row per machine and timestamp."""

    _name = "construction.telematics.reading"
    _description = "Telematics reading"
    _order = "at desc, id desc"
    _rec_name = "at"

    equipment_id = fields.Many2one(
        # Indexed with the time by init(); every extra index slows the bulk insert.
        "maintenance.equipment",
        required=True,
        ondelete="cascade",
    )
    company_id = fields.Many2one("res.company", required=True)
    source_id = fields.Many2one("construction.telematics.source", required=True, ondelete="cascade")
    event_id = fields.Many2one(
        "construction.telematics.event", required=True, index=True, ondelete="cascade"
    )
    device_id = fields.Char(required=True)
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
    suspect = fields.Boolean()
    suspect_reason = fields.Char()

    _sql_constraints = [
        (
            "source_device_at_uniq",
            "unique(source_id, device_id, at)",
            "A reading of this device at this time was already stored.",
        ),
    ]

    def init(self):
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS construction_telematics_reading_equipment_at_idx
               ON construction_telematics_reading (equipment_id, at DESC)"""
        )
