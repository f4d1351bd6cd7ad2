"""Turns a batch of ledger events into readings, machine state and maintenance requests.

A batch is processed set-wise, a few queries for the whole batch rather than
a few per event: one mapping lookup, one lock of the machines involved, one
insert of all readings, one update of the machines and one of the events.
"""

import io
import json
from collections import defaultdict, namedtuple
from datetime import datetime

from markupsafe import Markup
from odoo import api, fields, models
from psycopg2 import errors as pg_errors
from psycopg2.extras import execute_values

from ..protocols import telematics_payloads
from ..protocols.external_ids import normalize

# The machine's telematics state, with the SQL type each is written back as.
STATE_COLUMN_TYPES = {
    "telematics_last_seen_at": "timestamp",
    "telematics_latitude": "float8",
    "telematics_longitude": "float8",
    "telematics_position_at": "timestamp",
    "fuel_level_pct": "float8",
    "fuel_level_at": "timestamp",
    "engine_hours": "float8",
    "engine_hours_at": "timestamp",
    "idle_hours": "float8",
    "idle_hours_at": "timestamp",
    "odometer_km": "float8",
    "odometer_at": "timestamp",
    "last_fault_code": "varchar",
}
STATE_COLUMNS = tuple(STATE_COLUMN_TYPES)
# counter -> the equipment field stamping when it was last accepted. Each has its
# own: an ISO 15143-3 snapshot dates every element on its own, and idle hours
# stamped after the operating hours must not shorten the time the next
# operating hours rose in.
COUNTERS = {
    "engine_hours": "engine_hours_at",
    "idle_hours": "idle_hours_at",
    "odometer_km": "odometer_at",
}
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
    "sensors",
)
READING_COLUMNS = (
    "equipment_id",
    "event_id",
    "device_id",
    "at",
    *HISTORY_COLUMNS,
    "suspect",
    "suspect_reason",
)
# What a later reading of a machine and time the history holds may add to its row
# when the row lacks it: an ISO 15143-3 snapshot dates each element on its own, so
# the same moment's elements can come in apart. Sensors are not merged.
FILLABLE = HISTORY_COLUMNS[:-1]
COLUMN_AT = {column: index for index, column in enumerate(READING_COLUMNS)}
SUSPECT = COLUMN_AT["suspect"]
ALERT_PRIORITY = {"warning": "2", "critical": "3"}
# An event that waits for its device to be mapped keeps nothing of an earlier run.
UNMAPPED_OUTCOME = {
    "equipment_id": None,
    "request_id": None,
    "result": None,
    "last_error": None,
    "next_attempt_at": None,
}
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_NULL = "\\N"
# The numbers of a history row: every history column but the sensors, which come last.
_NUMBERS = slice(READING_COLUMNS.index("at") + 1, READING_COLUMNS.index("sensors"))


def copy_text(value):
    """One string (or None) in PostgreSQL's COPY text format."""
    return COPY_NULL if value is None else value.translate(_COPY_ESCAPES)


def copy_lines(rows):
    """History rows (``READING_COLUMNS`` tuples) as lines of PostgreSQL's COPY text format.

    Typed by column rather than a formatter called per value: the formatting
    was a third of the processing worker's CPU. The same event, machine and
    device start many rows, so their text is made once.
    """
    prefixes = {}
    for row in rows:
        ids = row[:3]
        prefix = prefixes.get(ids)
        if prefix is None:
            prefix = prefixes[ids] = f"{row[0]}\t{row[1]}\t{copy_text(row[2])}\t"
        sensors, suspect, reason = row[-3:]
        yield (
            f"{prefix}{row[3]}\t"
            + "\t".join([COPY_NULL if value is None else str(value) for value in row[_NUMBERS]])
            + ("\t\\N\t" if sensors is None else f"\t{copy_text(json.dumps(sensors))}\t")
            + ("t\t" if suspect else "f\t")
            + copy_text(reason)
            + "\n"
        )


# Rounding in senders' hour meters; below this a "jump" is noise.
COUNTER_TOLERANCE = {"engine_hours": 0.1, "idle_hours": 0.1, "odometer_km": 1.0}


def check_counters(values, at, last, limits):
    """Why ``values`` are implausible against the last accepted counters, or None.

    ``last`` maps counter -> (value, at) of the last accepted reading.
    """
    for counter in COUNTERS:
        value = values.get(counter)
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


def life_to_date(raw, at, offsets):
    """``raw`` with its meters as life-to-date values, given ``{meter: [(since, offset)]}``."""
    adjusted = None
    for meter, steps in offsets.items():
        if raw.get(meter) is None:
            continue
        offset = 0.0
        for since, step_offset in steps:
            if since > at:
                break
            offset = step_offset
        if offset:
            adjusted = adjusted or dict(raw)
            adjusted[meter] = raw[meter] + offset
    return adjusted or raw


