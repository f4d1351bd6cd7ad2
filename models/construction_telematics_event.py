import hashlib
import json
import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from odoo import api, fields, models
from odoo.tools import SQL
from psycopg2 import errors as pg_errors
from psycopg2.extras import Json, execute_values

from ..protocols import iso15143, safe_json, telematics_payloads
from ..state_machine import TELEMATICS_EVENT

_logger = logging.getLogger(__name__)

EVENT_STATES = [
    ("pending", "Pending"),
    ("unmapped", "Unmapped device"),
    ("processed", "Processed"),
    ("failed", "Failed (will retry)"),
    ("dead", "Dead"),
    ("rejected", "Rejected"),
]
# Columns an event's state change may set beside the state, with their SQL types.
MOVE_COLUMNS = {
    "equipment_id": "int",
    "request_id": "int",
    "result": "varchar",
    "attempts": "int",
    "last_error": "text",
    "next_attempt_at": "timestamp",
}


# An event waiting for processing, and whether it is due now (%(now)s, naive UTC):
# the queue, its count and its stall are read with the same rule.
QUEUED_SQL = "state IN ('pending', 'failed') AND active"
DUE_SQL = QUEUED_SQL + " AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)"
# The shard of an event's device among %(shard_count)s: all events of a device fall in
# one shard, and so do a machine's, unless it has devices of its own in two shards
# (two sources, a replaced gateway): its workers then take turns on it, as
# unsharded workers do on every machine.
SHARD_SQL = "mod(hashtext(COALESCE(device_id, '')) & 2147483647, %(shard_count)s)"

# Processing workers (``odoo-bin telematics_worker``) LISTEN on this channel and name
# their connections after WORKER_APPLICATION_NAME, which is how receipt knows one runs.
WORKER_CHANNEL = "construction_telematics_events"
WORKER_APPLICATION_NAME = "cas-telematics-worker"
WORKER_SEEN_SECONDS = 5
# Whether a processing worker is connected (%(worker)s: the name pattern).
WORKER_CONNECTED_SQL = """SELECT EXISTS(SELECT 1 FROM pg_stat_activity
                                         WHERE datname = current_database()
                                           AND application_name LIKE %(worker)s)"""
_WORKER_SEEN = {}  # dbname -> (time.monotonic() of the check, a worker was connected)

# What each receipt endpoint (HTTP path or MQTT topic kind) stores as the event kind.
ENDPOINT_KINDS = {"alerts": "alert", "readings": "readings", "iso15143": "readings"}


class IngestError(Exception):
    """A body refused as a whole; ``errors`` name the fields, ``status`` is the HTTP answer."""

    def __init__(self, status, title, detail, errors=None, store=None):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        # What to keep as a rejected ledger event, for authenticated senders.
        self.store = store


def _canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _other_device_error(device):
    return {"field": "device_id", "message": f"must be {device!r}, the device of the topic"}


