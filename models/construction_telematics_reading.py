from odoo import api, fields, models


class HistoryMany2one(fields.Many2one):
    """A Many2one of the readings history with no foreign key in the database.

    A foreign key costs PostgreSQL a trigger, an index probe and a row lock per
    inserted row. Measured on 100,000 history rows, the machine's and the event's
    keys took 1.0 s of a 1.8 s insert. Their guarantees are kept otherwise:

    * the one writer, telematics processing, locks the ledger event and the
      machine of every row it inserts, and in the same transaction updates both
      (the machine's usage rollup mark, the event's machine). A deletion of the
      machine waiting on that batch then fails to serialize: nothing is deleted,
      and Odoo retries an HTTP or RPC request, which then sees the batch's rows.
      A deletion that went first makes the batch fail to serialize, and the
      batch is retried later;
    * ``_unlink_history_of`` deletes the rows of deleted machines and events, as
      ``ondelete="cascade"`` did.
    """

    def update_db_foreign_key(self, model, column):
        return


class ConstructionTelematicsReading(models.Model):
    """Readings history: one row per machine and timestamp.

    The busiest table of the addon, kept lean for bulk inserts: no foreign key
    (see ``HistoryMany2one``), the company and the source reached through the
    machine and the ledger event, and the audit columns on the event.
    """

    _name = "construction.telematics.reading"
    _description = "Telematics reading"
    _order = "at desc, id desc"
    _rec_name = "at"
    _log_access = False

    equipment_id = HistoryMany2one(
        # Indexed with the time by the unique constraint; every extra index slows inserts.
        "maintenance.equipment",
        required=True,
        ondelete="cascade",
    )
    company_id = fields.Many2one(related="equipment_id.company_id")
    source_id = fields.Many2one(related="event_id.source_id")
    event_id = HistoryMany2one(
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

    @api.model
    def _unlink_history_of(self, field_name, ids):
        """Delete the readings whose ``field_name`` is one of ``ids``: the cascade of a deletion.

        Plain SQL, like the database's cascade it replaces: whoever may delete a
        machine may delete its history, without a right on readings themselves.
        """
        if not ids:
            return
        assert field_name in ("equipment_id", "event_id")
        self.env.cr.execute(
            f"DELETE FROM construction_telematics_reading WHERE {field_name} IN %s",
            [tuple(ids)],
        )
        # The database also cleared the meter events' links to those readings.
        self.env.invalidate_all()