LedgerItem = namedtuple(
    "LedgerItem", "id kind payload company_id source_id device_id attempts retained"
)


class KnownReading:
    """A history row a batch's reading falls on: its id, whether suspect, what it lacks."""

    __slots__ = ("id", "missing", "suspect")

    def __init__(self, row_id, suspect, missing):
        self.id, self.suspect, self.missing = row_id, suspect, missing


class MachineState:
    """The telematics state of one machine while a batch is applied to it."""

    def __init__(self, row):
        self.values = dict(zip(STATE_COLUMNS, row, strict=True))
        self.original = dict(self.values)
        self.last = {
            counter: (self.values[counter], self.values[stamp])
            for counter, stamp in COUNTERS.items()
            if self.values[stamp] and self.values[counter] is not None
        }

    def accept(self, values, at, limits):
        """Apply one observation; returns the reason it is suspect, or None."""
        reason = check_counters(values, at, self.last, limits)
        if reason:
            return reason
        for counter, stamp in COUNTERS.items():
            value = values.get(counter)
            if value is not None and (counter not in self.last or at > self.last[counter][1]):
                self.last[counter] = (value, at)
                self.values[counter] = value
                self.values[stamp] = at
        last_seen = self.values["telematics_last_seen_at"]
        if not last_seen or at >= last_seen:
            self.values["telematics_last_seen_at"] = at
        # Position and fuel level are the latest of their own, whatever newer element
        # (hours, say) came before them: snapshots mix fresh and stale elements.
        has_position = values.get("lat") is not None and values.get("lon") is not None
        if has_position and self._newest("telematics_position_at", at):
            self.values["telematics_latitude"] = values["lat"]
            self.values["telematics_longitude"] = values["lon"]
        if values.get("fuel_level_pct") is not None and self._newest("fuel_level_at", at):
            self.values["fuel_level_pct"] = values["fuel_level_pct"]
        return None

    def accept_plausible(self, values, at, limits):
        """Apply ``values``, but for their counters when one is implausible (the rest
        stands: a position, a fuel level); returns the values applied."""
        if not self.accept(values, at, limits):
            return values
        values = {name: value for name, value in values.items() if name not in COUNTERS}
        self.accept(values, at, limits)  # without counters, nothing is implausible
        return values

    def _newest(self, stamp, at):
        """Whether ``at`` is no older than ``stamp``'s value; if so it becomes the stamp."""
        if self.values[stamp] and at < self.values[stamp]:
            return False
        self.values[stamp] = at
        return True

    @property
    def changed(self):
        return self.values != self.original

    @property
    def counters_moved(self):
        return any(self.values[counter] != self.original[counter] for counter in COUNTERS)


class SensorCheck:
    """Named sensor values of a batch against their declarations (loaded once, lazily)."""

    def __init__(self, env, machine_ids):
        self.env = env
        self.machine_ids = machine_ids
        self.samples = []  # (equipment_id, event, at, sensors) of plausible readings
        self._category_of = None
        self._ranges_of = {}  # company -> the company's declarations, from the cache

    def check(self, event, equipment_id, values):
        """Why these sensor values are implausible, or None (declarations from the cache)."""
        if self._category_of is None:
            self.env.cr.execute(
                "SELECT id, category_id FROM maintenance_equipment WHERE id IN %s",
                [tuple(self.machine_ids)],
            )
            self._category_of = dict(self.env.cr.fetchall())
        Sensor = self.env["construction.telematics.sensor"]
        category_id = self._category_of.get(equipment_id)
        ranges = self._ranges_of.get(event.company_id)
        if ranges is None:
            ranges = self._ranges_of[event.company_id] = Sensor._ranges(event.company_id)
        for code, value in values.items():
            declared = Sensor._most_specific(ranges.get(code, {}), event.source_id, category_id)
            if not declared:
                return f"sensors.{code} is not a declared sensor"
            low, high, unit = declared
            if not low <= value <= high:
                return f"sensors.{code} {value:g} is outside {low:g} to {high:g} {unit}".rstrip()
        return None


