"""Turns a batch of ledger events into readings, machine state and maintenance requests.

A batch is processed set-wise, a few queries for the whole batch rather than
a few per event: one mapping lookup, one lock of the machines involved, one
insert of all readings, one update of the machines and one of the events.
"""

import io
from collections import defaultdict, namedtuple
from datetime import datetime

from markupsafe import Markup
from odoo import api, fields, models
from psycopg2.extras import execute_values

from ..protocols import telematics_payloads
from ..protocols.external_ids import normalize

STATE_COLUMNS = (
    "telematics_last_seen_at",
    "telematics_latitude",
    "telematics_longitude",
    "fuel_level_pct",
    "engine_hours",
    "engine_hours_at",
    "idle_hours",
    "odometer_km",
    "odometer_at",
    "last_fault_code",
)
# counter -> the equipment field stamping when it was last accepted
COUNTERS = {
    "engine_hours": "engine_hours_at",
    "idle_hours": "engine_hours_at",
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


def copy_text(value):
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return str(value)


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


LedgerItem = namedtuple("LedgerItem", "id kind payload company_id source_id device_id attempts")


class MachineState:
    """The telematics state of one machine while a batch is applied to it."""

    def __init__(self, row):
        self.values = dict(zip(STATE_COLUMNS, row, strict=True))
        self.original = dict(self.values)
        # Engine and idle hours share their stamp: a machine that only ever reported
        # idle hours has a stamp but no engine hours, which is no last value.
        self.last = {
            counter: (self.values[counter], self.values[stamp])
            for counter, stamp in COUNTERS.items()
            if self.values[stamp] and self.values[counter] is not None
        }

    def accept(self, values, at, limits, position_and_fuel=True):
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
            if position_and_fuel:
                if values.get("lat") is not None and values.get("lon") is not None:
                    self.values["telematics_latitude"] = values["lat"]
                    self.values["telematics_longitude"] = values["lon"]
                if values.get("fuel_level_pct") is not None:
                    self.values["fuel_level_pct"] = values["fuel_level_pct"]
        return None

    @property
    def changed(self):
        return self.values != self.original


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
                      s.external_system_id
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
        reading_rows = []
        alerts_by_key = defaultdict(list)
        for event in items:
            equipment_id = equipment_of.get(event.id)
            if not equipment_id:
                continue
            machine = machines[equipment_id]
            if event.kind == "readings":
                outcomes[event.id] = self._apply_readings(
                    event, equipment_id, machine, limits, reading_rows
                )
            else:
                outcome, alert = self._apply_alert(event, machine, limits)
                outcomes[event.id] = outcome
                if alert:
                    alerts_by_key[(equipment_id, alert["code"])].append((event, alert))
        stored = self._insert_readings(reading_rows)
        self.env["construction.telematics.usage"]._mark_dirty(reading_rows)
        self.env["construction.telematics.site.visit"]._follow_positions(reading_rows)
        for event_id, count in stored.items():
            outcomes[event_id]["stored"] = count
        if alerts_by_key:
            self._apply_requests(alerts_by_key, outcomes)
        self._write_machines(machines)
        self._write_outcomes(items, equipment_of, outcomes)
        events.invalidate_recordset()

    # -- readings ------------------------------------------------------------
    def _apply_readings(self, event, equipment_id, machine, limits, rows):
        readings = sorted(event.payload["readings"], key=lambda item: item["at"])
        ids = (equipment_id, event.id, event.device_id)
        suspects = 0
        for raw in readings:
            at = datetime.fromisoformat(raw["at"])
            reason = machine.accept(raw, at, limits)
            suspects += bool(reason)
            rows.append(
                (*ids, at, *(raw.get(column) for column in HISTORY_COLUMNS), bool(reason), reason)
            )
        return {"state": "processed", "readings": len(readings), "suspects": suspects}

    def _insert_readings(self, rows):
        """Insert history rows, skipping known (machine, time); returns stored per event.

        COPY into a temporary table then one INSERT ... SELECT: half the cost of a
        5,000-row VALUES statement, which PostgreSQL must parse.
        """
        if not rows:
            return {}
        cr = self.env.cr
        columns = ", ".join(READING_COLUMNS)
        cr.execute(
            f"""CREATE TEMPORARY TABLE IF NOT EXISTS construction_telematics_reading_in
                ON COMMIT DELETE ROWS AS
                SELECT {columns} FROM construction_telematics_reading LIMIT 0"""
        )
        buffer = io.StringIO()
        buffer.writelines("\t".join(map(copy_text, row)) + "\n" for row in rows)
        buffer.seek(0)
        cr._obj.copy_expert(
            f"COPY construction_telematics_reading_in ({columns}) FROM STDIN", buffer
        )
        cr.execute(
            f"""INSERT INTO construction_telematics_reading ({columns})
                SELECT {columns} FROM construction_telematics_reading_in
                ON CONFLICT (equipment_id, at) DO NOTHING
                RETURNING event_id"""
        )
        stored = cr.fetchall()
        cr.execute("TRUNCATE construction_telematics_reading_in")
        counts = defaultdict(int)
        for (event_id,) in stored:
            counts[event_id] += 1
        self.env["construction.telematics.reading"].invalidate_model()
        return counts

    # -- alerts --------------------------------------------------------------
    def _apply_alert(self, event, machine, limits):
        alert, errors = telematics_payloads.parse_alert(event.payload)
        if errors:
            raise ValueError(f"stored alert no longer validates: {errors}")
        values = dict(alert["readings"])
        if alert["location"]:
            values.update(alert["location"])
        if machine.accept(values, alert["occurred_at"], limits):
            # An implausible meter in an alert must not move the counters; the alert stands.
            for counter in COUNTERS:
                values.pop(counter, None)
            machine.accept(values, alert["occurred_at"], limits)
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
        for key, items in alerts_by_key.items():
            request = open_requests.get(key)
            if not request:
                # Only "cleared" alerts and no open request: a note on the machine says so.
                self._post_cleared_without_request(key, items, outcomes)
                continue
            for event, _alert in items:
                if event.id in outcomes:
                    outcomes[event.id]["request_id"] = request.id
            if key in to_create:
                if notes[key]:
                    self._post_note(request, key[1], notes[key])
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
                self._post_note(request, key[1], notes[key])

    def _post_cleared_without_request(self, key, items, outcomes):
        equipment_id, code = key
        lines = [
            self.env._(
                "Cleared at %(when)s UTC; no request was open for it.",
                when=fields.Datetime.to_string(alert["occurred_at"]),
            )
            for _event, alert in items
        ]
        self._post_note(self.env["maintenance.equipment"].browse(equipment_id), code, lines)
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

    def _post_note(self, request, code, lines):
        title = self.env._("Telematics alert %(code)s:", code=code)
        items = Markup("").join(Markup("<li>%s</li>") % line for line in lines)
        request.message_post(
            body=Markup("<p>%s</p><ul>%s</ul>") % (title, items), subtype_xmlid="mail.mt_note"
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
            template="(%s, %s::timestamp, %s::float8, %s::float8, %s::float8, %s::float8,"
            " %s::timestamp, %s::float8, %s::float8, %s::timestamp, %s::varchar)",
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
                if outcome["readings"] - stored:
                    parts.append(
                        self.env._("%(count)s already known", count=outcome["readings"] - stored)
                    )
                result = ", ".join(parts)
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