class ConstructionTelematicsEvent(models.Model):
    """The inbound ledger: every accepted or rejected item, stored before it is acknowledged."""

    _name = "construction.telematics.event"
    _description = "Telematics event"
    _order = "id desc"
    _rec_name = "dedupe_key"

    source_id = fields.Many2one(
        "construction.telematics.source", required=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one("res.company", required=True, index=True)
    channel = fields.Selection(
        [("http", "HTTP"), ("mqtt", "MQTT"), ("pull", "Pull")], required=True, default="http"
    )
    received_at = fields.Datetime(required=True, default=fields.Datetime.now, index=True)
    dedupe_key = fields.Char(string="Deduplication key", required=True)
    kind = fields.Selection([("alert", "Alert"), ("readings", "Readings")], required=True)
    device_id = fields.Char(string="Device ID", index=True)
    payload = fields.Json(required=True)
    payload_sha256 = fields.Char(string="Payload SHA-256", required=True)
    item_count = fields.Integer(default=1)
    retained = fields.Boolean(
        string="Retained delivery",
        readonly=True,
        help="The MQTT broker sent it as its topic's retained message, because the consumer "
        "subscribed: stale state, perhaps months old, not a new event. It raises no alert, "
        "and its readings are kept only if newer than the machine's latest.",
    )
    state = fields.Selection(EVENT_STATES, required=True, default="pending", index=True)
    attempts = fields.Integer(default=0)
    next_attempt_at = fields.Datetime(string="Next attempt at")
    last_error = fields.Text()
    validation_errors = fields.Json()
    validation_errors_text = fields.Text(
        string="Validation errors", compute="_compute_validation_errors_text"
    )
    payload_text = fields.Text(string="Payload (formatted)", compute="_compute_payload_text")
    equipment_id = fields.Many2one("maintenance.equipment", index="btree_not_null")
    request_id = fields.Many2one("maintenance.request", index="btree_not_null")
    reading_ids = fields.One2many("construction.telematics.reading", "event_id")
    result = fields.Char(help="What processing produced.")
    processed_at = fields.Datetime()
    active = fields.Boolean(default=True)

    _sql_constraints = [
        (
            "source_dedupe_key_uniq",
            "unique(source_id, dedupe_key)",
            "This event was already received from this source.",
        ),
    ]

    def init(self):
        # The queue query scans only what waits, however large the processed history grows.
        self.env.cr.execute(
            f"""CREATE INDEX IF NOT EXISTS construction_telematics_event_queue_idx
                ON construction_telematics_event (id) WHERE {QUEUED_SQL}"""
        )
        # A source's newest events (its ledger list, the health check's last success)
        # without scanning every newer event of the other sources: without it, the
        # newest processed event of a source quiet for a while took 233 ms to find
        # in a ledger of 314,000 events, once per source at every health check.
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS construction_telematics_event_source_newest_idx
               ON construction_telematics_event (source_id, id)"""
        )
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS construction_telematics_event_unmapped_idx
               ON construction_telematics_event (source_id, device_id)
               WHERE state = 'unmapped'"""
        )

    @api.depends("kind", "state", "device_id", "item_count")
    def _compute_display_name(self):
        """A title a person reads: what it is and from which device, never a hash."""
        # Only the alert code of the payload, read in SQL: a readings payload may
        # hold thousands of values that a title does not need.
        codes = {}
        alert_ids = tuple(event.id for event in self if event.id and event.kind == "alert")
        if alert_ids:
            self.env.cr.execute(
                """SELECT id, payload->>'code' FROM construction_telematics_event
                   WHERE id IN %s AND jsonb_typeof(payload) = 'object'""",
                [alert_ids],
            )
            codes = dict(self.env.cr.fetchall())
        for event in self:
            device = event.device_id or self.env._("unknown device")
            if event.kind == "alert":
                code = codes.get(event.id)
                what = self.env._("Alert %(code)s", code=code) if code else self.env._("Alert")
            else:
                what = self.env._("%(n)s reading(s)", n=event.item_count or 0)
            if event.state == "rejected":
                what = self.env._("Rejected: %(what)s", what=what)
            event.display_name = self.env._("%(what)s from %(device)s", what=what, device=device)

    def action_map_device(self):
        """Open a new mapping of this event's device, prefilled; saving it queues the event."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Map device %(device)s", device=self.device_id),
            "res_model": "construction.external.id",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {
                "default_system_id": self.source_id.external_system_id.id,
                "default_external_id": self.device_id,
                "default_note": self.env._("Mapped from the telematics ledger"),
            },
        }

    @api.depends("validation_errors")
    def _compute_validation_errors_text(self):
        for event in self:
            errors = event.validation_errors or []
            event.validation_errors_text = "\n".join(
                f"{item.get('field')}: {item.get('message')}" for item in errors
            )

    @api.depends("payload")
    def _compute_payload_text(self):
        for event in self:
            event.payload_text = json.dumps(event.payload, indent=2, sort_keys=True)

    # ------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------
    @api.model
    def _set_state(self, moves):
        """Move events to new states, set-wise: the one place that changes an event's state.

        ``moves`` are ``(event id, new state, {column: value})`` with columns of
        ``MOVE_COLUMNS``. Each move must be allowed by ``TELEMATICS_EVENT``;
        the check runs inside the UPDATE (``state = ANY(allowed sources)``), so
        it costs no extra query, and a refused move raises
        ``InvalidStateTransition`` (the caller's savepoint undoes the rest).
        """
        groups = defaultdict(list)
        for event_id, state, values in moves:
            groups[tuple(sorted(values))].append((event_id, state, values))
        if not groups:
            return
        self.flush_model()
        for columns, group in groups.items():
            assignments = "".join(f", {column} = v.{column}" for column in columns)
            casts = "".join(f", %s::{MOVE_COLUMNS[column]}" for column in columns)
            rows = [
                (
                    event_id,
                    state,
                    list(TELEMATICS_EVENT.sources(state)),
                    *(values[column] for column in columns),
                )
                for event_id, state, values in group
            ]
            moved = execute_values(
                self.env.cr._obj,
                f"""UPDATE construction_telematics_event e
                    SET state = v.state{assignments},
                        processed_at = CASE WHEN v.state = 'processed'
                                            THEN now() at time zone 'UTC' END,
                        write_date = now() at time zone 'UTC'
                    FROM (VALUES %s) AS v(id, state, sources{"".join(", " + c for c in columns)})
                    WHERE e.id = v.id AND e.state = ANY(v.sources)
                    RETURNING e.id""",
                rows,
                template=f"(%s, %s::varchar, %s::varchar[]{casts})",
                page_size=1000,
                fetch=True,
            )
            refused = {row[0] for row in rows} - {event_id for (event_id,) in moved}
            if refused:
                self.env.cr.execute(
                    "SELECT id, state FROM construction_telematics_event WHERE id IN %s",
                    [tuple(refused)],
                )
                current = dict(self.env.cr.fetchall())
                TELEMATICS_EVENT.check(
                    (current.get(event_id), state)
                    for event_id, state, _values in group
                    if event_id in refused
                )
        self.invalidate_model(["state", "processed_at", *MOVE_COLUMNS])

    # ------------------------------------------------------------------
    # Receipt
    # ------------------------------------------------------------------
    @api.model
    def _insert_rows(self, rows):
        """Insert ledger rows, skipping those already received. Returns the inserted keys.

        ON CONFLICT makes a resent or concurrently sent event a no-op instead of an
        error, so a retried HTTP request answers the same and creates nothing twice.
        """
        if not rows:
            return set()
        TELEMATICS_EVENT.check((None, row["state"]) for row in rows)
        uid = self.env.uid
        values = [
            (
                row["source_id"],
                row["company_id"],
                row["channel"],
                row["dedupe_key"],
                row["kind"],
                row.get("device_id"),
                # The canonical text the digest was taken of, when the row has it:
                # serialising a payload again cost a tenth of receipt.
                row.get("payload_json") or Json(row["payload"]),
                row["payload_sha256"],
                row.get("item_count", 1),
                row.get("retained", False),
                row["state"],
                Json(row["validation_errors"]) if row.get("validation_errors") else None,
                row.get("last_error"),
                uid,
                uid,
            )
            for row in rows
        ]
        inserted = execute_values(
            self.env.cr._obj,
            """INSERT INTO construction_telematics_event
                   (source_id, company_id, channel, dedupe_key, kind, device_id, payload,
                    payload_sha256, item_count, retained, state, validation_errors, last_error,
                    create_uid, write_uid, received_at, create_date, write_date, attempts, active)
               VALUES %s
               ON CONFLICT (source_id, dedupe_key) DO NOTHING
               RETURNING dedupe_key""",
            values,
            template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " now() at time zone 'UTC', now() at time zone 'UTC',"
            " now() at time zone 'UTC', 0, true)",
            page_size=1000,
            fetch=True,
        )
        return {key for (key,) in inserted}

    @api.model
    def _receive_body(self, source, endpoint, body, channel="http", device=None, collect=None):
        """Receive one body (bytes), whatever carried it: the one receipt path of every channel.

        ``endpoint`` is a key of ``ENDPOINT_KINDS``. The body is parsed and
        validated exactly as ``/telematics/v1/<endpoint>`` does, and stored in the
        ledger; returns ``{accepted, duplicates, rejected}``. A body refused as a
        whole is stored as a *rejected* event and raises ``IngestError``. When
        ``device`` is given (an MQTT topic names its device), alerts and readings
        of another device are rejected: a gateway speaks for its own device only.
        With ``collect`` (a list), the ledger rows are appended to it instead of
        inserted, and None is returned: the caller inserts the rows of many bodies
        with one ``_insert_rows``.
        """
        try:
            document = self._parse_body(body)
            if endpoint == "alerts":
                return self._receive_alert_document(source, document, channel, device, collect)
            if endpoint == "readings":
                return self._receive_readings_document(source, document, channel, device, collect)
            return self._receive_iso_document(source, document, channel, collect)
        except IngestError as exc:
            if exc.store is not None:
                row = self._rejected_row(
                    source, channel, ENDPOINT_KINDS[endpoint], exc.store, exc.errors, device
                )
                if collect is None:
                    self._insert_rows([row])
                else:
                    collect.append(row)
            raise

    @api.model
    def _parse_body(self, body):
        """The JSON document of ``body``, refused when no later step may see it."""
        try:
            document = safe_json.loads(body)
        except safe_json.MalformedJSON as exc:
            raise IngestError(
                400,
                "Malformed JSON",
                f"The body is not valid JSON: {exc}",
                [{"field": "$", "message": "is not valid JSON"}],
                store=safe_json.storable_raw_body(body),
            ) from None
        hostile = safe_json.find_hostile(body, document)
        if hostile:
            field, message = hostile
            raise IngestError(
                422,
                "Invalid request",
                f"{field} {message}",
                [{"field": field, "message": message}],
                store=safe_json.storable_raw_body(body),
            )
        return document

    @api.model
    def _receive_alert_document(self, source, document, channel, device=None, collect=None):
        items, structure_error = telematics_payloads.split_alerts(document)
        if structure_error:
            raise IngestError(
                422,
                "Invalid request",
                structure_error["message"],
                [structure_error],
                store=document,
            )
        return self._receive_alerts(source, items, channel=channel, device=device, collect=collect)

    @api.model
    def _receive_readings_document(self, source, document, channel, device=None, collect=None):
        items, structure_error = telematics_payloads.split_readings(document)
        if structure_error:
            raise IngestError(
                422,
                "Invalid request",
                f"{structure_error['field']} {structure_error['message']}",
                [structure_error],
                store=document,
            )
        readings, rejected = [], []
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for index, item in enumerate(items):
            reading, errors = telematics_payloads.parse_reading(item, now=now)
            if not errors and device is not None and reading["device_id"] != device:
                errors = [_other_device_error(device)]
            if errors:
                rejected.append((index, item, errors))
            else:
                reading["_index"] = index
                readings.append(reading)
        with_sensors = [reading for reading in readings if "sensors" in reading]
        if with_sensors:
            # Named sensor values against their declared ranges, like the fixed metrics.
            sensor_errors = self.env["construction.telematics.sensor"]._receipt_errors(
                source, with_sensors
            )
            if sensor_errors:
                readings = [r for r in readings if r["_index"] not in sensor_errors]
                rejected.extend(
                    (index, items[index], errors) for index, errors in sensor_errors.items()
                )
                rejected.sort(key=lambda entry: entry[0])
        return self._receive_readings(source, readings, rejected, channel=channel, collect=collect)

    @api.model
    def _receive_iso_document(self, source, document, channel, collect=None):
        readings, errors, left_out = iso15143.fleet_to_readings(document)
        # A page with nothing to map but nothing wrong (no equipment, or machines
        # carrying only elements the mapping ignores) is a valid empty result:
        # refusing it would keep a rejected event for every poll of such a page.
        if errors and not readings and not left_out:
            raise IngestError(
                422,
                "No valid item",
                "The snapshot holds no reading this API can map.",
                [error for _index, error in errors],
                store=document,
            )
        by_equipment = {}
        for index, error in errors:
            by_equipment.setdefault(index, []).append(error)
        equipment = iso15143.equipment_list_of(document)
        rejected = [
            (index, equipment[index] if index is not None else document, errors)
            for index, errors in by_equipment.items()
        ]
        return self._receive_readings(
            source, readings, rejected, channel=channel, collect=collect, left_out=left_out
        )

    @api.model
    def _rejected_row(self, source, channel, kind, item, errors, device=None):
        text = _canonical_json(item)
        digest = _sha256(text)
        device_id = item.get("device_id") if isinstance(item, dict) else None
        if not isinstance(device_id, str):
            device_id = device
        return {
            "source_id": source.id,
            "company_id": source.company_id.id,
            "channel": channel,
            "dedupe_key": f"rejected:{digest}",
            "kind": kind,
            "device_id": device_id if isinstance(device_id, str) else None,
            "payload": item,
            "payload_json": text,
            "payload_sha256": digest,
            "state": "rejected",
            "validation_errors": errors,
        }

    @api.model
    def _receive_alerts(self, source, items, channel="http", device=None, collect=None):
        """Store alert items; returns the API answer ``{accepted, duplicates, rejected}``."""
        rows, rejected, accepted_keys = [], [], []
        seen = set()
        for index, item in enumerate(items):
            alert, errors = telematics_payloads.parse_alert(item)
            if not errors and device is not None and alert["device_id"] != device:
                errors = [_other_device_error(device)]
            if errors:
                rejected.append({"index": index, "errors": errors})
                rows.append(self._rejected_row(source, channel, "alert", item, errors))
                continue
            key = f"alert:{alert['event_id']}"
            accepted_keys.append(key)
            if key in seen:
                continue
            seen.add(key)
            text = _canonical_json(item)
            rows.append(
                {
                    "source_id": source.id,
                    "company_id": source.company_id.id,
                    "channel": channel,
                    "dedupe_key": key,
                    "kind": "alert",
                    "device_id": alert["device_id"],
                    "payload": item,
                    "payload_json": text,
                    "payload_sha256": _sha256(text),
                    "state": "pending",
                }
            )
        if collect is not None:
            collect.extend(rows)
            return None
        inserted = self._insert_rows(rows)
        # An event_id sent twice in one request is accepted once.
        accepted = len(inserted & set(accepted_keys))
        if accepted:
            self._trigger_processing()
        return {
            "accepted": accepted,
            "duplicates": len(accepted_keys) - accepted,
            "rejected": rejected,
        }

    @api.model
    def _receive_readings(
        self, source, readings, rejected, channel="http", collect=None, left_out=()
    ):
        """Store validated readings, one ledger event per device and batch.

        ``readings`` are normalised (``parse_reading`` output, with ``_index``);
        ``rejected`` are ``(index, item, errors)``. Items of one device and time in
        a batch are one reading: a later one adds the values the first lacks (an
        ISO 15143-3 snapshot dates each element on its own), and is a duplicate if
        it adds none. A batch sent again with the same times and values is a
        duplicate; with values it did not hold, it is a new event, whose
        processing adds them to the readings already stored.

        ``left_out`` are ``(index, device, note)`` of ISO 15143-3 elements left out
        for a unit the mapping does not know: each note, with the element as
        sent, is kept in its device's event (``payload["left_out"]``, an event of
        no reading if the device has none), and the answer lists them.
        """
        by_device = {}
        notes = defaultdict(list)
        for _index, device_id, note in left_out:
            by_device.setdefault(device_id, {})
            notes[device_id].append(note)
        merged = defaultdict(int)  # device -> items that added values to an earlier one
        duplicates = 0
        for reading in readings:
            device = by_device.setdefault(reading["device_id"], {})
            stamp = reading["at"].isoformat()
            values = {
                key: value
                for key, value in reading.items()
                if key not in ("device_id", "at", "_index") and value is not None
            }
            kept = device.get(stamp)
            if kept is None:
                device[stamp] = values | {"at": stamp}
                continue
            added = {key: value for key, value in values.items() if key not in kept}
            if added:
                kept.update(added)
                merged[reading["device_id"]] += 1
            else:
                duplicates += 1
        rows = []
        for device_id, by_stamp in by_device.items():
            stamps = sorted(by_stamp)
            body = {"device_id": device_id, "readings": [by_stamp[stamp] for stamp in stamps]}
            key_digest = None
            if notes[device_id]:
                if stamps:  # what was left out beside readings does not tell them apart
                    key_digest = _sha256(_canonical_json(body))
                body["left_out"] = notes[device_id]
            text = _canonical_json(body)
            digest = _sha256(text)
            rows.append(
                {
                    "source_id": source.id,
                    "company_id": source.company_id.id,
                    "channel": channel,
                    # Same device, times and values: the same batch sent again.
                    "dedupe_key": f"readings:{device_id}:{key_digest or digest}",
                    "kind": "readings",
                    "device_id": device_id,
                    "payload": body,
                    "payload_json": text,
                    "payload_sha256": digest,
                    "item_count": len(stamps),
                    "state": "pending",
                }
            )
        for _index, item, errors in rejected:
            rows.append(self._rejected_row(source, channel, "readings", item, errors))
        if collect is not None:
            collect.extend(rows)
            return None
        inserted = self._insert_rows(rows)
        accepted, to_process = 0, False
        for row in rows:
            if row["state"] != "pending":
                continue
            items = row["item_count"] + merged[row["device_id"]]
            if row["dedupe_key"] in inserted:
                # Counted or not: an event of elements left out only has no item.
                accepted, to_process = accepted + items, True
            else:
                duplicates += items
        if to_process:
            self._trigger_processing()
        answer = {
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": [{"index": index, "errors": errors} for index, _item, errors in rejected],
        }
        if left_out:
            answer["left_out"] = [
                {"index": index, "field": note["field"], "message": note["message"]}
                for index, _device_id, note in left_out
            ]
        return answer

    @api.model
    def _trigger_processing(self):
        """Wake the processing when this transaction commits.

        A processing worker (``odoo-bin telematics_worker``) LISTENs on
        ``WORKER_CHANNEL``; PostgreSQL delivers the NOTIFY at commit, once per
        transaction however often it is sent. While a worker is connected the
        scheduled action is not triggered: Odoo's cron threads stay free for the
        other jobs, and the action's own schedule remains the fallback.
        """
        if self.env.context.get("telematics_defer_trigger"):
            return  # the caller triggers once for a whole batch of receipts
        self.env.cr.execute(SQL("NOTIFY %s", SQL.identifier(WORKER_CHANNEL)))
        if not self._processing_worker_connected():
            cron = self.env.ref("construction_asset_sync.ir_cron_process_telematics_events")
            cron.sudo()._trigger()

    @api.model
    def _processing_worker_connected(self):
        """Whether a processing worker holds a connection to this database (cached 5 s)."""
        dbname = self.env.cr.dbname
        checked_at, connected = _WORKER_SEEN.get(dbname, (None, False))
        now = time.monotonic()
        if checked_at is None or now - checked_at > WORKER_SEEN_SECONDS:
            self.env.cr.execute(WORKER_CONNECTED_SQL, {"worker": f"{WORKER_APPLICATION_NAME}%"})
            connected = self.env.cr.fetchone()[0]
            _WORKER_SEEN[dbname] = (now, connected)
        return connected

    # ------------------------------------------------------------------
    # Processing
    # ------------------------------------------------------------------
    @api.model
    def _cron_process(self, time_budget=50.0):
        """Process the queue in committed batches until it is empty or time runs out.

        Left to the processing workers while one is connected: the action is the
        fallback that guarantees progress when none runs, and the cron thread it
        would hold for up to ``time_budget`` seconds belongs to the other jobs
        (the Odyssee sync above all). Unless the queue has stalled all the same (a
        worker connected but hung, or one that cannot keep up): then the action
        processes too, beside it.
        """
        if self._processing_worker_connected():
            stalled_since = self._processing_stalled_since()
            if not stalled_since:
                self.env["ir.cron"]._notify_progress(done=0, remaining=0)
                return 0
            _logger.warning(
                "telematics: a processing worker is connected but events have waited "
                "since %s; the scheduled action processes them",
                stalled_since,
            )
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget
        done = 0
        while time.monotonic() < deadline:
            processed = self._process_batch()
            done += processed
            if auto_commit:
                self.env.cr.commit()
            if not processed:
                break
        remaining = self._queued_count() if done else 0
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done

    @api.model
    def _processing_stalled_since(self):
        """When the oldest event due for processing arrived, if that is longer ago
        than the health check's stall threshold (*Processing is stalled*); else None."""
        self.flush_model()
        minutes = self.env["res.config.settings"]._construction_setting("health_stall_minutes")
        now = fields.Datetime.now()
        self.env.cr.execute(
            f"""SELECT min(COALESCE(next_attempt_at, received_at))
                FROM construction_telematics_event
                WHERE {DUE_SQL} AND COALESCE(next_attempt_at, received_at) <= %(since)s""",
            {"now": now, "since": now - timedelta(minutes=minutes)},
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _queued_count(self):
        self.flush_model()
        self.env.cr.execute(
            f"SELECT count(*) FROM construction_telematics_event WHERE {DUE_SQL}",
            {"now": fields.Datetime.now()},
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _process_batch(self, limit=None, shards=None, shard_count=None):
        """Lock and process one batch of due events; returns how many were taken.

        SKIP LOCKED lets several workers share the queue without ever taking the
        same event; the locks, the outcome and the produced records all commit or
        roll back together, so a crash mid-batch loses and duplicates nothing.

        With ``shards`` (indexes below ``shard_count``), only the events of those
        shards of devices (``SHARD_SQL``) are taken: workers given shards of their
        own never wait for each other's machines (see ``odoo-bin telematics_worker``).
        """
        setting = self.env["res.config.settings"]._construction_setting
        self.flush_model()
        params = {"now": fields.Datetime.now(), "limit": limit or setting("telematics_batch_size")}
        shard_filter = ""
        if shards is not None:
            shard_filter = f"AND {SHARD_SQL} = ANY(%(shards)s)"
            params.update(shards=list(shards), shard_count=shard_count)
        self.env.cr.execute(
            f"""SELECT id, item_count FROM construction_telematics_event
                WHERE {DUE_SQL} {shard_filter}
                ORDER BY id
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED""",
            params,
        )
        # Memory stays bounded by items, not events: one event may hold 5,000 readings.
        # Locked rows past the budget are released at commit, untouched.
        candidates = self.env.cr.fetchall()
        budget, ids = setting("telematics_batch_items"), []
        for event_id, item_count in candidates:
            if ids and budget - item_count < 0:
                break
            budget -= item_count
            ids.append(event_id)
        if not ids:
            return 0
        # Outcome and outputs commit together, so losing the last commits in a
        # server crash only leaves events queued: reprocessing them is harmless.
        # Receipt, which acknowledges senders, keeps synchronous commits.
        self.env.cr.execute("SET LOCAL synchronous_commit TO OFF")
        events = self.browse(ids)
        processor = self.env["construction.telematics.processor"]
        try:
            with self.env.cr.savepoint():
                processor._process(events)
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            self._postpone(events)
        except Exception:
            # Find the culprit: each event alone, so one bad event fails alone.
            self.env.invalidate_all()
            for event in events:
                event._process_alone()
        self.flush_model()
        return len(ids)

    def _postpone(self, events):
        # Another worker changed the same machine since this transaction began:
        # leave the events queued, untouched, for the next batch's fresh snapshot.
        self.env.invalidate_all()
        _logger.debug("telematics events %s postponed after a concurrent update", events.ids)

    def _process_alone(self):
        self.ensure_one()
        try:
            with self.env.cr.savepoint():
                self.env["construction.telematics.processor"]._process(self)
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            self._postpone(self)
        except Exception as exc:
            self.env.invalidate_all()
            _logger.warning(
                "telematics event %s failed (attempt %s)", self.id, self.attempts + 1, exc_info=True
            )
            self._mark_failed(exc)

    def _mark_failed(self, exc):
        attempts = self.attempts + 1
        if attempts >= self.env["res.config.settings"]._construction_setting(
            "telematics_max_attempts"
        ):
            state, retry_at = "dead", None
        else:
            state = "failed"
            retry_at = fields.Datetime.now() + timedelta(minutes=2 ** (attempts - 1))
        error = f"{type(exc).__name__}: {exc}"
        self._set_state(
            [
                (
                    self.id,
                    state,
                    {"attempts": attempts, "last_error": error, "next_attempt_at": retry_at},
                )
            ]
        )

    # ------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------
    @api.model
    def _requeue_unmapped(self, system, device_ids):
        """Queue again the events that waited for a mapping of ``device_ids``."""
        if not device_ids:
            return 0
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """SELECT e.id FROM construction_telematics_event e
                   JOIN construction_telematics_source s ON e.source_id = s.id
                   WHERE e.state = 'unmapped'
                     AND s.external_system_id = %s AND e.device_id IN %s""",
                system.id,
                tuple(device_ids),
            )
        )
        ids = [event_id for (event_id,) in self.env.cr.fetchall()]
        self._set_state([(event_id, "pending", {"next_attempt_at": None}) for event_id in ids])
        if ids:
            self._trigger_processing()
        return len(ids)

    def action_replay(self):
        """Queue chosen events again (dead, failed, unmapped or processed ones)."""
        replayable = self.filtered(lambda event: event.state != "rejected")
        self.check_access("write")
        self._set_state(
            [
                (event.id, "pending", {"attempts": 0, "next_attempt_at": None, "last_error": None})
                for event in replayable
            ]
        )
        if replayable:
            self._trigger_processing()
        return True

    def unlink(self):
        ids = self.ids
        result = super().unlink()
        # The readings history has no foreign key to cascade (see HistoryMany2one).
        self.env["construction.telematics.reading"]._unlink_history_of("event_id", ids)
        return result

    @api.model
    def _cron_archive_processed(self):
        """Archive processed events older than the retention period (they stay searchable)."""
        # Idempotency keys expire on their own lifetime, whatever the ledger's retention.
        self.env["construction.telematics.idempotency"]._purge_expired()
        days = self.env["res.config.settings"]._construction_setting("telematics_retention_days")
        if days <= 0:
            return 0
        self.flush_model()
        self.env.cr.execute(
            """UPDATE construction_telematics_event SET active = false,
                   write_date = now() at time zone 'UTC'
               WHERE active AND state = 'processed'
                 AND processed_at < (now() at time zone 'UTC') - %s * interval '1 day'""",
            [days],
        )
        count = self.env.cr.rowcount
        self.invalidate_model(["active"])
        return count