class ConstructionTelematicsProcessor(models.AbstractModel):
    _name = "construction.telematics.processor"
    _description = "Telematics event processor"

    @api.model
    def _limits(self):
        setting = self.env["res.config.settings"]._construction_setting
        hours_per_day = setting("telematics_max_engine_hours_per_day")
        return {
            "engine_hours": hours_per_day,
            "idle_hours": hours_per_day,
            "odometer_km": setting("telematics_max_km_per_day"),
        }

    @api.model
    def _process(self, events):
        """Process ``events`` (locked by the caller); raises if any of them fails."""
        cr = self.env.cr
        events.flush_recordset()
        # Plain rows, not records: the ORM would copy every JSON payload on read.
        cr.execute(
            """SELECT e.id, e.kind, e.payload, e.company_id, e.source_id, e.device_id, e.attempts,
                      e.retained, s.external_system_id
               FROM construction_telematics_event e
               JOIN construction_telematics_source s ON s.id = e.source_id
               WHERE e.id IN %s
               ORDER BY e.id""",
            [tuple(events.ids)],
        )
        rows = cr.fetchall()
        items = [LedgerItem(*row[:-1]) for row in rows]
        # Which machine each device is: the binder, for the whole batch at once.
        machine_of = self.env["construction.external.id"]._to_internal_ids(
            "maintenance.equipment", [(row[-1], row[5]) for row in rows]
        )
        equipment_of = {row[0]: machine_of.get((row[-1], normalize(row[5]))) for row in rows}
        outcomes = {}
        for event_id, equipment_id in equipment_of.items():
            if not equipment_id:
                outcomes[event_id] = {"state": "unmapped"}
        machine_ids = sorted({eid for eid in equipment_of.values() if eid})
        machines = {}
        if machine_ids:
            # Locked in id order: one worker at a time per machine, and no deadlocks.
            cr.execute(
                "SELECT id, {} FROM maintenance_equipment WHERE id IN %s ORDER BY id "
                "FOR NO KEY UPDATE".format(", ".join(STATE_COLUMNS)),
                [tuple(machine_ids)],
            )
            machines = {row[0]: MachineState(row[1:]) for row in cr.fetchall()}
        limits = self._limits()
        sensors = SensorCheck(self.env, machine_ids) if machine_ids else None
        # Replaced or rolled-over meters: what the sender reports plus the offset then.
        offsets = self.env["construction.meter.event"]._offsets(machine_ids) if machine_ids else {}
        reading_rows = []
        # A machine and time already in the history, or met earlier in this batch, is
        # a reading sent again: it only adds the values its row lacks. What the row
        # holds stays, and so do the position, fuel and counters it gave the machine.
        reading_machines = {
            equipment_of[event.id]
            for event in items
            if event.kind == "readings" and equipment_of.get(event.id)
        }
        latest = self._latest_reading_at(reading_machines) if reading_machines else {}
        applied = self._known_readings(items, equipment_of, latest)
        fills = {}  # history row id -> the values a later reading adds to it (a history row)
        alert_positions = []  # (machine, at, lat, lon) of the alerts: they move machines too
        alerts_by_key = defaultdict(list)
        for event in items:
            equipment_id = equipment_of.get(event.id)
            if not equipment_id:
                continue
            machine = machines[equipment_id]
            if event.kind == "readings":
                outcomes[event.id] = self._apply_readings(
                    event,
                    equipment_id,
                    machine,
                    limits,
                    reading_rows,
                    sensors,
                    offsets.get(equipment_id),
                    applied,
                    fills,
                    latest.get(equipment_id),
                )
            elif event.retained:
                # The broker replays its retained message to every new subscription,
                # perhaps months after it was published: an old alert, not a new one.
                # Kept in the ledger; neither a request nor the machine's state now.
                outcomes[event.id] = {
                    "state": "processed",
                    "result": self.env._("Retained delivery (stale state): no alert raised"),
                }
            else:
                outcome, alert = self._apply_alert(
                    event,
                    machine,
                    limits,
                    offsets.get(equipment_id),
                    equipment_id,
                    alert_positions,
                )
                outcomes[event.id] = outcome
                if alert:
                    alerts_by_key[(equipment_id, alert["code"])].append((event, alert))
        stored = self._insert_readings(reading_rows, latest)
        changed_rows = reading_rows
        if fills:
            self._fill_readings(fills)
            changed_rows = reading_rows + [tuple(row) for row in fills.values()]
        self.env["construction.telematics.usage"]._mark_dirty(changed_rows)
        self.env["construction.telematics.site.visit"]._follow_positions(
            changed_rows, alert_positions
        )
        for event_id, count in stored.items():
            outcomes[event_id]["stored"] = count
        if sensors and sensors.samples:
            self._apply_sensor_rules(sensors.samples, alerts_by_key)
        if alerts_by_key:
            self._apply_requests(alerts_by_key, outcomes)
        self._write_machines(machines)
        # Preventive plans follow the counters: one set-wise evaluation per batch.
        self.env["construction.maintenance.schedule"]._evaluate(
            [eid for eid, machine in machines.items() if machine.counters_moved], tolerant=True
        )
        self._write_outcomes(items, equipment_of, outcomes)
        events.invalidate_recordset()

    # -- readings ------------------------------------------------------------
    def _apply_readings(
        self,
        event,
        equipment_id,
        machine,
        limits,
        rows,
        sensors,
        offsets,
        applied,
        fills,
        latest_at,
    ):
        """Apply an event's readings to its machine and add their history rows to ``rows``.

        ``applied`` maps the ``(machine, time)`` already stored (to a
        ``KnownReading``) or applied in this batch (to its row's index in
        ``rows``): a reading there only adds what that row lacks (``fills``
        collects it for stored rows), and the ones applied here are added to it.
        ``latest_at``: the time of the machine's latest history row. A retained
        delivery's reading no newer than it, or than what the machine last
        reported (an alert, a reading of this batch; retention may have emptied
        the history), is stale state and skipped (reference 4.3).
        """
        readings = sorted(event.payload["readings"], key=lambda item: item["at"])
        ids = (equipment_id, event.id, event.device_id)
        suspects = completed = stale = 0
        for raw in readings:
            at = datetime.fromisoformat(raw["at"])
            key = (equipment_id, at)
            if event.retained and any(
                seen and at <= seen
                for seen in (latest_at, machine.values["telematics_last_seen_at"])
            ):
                stale += 1  # not even to complete a known reading: stale state
                continue
            known = applied.get(key)
            if offsets:
                raw = life_to_date(raw, at, offsets)
            if known is not None:
                completed += self._complete_known(known, raw, at, machine, limits, rows, fills, ids)
                continue
            applied[key] = len(rows)
            checked = bool(raw.get("sensors")) and sensors is not None
            # A reading with an implausible sensor is suspect as a whole: it moves
            # neither the machine nor, since site following skips suspect rows, the
            # position stamp both keep.
            reason = checked and sensors.check(event, equipment_id, raw["sensors"])
            reason = reason or machine.accept(raw, at, limits)
            # A retained delivery raises no alert, not even through a rule.
            if checked and not reason and not event.retained:
                sensors.samples.append((equipment_id, event, at, raw["sensors"]))
            suspects += bool(reason)
            rows.append(
                (*ids, at, *(raw.get(column) for column in HISTORY_COLUMNS), bool(reason), reason)
            )
        return {
            "state": "processed",
            "readings": len(readings),
            "suspects": suspects,
            "completed": completed,
            "stale": stale,
            "left_out": event.payload.get("left_out") or [],
        }

    @staticmethod
    def _complete_known(known, raw, at, machine, limits, rows, fills, ids):
        """Add to a known reading's row the values it lacks; returns whether any was added.

        ``known``: a ``KnownReading`` (a stored row) or the index in ``rows`` of a
        row of this batch. A suspect row takes nothing: what it holds was not
        applied, and what comes with it would be judged against the wrong values.
        Late counters implausible against the machine are left out, and the rest
        added (as an alert's are); they stay in their event's payload.
        """
        batch_row = isinstance(known, int)
        if batch_row:
            row = rows[known]
            if row[SUSPECT]:
                return False
            missing = [c for c in FILLABLE if row[COLUMN_AT[c]] is None]
        else:
            if known.suspect:
                return False
            missing = known.missing
        added = {column: raw[column] for column in missing if raw.get(column) is not None}
        if ("lat" in added) != ("lon" in added):  # a position is both or nothing
            added.pop("lat", None)
            added.pop("lon", None)
        added = machine.accept_plausible(added, at, limits) if added else added
        if not added:
            return False
        if batch_row:
            completed = list(rows[known])
        else:
            known.missing = [column for column in known.missing if column not in added]
            completed = fills.setdefault(
                known.id, [*ids, at, *([None] * len(HISTORY_COLUMNS)), False, None]
            )
        for column, value in added.items():
            completed[COLUMN_AT[column]] = value
        if batch_row:
            rows[known] = tuple(completed)
        return True

    def _fill_readings(self, fills):
        """Write the values later readings added to stored rows (one statement)."""
        execute_values(
            self.env.cr._obj,
            f"""UPDATE construction_telematics_reading r
                SET {", ".join(f"{c} = COALESCE(r.{c}, v.{c})" for c in FILLABLE)}
                FROM (VALUES %s) AS v(id, {", ".join(FILLABLE)})
                WHERE r.id = v.id""",
            [(row_id, *(row[COLUMN_AT[c]] for c in FILLABLE)) for row_id, row in fills.items()],
            template="(%s, " + ", ".join(["%s::numeric"] * len(FILLABLE)) + ")",
            page_size=len(fills),
        )
        self.env["construction.telematics.reading"].invalidate_model(list(FILLABLE))

    def _insert_readings(self, rows, latest):
        """Insert history rows, skipping known (machine, time); returns stored per event.

        ``rows`` hold each machine and time once (``_apply_readings`` skips
        repeats); ``latest`` is ``_latest_reading_at`` of their machines. The rows
        newer than everything a machine's history holds, which is what senders
        mostly send, are copied straight into the history with COPY: no row can have
        their machine and time. Processing, the one writer of history rows, locks
        the machine and updates its row in the same transaction, so a batch that
        committed rows after this one's snapshot makes this one's lock fail to
        serialize. The others (late readings: those the history holds already were
        left out by ``_known_readings``) go through a temporary table and
        ``INSERT ... ON CONFLICT DO NOTHING``, which costs half again as much in
        PostgreSQL, and still skips a row another transaction committed unseen.
        """
        if not rows:
            return {}
        newest, others = [], []
        for row in rows:
            last = latest.get(row[0])
            (newest if last is None or row[3] > last else others).append(row)
        counts = defaultdict(int)
        if newest:
            try:
                with self.env.cr.savepoint(flush=False):
                    self._copy_readings("construction_telematics_reading", newest)
            except pg_errors.UniqueViolation:
                # A history row written beside processing (a script, not processing):
                # ON CONFLICT skips it if this snapshot sees it, and otherwise fails
                # to serialize, which postpones the batch.
                others = rows
            else:
                for row in newest:
                    counts[row[1]] += 1
        if others:
            for (event_id,) in self._insert_readings_on_conflict(others):
                counts[event_id] += 1
        self.env["construction.telematics.reading"].invalidate_model()
        return counts

    @api.model
    def _latest_reading_at(self, machine_ids):
        """``{machine: time of its latest history row}``, for machines that have one."""
        # One backward step of the (machine, time) index per machine; a GROUP BY
        # would read every row of each machine's history.
        self.env.cr.execute(
            """SELECT m.id, (SELECT max(r.at) FROM construction_telematics_reading r
                             WHERE r.equipment_id = m.id)
               FROM unnest(%s) AS m(id)""",
            [sorted(machine_ids)],
        )
        return {machine_id: at for machine_id, at in self.env.cr.fetchall() if at}

    @api.model
    def _known_readings(self, items, equipment_of, latest):
        """``{(machine, time): KnownReading}`` of the batch's readings the history holds.

        Only a reading no later than its machine's latest history row can be
        there: the events whose readings are all newer, what senders mostly send,
        cost no query.
        """
        machines, times = [], []
        for event in items:
            equipment_id = equipment_of.get(event.id)
            last = latest.get(equipment_id)
            if event.kind != "readings" or last is None:
                continue
            readings = event.payload["readings"]
            if not readings:
                continue  # an event of ISO 15143-3 elements left out, and no reading
            # These ISO 8601 times (isoformat() of naive times, with or without
            # microseconds) sort as the times do, as _apply_readings relies on too.
            if datetime.fromisoformat(min(raw["at"] for raw in readings)) > last:
                continue
            for raw in readings:
                at = datetime.fromisoformat(raw["at"])
                if at <= last:
                    machines.append(equipment_id)
                    times.append(at)
        if not machines:
            return {}
        self.env.cr.execute(
            f"""SELECT r.equipment_id, r.at, r.id, COALESCE(r.suspect, false),
                       ARRAY[{", ".join(f"r.{column} IS NULL" for column in FILLABLE)}]
                FROM construction_telematics_reading r
                JOIN unnest(%s::int[], %s::timestamp[]) AS sent(equipment_id, at)
                  USING (equipment_id, at)""",
            [machines, times],
        )
        return {
            (equipment_id, at): KnownReading(
                row_id, suspect, [c for c, null in zip(FILLABLE, nulls, strict=True) if null]
            )
            for equipment_id, at, row_id, suspect, nulls in self.env.cr.fetchall()
        }

    def _copy_readings(self, table, rows):
        buffer = io.StringIO()
        buffer.writelines(copy_lines(rows))
        buffer.seek(0)
        self.env.cr._obj.copy_expert(
            f"COPY {table} ({', '.join(READING_COLUMNS)}) FROM STDIN", buffer
        )

    def _insert_readings_on_conflict(self, rows):
        """Insert rows that may already be stored; returns the event ids of those inserted.

        COPY into a temporary table then one INSERT ... SELECT: half the cost of a
        5,000-row VALUES statement, which PostgreSQL must parse.
        """
        cr = self.env.cr
        columns = ", ".join(READING_COLUMNS)
        cr.execute(
            f"""CREATE TEMPORARY TABLE IF NOT EXISTS construction_telematics_reading_in
                ON COMMIT DELETE ROWS AS
                SELECT {columns} FROM construction_telematics_reading LIMIT 0"""
        )
        self._copy_readings("construction_telematics_reading_in", rows)
        cr.execute(
            f"""INSERT INTO construction_telematics_reading ({columns})
                SELECT {columns} FROM construction_telematics_reading_in
                ON CONFLICT (equipment_id, at) DO NOTHING
                RETURNING event_id"""
        )
        stored = cr.fetchall()
        cr.execute("TRUNCATE construction_telematics_reading_in")
        return stored

    # -- alerts --------------------------------------------------------------
    def _apply_alert(self, event, machine, limits, offsets=None, equipment_id=None, positions=None):
        alert, errors = telematics_payloads.parse_alert(event.payload)
        if errors:
            raise ValueError(f"stored alert no longer validates: {errors}")
        if offsets:
            # The meters an alert carries are what the sender's meter shows, like a
            # reading's: life-to-date once the replacement's offset is added, for the
            # machine's counters and for the request's sensor snapshot alike.
            alert["readings"] = life_to_date(alert["readings"], alert["occurred_at"], offsets)
        values = dict(alert["readings"])
        if alert["location"]:
            values.update(alert["location"])
            if positions is not None:
                # Kept even when the alert's meters are implausible: those are dropped below.
                positions.append(
                    (
                        equipment_id,
                        alert["occurred_at"],
                        alert["location"]["lat"],
                        alert["location"]["lon"],
                    )
                )
        # An implausible meter in an alert must not move the counters; the alert stands.
        machine.accept_plausible(values, alert["occurred_at"], limits)
        code, active = alert["code"], alert["state"] == "active"
        if alert["severity"] != "info" and active:
            machine.values["last_fault_code"] = code
        elif not active and machine.values["last_fault_code"] == code:
            machine.values["last_fault_code"] = False
        if alert["severity"] == "info":
            return {"state": "processed", "result": self.env._("State updated (info alert)")}, None
        return {"state": "processed"}, alert

    def _apply_requests(self, alerts_by_key, outcomes):
        """Open or annotate one request per machine and alert code."""
        Request = self.env["maintenance.request"]
        equipment_ids = list({equipment_id for equipment_id, _code in alerts_by_key})
        codes = list({code for _equipment_id, code in alerts_by_key})
        open_requests = {}
        for request in Request.search(
            [
                ("equipment_id", "in", equipment_ids),
                ("request_origin", "=", "telematics_alert"),
                ("alert_code", "in", codes),
                ("stage_id.done", "=", False),
                ("archive", "=", False),
            ],
            order="id",
        ):
            open_requests[(request.equipment_id.id, request.alert_code)] = request
        to_create, notes = {}, defaultdict(list)
        for key, items in alerts_by_key.items():
            request = open_requests.get(key)
            planned = None
            for event, alert in items:
                when = fields.Datetime.to_string(alert["occurred_at"])
                if alert["state"] == "cleared":
                    if request or planned:
                        notes[key].append(self.env._("Cleared at %(when)s UTC.", when=when))
                        outcomes[event.id]["result"] = self.env._("Cleared note posted")
                    else:
                        outcomes[event.id]["result"] = self.env._("Alert cleared; no open request")
                    continue
                if not request and not planned:
                    planned = self._request_values(key[0], event, alert)
                    to_create[key] = (planned, [event])
                    outcomes[event.id]["result"] = self.env._("Maintenance request opened")
                    continue
                notes[key].append(
                    self.env._(
                        "Repeated at %(when)s UTC: %(message)s",
                        when=when,
                        message=alert["message"] or "",
                    )
                )
                repeats = to_create[key][1] if planned else None
                if repeats is not None:
                    repeats.append(event)
                    planned["alert_repeat_count"] += 1
                    if alert["severity"] == "critical":
                        planned.update(alert_severity="critical", priority="3")
                outcomes[event.id]["result"] = self.env._("Repeat noted")
                outcomes[event.id]["escalate"] = alert["severity"] == "critical"
        if to_create:
            created = Request.with_context(
                mail_create_nolog=True, mail_notrack=True, tracking_disable=True
            ).create([values for values, _events in to_create.values()])
            for (key, (_values, _events)), request in zip(to_create.items(), created, strict=True):
                open_requests[key] = request
        chatter = []  # (record, code, lines): logged together at the end
        for key, items in alerts_by_key.items():
            request = open_requests.get(key)
            if not request:
                # Only "cleared" alerts and no open request: a note on the machine says so.
                self._post_cleared_without_request(key, items, outcomes, chatter)
                continue
            for event, _alert in items:
                if event.id in outcomes:
                    outcomes[event.id]["request_id"] = request.id
            if key in to_create:
                if notes[key]:
                    chatter.append((request, key[1], notes[key]))
                continue
            repeats = sum(1 for event, alert in items if alert["state"] == "active")
            if repeats:
                values = {"alert_repeat_count": request.alert_repeat_count + repeats}
                if any(outcomes[event.id].get("escalate") for event, _a in items) and (
                    request.alert_severity != "critical"
                ):
                    values.update(alert_severity="critical", priority="3")
                request.write(values)
            if notes[key]:
                chatter.append((request, key[1], notes[key]))
        self._log_notes(chatter)

    # -- sensor rules ----------------------------------------------------------
    def _apply_sensor_rules(self, samples, alerts_by_key):
        """Breaches that lasted long enough become alerts of the batch, returns become clears.

        The rules' alerts then go through ``_apply_requests`` like the senders'
        alerts: one open request per machine and rule, notes, cleared notes.
        """
        cr = self.env.cr
        equipment_ids = sorted({sample[0] for sample in samples})
        cr.execute(
            """SELECT e.id, r.id FROM maintenance_equipment e
               JOIN construction_sensor_rule r ON r.active AND r.company_id = e.company_id
               WHERE e.id = ANY(%s)
                 AND (EXISTS (SELECT 1 FROM construction_sensor_rule_category_rel c
                              WHERE c.rule_id = r.id AND c.category_id = e.category_id)
                      OR EXISTS (SELECT 1 FROM construction_sensor_rule_equipment_rel m
                                 WHERE m.rule_id = r.id AND m.equipment_id = e.id))""",
            [equipment_ids],
        )
        pairs = cr.fetchall()
        if not pairs:
            return
        rules = self.env["construction.sensor.rule"].browse({rule_id for _e, rule_id in pairs})
        rules_of = defaultdict(list)
        for equipment_id, rule_id in pairs:
            rules_of[equipment_id].append(rules.browse(rule_id))
        State = self.env["construction.sensor.rule.state"].sudo()
        states = {
            (state.equipment_id.id, state.rule_id.id): state
            for state in State.search(
                [("equipment_id", "in", equipment_ids), ("rule_id", "in", rules.ids)]
            )
        }
        by_machine = defaultdict(list)
        for equipment_id, event, at, values in samples:
            by_machine[equipment_id].append((at, event, values))
        to_create = []
        for equipment_id, machine_samples in by_machine.items():
            machine_samples.sort(key=lambda sample: sample[0])
            for rule in rules_of.get(equipment_id, ()):
                state = states.get((equipment_id, rule.id))
                track = {
                    "breach_since": state.breach_since if state else None,
                    "alerted": state.alerted if state else False,
                    "last_at": state.last_at if state else None,
                    "last_value": state.last_value if state else 0.0,
                }
                seen = False
                for at, event, values in machine_samples:
                    value = values.get(rule.sensor_code)
                    if value is None or (track["last_at"] and at <= track["last_at"]):
                        continue  # another sensor, or older than what the rule has seen
                    seen = True
                    track.update(last_at=at, last_value=value)
                    alert = self._rule_alert(rule, event, at, value)
                    if rule._breached(value):
                        track["breach_since"] = track["breach_since"] or at
                        lasted = (at - track["breach_since"]).total_seconds() / 60
                        if not track["alerted"] and lasted >= rule.duration_minutes:
                            track["alerted"] = True
                            alerts_by_key[(equipment_id, alert["code"])].append((event, alert))
                        continue
                    if track["alerted"]:
                        alert["state"] = "cleared"
                        alerts_by_key[(equipment_id, alert["code"])].append((event, alert))
                    track.update(breach_since=None, alerted=False)
                if not seen:
                    continue
                if state:
                    state.write(track)
                else:
                    to_create.append(dict(track, equipment_id=equipment_id, rule_id=rule.id))
        if to_create:
            State.create(to_create)

    def _rule_alert(self, rule, event, at, value):
        """A rule's breach as an alert of the batch (the shape ``parse_alert`` returns)."""
        return {
            "code": rule._alert_code(),
            "message": self.env._(
                "%(rule)s: %(sensor)s %(value)s (%(condition)s)",
                rule=rule.name,
                sensor=rule.sensor_code,
                value=f"{value:g}",
                condition=rule._describe(),
            ),
            "severity": rule.severity,
            "state": "active",
            "occurred_at": at,
            "readings": {rule.sensor_code: value},
            "location": None,
            "device_id": event.device_id,
            "event_id": None,
        }

    def _post_cleared_without_request(self, key, items, outcomes, chatter):
        equipment_id, code = key
        lines = [
            self.env._(
                "Cleared at %(when)s UTC; no request was open for it.",
                when=fields.Datetime.to_string(alert["occurred_at"]),
            )
            for _event, alert in items
        ]
        chatter.append((self.env["maintenance.equipment"].browse(equipment_id), code, lines))
        for event, _alert in items:
            outcomes[event.id]["result"] = self.env._(
                "Alert cleared; no open request (note on the machine)"
            )

    def _request_values(self, equipment_id, event, alert):
        code, message = alert["code"], alert["message"]
        return {
            "name": f"{code}: {message}" if message else code,
            "equipment_id": equipment_id,
            "company_id": event.company_id,
            "maintenance_type": "corrective",
            "priority": ALERT_PRIORITY[alert["severity"]],
            "request_origin": "telematics_alert",
            "alert_severity": alert["severity"],
            "alert_code": code,
            "alert_occurred_at": alert["occurred_at"],
            "alert_sensor_snapshot": {
                "readings": alert["readings"],
                "location": alert["location"],
                "device_id": alert["device_id"],
                "event_id": alert["event_id"],
            },
            "alert_repeat_count": 1,
            "description": message or False,
        }

    def _log_notes(self, chatter):
        """Log each (record, alert code, lines) as a note in its chatter, set-wise.

        ``_message_log_batch`` writes the notes of a batch in one create per model:
        ``message_post`` went through followers, notifications and reply-to for
        each note, 85 % of processing a batch of repeated alerts (profiled). A
        note notifies nobody either way. A record with notes for several codes
        gets them in several rounds, one note per record and round.
        """
        rounds = defaultdict(list)  # (model, round) -> [(id, body)]
        seen = defaultdict(int)
        for record, code, lines in chatter:
            title = self.env._("Telematics alert %(code)s:", code=code)
            items = Markup("").join(Markup("<li>%s</li>") % line for line in lines)
            body = Markup("<p>%s</p><ul>%s</ul>") % (title, items)
            number = seen[record._name, record.id]
            seen[record._name, record.id] += 1
            rounds[record._name, number].append((record.id, body))
        for (model, _number), notes in sorted(rounds.items()):
            self.env[model].browse([record_id for record_id, _body in notes])._message_log_batch(
                dict(notes), message_type="comment"
            )

    # -- writing back ------------------------------------------------------
    def _write_machines(self, machines):
        changed = [(eid, m.values) for eid, m in machines.items() if m.changed]
        if not changed:
            return
        columns = ", ".join(f"{column} = v.{column}" for column in STATE_COLUMNS)
        execute_values(
            self.env.cr._obj,
            f"""UPDATE maintenance_equipment e SET {columns},
                       write_date = now() at time zone 'UTC', write_uid = {int(self.env.uid)}
                FROM (VALUES %s) AS v(id, {", ".join(STATE_COLUMNS)})
                WHERE e.id = v.id""",
            [
                (
                    eid,
                    *(
                        None if values[column] is False else values[column]
                        for column in STATE_COLUMNS
                    ),
                )
                for eid, values in changed
            ],
            template="(%s, "
            + ", ".join(f"%s::{STATE_COLUMN_TYPES[column]}" for column in STATE_COLUMNS)
            + ")",
        )
        self.env["maintenance.equipment"].invalidate_model(list(STATE_COLUMNS))

    def _write_outcomes(self, items, equipment_of, outcomes):
        moves = []
        for event in items:
            outcome = outcomes[event.id]
            if outcome["state"] == "unmapped":
                moves.append((event.id, "unmapped", UNMAPPED_OUTCOME))
                continue
            result = outcome.get("result")
            if "readings" in outcome:
                stored = outcome.get("stored", 0)
                parts = [self.env._("%(count)s readings stored", count=stored)]
                if outcome["suspects"]:
                    parts.append(self.env._("%(count)s suspect", count=outcome["suspects"]))
                completed = outcome.get("completed", 0)
                if completed:
                    parts.append(
                        self.env._("%(count)s added to readings already known", count=completed)
                    )
                if outcome["stale"]:
                    parts.append(
                        self.env._(
                            "%(count)s retained and no newer than the machine's latest",
                            count=outcome["stale"],
                        )
                    )
                known = outcome["readings"] - stored - completed - outcome["stale"]
                if known:
                    parts.append(self.env._("%(count)s already known", count=known))
                result = ", ".join(parts)
                # ISO 15143-3 elements of a unit the mapping does not know, kept as sent.
                result = "; ".join(
                    [
                        result,
                        *(f"{note['field']} {note['message']}" for note in outcome["left_out"]),
                    ]
                )
            moves.append(
                (
                    event.id,
                    "processed",
                    {
                        "equipment_id": equipment_of[event.id],
                        "request_id": outcome.get("request_id"),
                        "result": result,
                        "attempts": event.attempts + 1,
                        "last_error": None,
                        "next_attempt_at": None,
                    },
                )
            )
        self.env["construction.telematics.event"]._set_state(moves)
