"""MQTT consumers of a telematics source: their health, and the receipt of their batches.

The consumer process (``cli/telematics_mqtt.py``) runs one paho client per source
(``protocols/mqtt_consumer.py``); each batch it receives is stored here, in one
transaction, through the same receipt as the HTTP API
(``construction.telematics.event._receive_body``), and only then acknowledged.
"""

import logging
import socket
from datetime import datetime, timedelta, timezone

import psycopg2
from odoo import api, fields, models

from ..protocols import external_ids, mqtt_topics, safe_json
from .construction_telematics_event import ENDPOINT_KINDS, IngestError

_logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
# A consumer that has not reported for this long is shown (and alerted) as disconnected.
STALE_SECONDS = 45
RAW_HEAD_BYTES = 4096
# Errors of the database itself: the batch is not acknowledged, the consumer retries it.
# (Serialization failures, deadlocks and cancelled queries are OperationalErrors.)
_DATABASE_TROUBLE = (psycopg2.OperationalError, psycopg2.InterfaceError)


def _utc(timestamp):
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


class ConstructionTelematicsMqttConsumer(models.Model):
    """One consumer process's connection for one source, as it last reported it."""

    _name = "construction.telematics.mqtt.consumer"
    _description = "Telematics MQTT consumer"
    _order = "source_id, name"

    name = fields.Char(string="Consumer", required=True, readonly=True)
    source_id = fields.Many2one(
        "construction.telematics.source", required=True, ondelete="cascade", readonly=True
    )
    company_id = fields.Many2one(related="source_id.company_id", store=True, index=True)
    client_id = fields.Char(string="MQTT client id", readonly=True)
    hostname = fields.Char(readonly=True)
    pid = fields.Integer(string="Process id", readonly=True)
    connected = fields.Boolean(readonly=True, help="As the consumer last reported.")
    heartbeat_at = fields.Datetime(string="Last report", readonly=True)
    last_message_at = fields.Datetime(readonly=True)
    waiting = fields.Integer(
        readonly=True, help="Messages received and not yet committed and acknowledged."
    )
    committed_total = fields.Integer(string="Messages committed", readonly=True)
    connection_count = fields.Integer(
        string="Connections", readonly=True, help="Connections made since the process started."
    )
    last_error = fields.Char(readonly=True)
    last_connected_at = fields.Datetime(
        string="Last connected report", readonly=True, help="Its last report while receiving."
    )
    connection_state = fields.Selection(
        [("connected", "Connected"), ("disconnected", "Disconnected")],
        string="Connection",
        compute="_compute_connection_state",
    )

    _sql_constraints = [
        ("source_name_uniq", "unique(source_id, name)", "Consumer names are unique per source."),
    ]

    @api.depends("connected", "heartbeat_at")
    def _compute_connection_state(self):
        stale = fields.Datetime.now() - timedelta(seconds=STALE_SECONDS)
        for consumer in self:
            fresh = consumer.heartbeat_at and consumer.heartbeat_at >= stale
            consumer.connection_state = (
                "connected" if consumer.connected and fresh else "disconnected"
            )

    # ------------------------------------------------------------------
    # Called by the consumer process
    # ------------------------------------------------------------------
    @api.model
    def _report(self, source_id, name, client_id, snapshot):
        """Record what a consumer says about itself (its own short transaction)."""
        values = {
            "client_id": client_id,
            "hostname": socket.gethostname(),
            "pid": snapshot.get("pid") or 0,
            "connected": bool(snapshot["connected"]),
            "heartbeat_at": fields.Datetime.now(),
            "last_message_at": _utc(snapshot.get("last_message_at")),
            "waiting": snapshot.get("waiting") or 0,
            "committed_total": snapshot.get("committed_total") or 0,
            "connection_count": snapshot.get("connections") or 0,
            "last_error": (snapshot.get("last_error") or "")[:500] or False,
        }
        if snapshot["connected"]:
            values["last_connected_at"] = values["heartbeat_at"]
        consumer = self.sudo().search([("source_id", "=", source_id), ("name", "=", name)])
        if consumer:
            if not values["last_message_at"]:
                del values["last_message_at"]
            consumer.write(values)
        else:
            consumer = self.sudo().create(dict(values, source_id=source_id, name=name))
        return consumer

    @api.model
    def _ingest(self, source, messages):
        """Store a batch of ``protocols.mqtt_consumer.Received`` of ``source``, in arrival order.

        Every message ends in the ledger (accepted, duplicate or rejected), on its
        machine (status), or is an ISO 15143-3 page with nothing to keep, so that it
        can be acknowledged once this transaction commits. Only trouble of the
        database itself propagates: then nothing is acknowledged and the consumer
        retries the batch.
        """
        source = source.sudo()
        receiver = source._as_ingestion_user()
        Event = receiver.env["construction.telematics.event"].with_context(
            telematics_defer_trigger=True
        )
        # The ledger is written with plain SQL: check what the ORM would have.
        Event.check_access("create")
        limit = int(
            self.env["res.config.settings"]._construction_setting("telematics_max_body_mb")
            * 1024
            * 1024
        )
        statuses, planned = {}, []  # planned: (message, device, endpoint, its ledger rows)
        for message in messages:
            try:
                device, kind = mqtt_topics.parse(
                    source.mqtt_topic_prefix, source.mqtt_source_code, message.topic
                )
            except mqtt_topics.TopicError as exc:
                # Only when the source's topics changed while messages were in flight.
                _logger.warning("MQTT source %s: message ignored: %s", source.id, exc)
                continue
            if kind == mqtt_topics.STATUS:
                statuses[device] = mqtt_topics.parse_status(message.payload)
                continue
            endpoint = mqtt_topics.DATA_KINDS[kind]
            if len(message.payload) > limit:
                reason = f"must be at most {limit} bytes"
                rows = [self._refused_row(Event, receiver, endpoint, message, device, reason, True)]
            else:
                rows = self._rows_of(Event, receiver, endpoint, message, device)
            planned.append((message, device, endpoint, rows))
        inserted = self._insert_planned(Event, receiver, planned)
        if any(
            row["state"] == "pending" and row["dedupe_key"] in inserted
            for *_head, rows in planned
            for row in rows
        ):
            Event.with_context(telematics_defer_trigger=False)._trigger_processing()
        if statuses:
            self._apply_statuses(source, statuses)
        return inserted

    def _rows_of(self, Event, source, endpoint, message, device):
        """The ledger rows of one message, validated exactly as the HTTP API does."""
        rows = []
        try:
            Event._receive_body(
                source,
                endpoint,
                message.payload,
                channel="mqtt",
                # An ISO 15143-3 snapshot speaks for a fleet: its topic names the gateway.
                device=device if endpoint != "iso15143" else None,
                collect=rows,
            )
        except IngestError:
            pass  # its rejected row is in ``rows``
        except _DATABASE_TROUBLE:
            raise
        except Exception as exc:
            _logger.warning(
                "MQTT source %s: message on %s could not be received",
                source.id,
                message.topic,
                exc_info=True,
            )
            reason = f"could not be received ({exc})"
            return [self._refused_row(Event, source, endpoint, message, device, reason)]
        for row in rows:
            self._mark_retained(row, message)
        return rows

    @staticmethod
    def _mark_retained(row, message):
        """Sent because the consumer subscribed, perhaps months after it was
        published: processing takes it as stale state, never as an alert.

        A retained copy never stands for the live delivery of the same message,
        which may come after it (a persistent session's queued copy behind the
        replay of its new subscription, a device's resend): taken as a duplicate
        of the copy, a live alert would open nothing. So it has a key of its own.
        """
        row["retained"] = message.retain
        if message.retain:
            row["dedupe_key"] = f"retained:{row['dedupe_key']}"

    def _insert_planned(self, Event, source, planned):
        """Insert the rows of a whole batch in one statement; the dedupe keys inserted.

        Should the database refuse a row, each message is inserted alone and the
        one at fault is kept as rejected, raw, so the batch can still be acknowledged.
        """
        cr = self.env.cr
        try:
            with cr.savepoint():
                return Event._insert_rows([row for *_head, rows in planned for row in rows])
        except _DATABASE_TROUBLE:
            raise
        except Exception:
            _logger.warning("MQTT source %s: a batch was refused, one by one", source.id)
        inserted = set()
        for message, device, endpoint, rows in planned:
            try:
                with cr.savepoint():
                    inserted |= Event._insert_rows(rows)
            except _DATABASE_TROUBLE:
                raise
            except Exception as exc:
                reason = f"could not be stored ({type(exc).__name__})"
                refused = self._refused_row(Event, source, endpoint, message, device, reason)
                inserted |= Event._insert_rows([refused])
        return inserted

    def _refused_row(self, Event, source, endpoint, message, device, reason, head=False):
        payload = message.payload[:RAW_HEAD_BYTES] if head else message.payload
        stored = safe_json.storable_raw_body(payload) | {
            "topic": message.topic,
            "bytes": len(message.payload),
        }
        row = Event._rejected_row(
            source,
            "mqtt",
            ENDPOINT_KINDS[endpoint],
            stored,
            [{"field": "$", "message": reason}],
            device,
        )
        self._mark_retained(row, message)
        return row

    def _apply_statuses(self, source, statuses):
        machines = self.env["construction.external.id"]._to_internal(
            source.external_system_id, "maintenance.equipment", list(statuses)
        )
        now = fields.Datetime.now()
        for device, online in statuses.items():
            machine = machines.get(external_ids.normalize(device))
            if online is None or not machine:
                continue
            machine.sudo()._set_telematics_connectivity("online" if online else "offline", now)

    # ------------------------------------------------------------------
    # Alerting
    # ------------------------------------------------------------------
    @api.model
    def _sources_without_consumer(self, sources):
        """The MQTT sources of ``sources`` whose consumers have all gone.

        Gone: none has reported receiving for ``STALE_SECONDS`` (a consumer still
        connecting after its start is not gone); a source whose consumers never
        reported is not counted here (its form shows *Disconnected*).
        """
        threshold = fields.Datetime.now() - timedelta(seconds=STALE_SECONDS)
        gone = sources.browse()
        for source in sources.filtered(lambda s: s.mqtt_enabled and s.mqtt_consumer_ids):
            alive = source.mqtt_consumer_ids.filtered(
                lambda consumer: consumer.connection_state == "connected"
                or (consumer.last_connected_at or consumer.create_date) >= threshold
            )
            if not alive:
                gone |= source
        return gone

    @api.model
    def _cron_check_consumers(self):
        """Tell integration administrators once when every consumer of an MQTT source is gone.

        Gone: none has reported receiving for ``STALE_SECONDS`` (a consumer still
        connecting after its start is not gone). Only the source is written here:
        the consumers' own rows are the consumer processes' to write. A source
        whose consumers never reported shows *Disconnected* on its form.
        """
        sources = self.env["construction.telematics.source"].search([("mqtt_enabled", "=", True)])
        admins = self.env.ref("construction_asset_sync.group_integration_admin").sudo().users
        gone = self._sources_without_consumer(sources)
        for source in sources.filtered("mqtt_consumer_ids"):
            alive = source not in gone
            if alive or source.mqtt_outage_notified:
                if alive and source.mqtt_outage_notified:
                    source.mqtt_outage_notified = False
                continue
            source.message_post(
                body=self.env._(
                    "No MQTT consumer of this source is connected: messages wait at the broker "
                    "(%(host)s:%(port)s). Start 'odoo-bin telematics_mqtt' or check its log.",
                    host=source.mqtt_host,
                    port=source.mqtt_port,
                ),
                partner_ids=admins.partner_id.ids,
                subtype_xmlid="mail.mt_comment",
            )
            source.mqtt_outage_notified = True
