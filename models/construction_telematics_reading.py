from datetime import datetime

from odoo import api, fields, models
from psycopg2.extras import execute_values

COUNTERS = ("engine_hours", "idle_hours", "odometer_km")
STATE_VALUES = ("fuel_level_pct", "lat", "lon")
HISTORY_COLUMNS = (
    "engine_hours",
    "idle_hours",
    "odometer_km",
    "fuel_level_pct",
    "fuel_used_l",
    "def_level_pct",
    "lat",
    "lon",
    "speed_kmh",
)
# Rounding in senders' hour meters; below this a "jump" is noise.
COUNTER_TOLERANCE = {"engine_hours": 0.1, "idle_hours": 0.1, "odometer_km": 1.0}


class ConstructionTelematicsReading(models.Model):
    """Readings history: one row per machine and timestamp."""

    _name = "construction.telematics.reading"
    _description = "Telematics reading"
    _order = "at desc, id desc"
    _rec_name = "at"

    equipment_id = fields.Many2one(
        "maintenance.equipment", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one("res.company", required=True, index=True)
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
    suspect = fields.Boolean(index=True)
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

    @api.model
    def _plausibility_limits(self):
        Event = self.env["construction.telematics.event"]
        hours_per_day = Event._setting("telematics_max_engine_hours_per_day")
        return {
            "engine_hours": hours_per_day,
            "idle_hours": hours_per_day,
            "odometer_km": Event._setting("telematics_max_km_per_day"),
        }

    @api.model
    def _check_counters(self, reading, at, last, limits):
        """Why ``reading`` is implausible against the last accepted counters, or None.

        ``last`` maps counter -> (value, at) and is advanced for accepted readings.
        """
        for counter in COUNTERS:
            value = reading.get(counter)
            if value is None or counter not in last:
                continue
            previous, previous_at = last[counter]
            tolerance = COUNTER_TOLERANCE[counter]
            if at <= previous_at:
                if value > previous + tolerance:
                    return f"{counter} {value:g} is above the later value {previous:g}"
                continue
            if value < previous - tolerance:
                return f"{counter} went backwards from {previous:g} to {value:g}"
            days = (at - previous_at).total_seconds() / 86400
            if value - previous > limits[counter] * days + tolerance:
                return (
                    f"{counter} rose by {value - previous:g} in {days * 24:.2f} h "
                    f"(more than {limits[counter]:g} per day)"
                )
        return None

    @api.model
    def _store_batch(self, equipment, event, readings):
        """Store a device's readings, flag implausible ones, update the machine's state.

        Returns the ledger values describing the outcome.
        """
        limits = self._plausibility_limits()
        last = {}
        for counter, stamp_field in (
            ("engine_hours", "engine_hours_at"),
            ("idle_hours", "engine_hours_at"),
            ("odometer_km", "odometer_at"),
        ):
            if equipment[stamp_field]:
                last[counter] = (equipment[counter], equipment[stamp_field])
        state = {}
        rows, suspects = [], 0
        last_seen = equipment.telematics_last_seen_at
        for raw in sorted(readings, key=lambda item: item["at"]):
            at = datetime.fromisoformat(raw["at"])
            reason = self._check_counters(raw, at, last, limits)
            if reason:
                suspects += 1
            else:
                for counter in COUNTERS:
                    if raw.get(counter) is not None and (
                        counter not in last or at > last[counter][1]
                    ):
                        last[counter] = (raw[counter], at)
                if not last_seen or at >= last_seen:
                    last_seen = at
                    for key in STATE_VALUES:
                        if raw.get(key) is not None:
                            state[key] = raw[key]
            rows.append(
                (
                    equipment.id,
                    event.company_id.id,
                    event.source_id.id,
                    event.id,
                    event.device_id,
                    at,
                    *(raw.get(column) for column in HISTORY_COLUMNS),
                    bool(reason),
                    reason,
                    self.env.uid,
                    self.env.uid,
                )
            )
        stored = execute_values(
            self.env.cr._obj,
            """INSERT INTO construction_telematics_reading
                   (equipment_id, company_id, source_id, event_id, device_id, at, {columns},
                    suspect, suspect_reason, create_uid, write_uid, create_date, write_date)
               VALUES %s
               ON CONFLICT (source_id, device_id, at) DO NOTHING
               RETURNING id""".format(columns=", ".join(HISTORY_COLUMNS)),
            rows,
            template="({}, now() at time zone 'UTC', now() at time zone 'UTC')".format(
                ", ".join(["%s"] * (10 + len(HISTORY_COLUMNS)))
            ),
            page_size=1000,
            fetch=True,
        )
        equipment._telematics_write_state(state, last, last_seen)
        duplicates = len(rows) - len(stored)
        parts = [self.env._("%(count)s readings stored", count=len(stored))]
        if suspects:
            parts.append(self.env._("%(count)s suspect", count=suspects))
        if duplicates:
            parts.append(self.env._("%(count)s already known", count=duplicates))
        return {"result": ", ".join(parts)}
