"""``odoo-bin telematics_mqtt``: the MQTT consumer process of telematics ingestion.

    odoo-bin --addons-path=<paths> telematics_mqtt -c odoo.conf -d DB [--consumer-name NAME]
             [--source ID ...] [--max-batch 500] [--max-wait-ms 50]

One process serves every source of the database marked *Consume from MQTT* (or
the sources given with ``--source``), with one paho client per source
(``protocols/mqtt_consumer.py``). Each batch is committed in its own transaction
(``construction.telematics.mqtt.consumer._ingest``) before it is acknowledged.
Every ``HEARTBEAT_SECONDS`` the process reports each client's health to the
source and reloads the sources' configuration: a changed broker, topic or
credential restarts that client. SIGTERM and SIGINT stop it cleanly (what was
received is committed and acknowledged first); after a SIGKILL the broker sends
the unacknowledged messages again and the ledger recognises those it has.

The client id is ``cas-<database>-<source id>-<consumer name>``; it must be
stable (the broker keeps the session, its subscriptions and the messages
queued while the consumer is away under it) and unique: give every consumer
process of a database its own ``--consumer-name`` (default: the host name).
"""

import argparse
import logging
import os
import signal
import socket
import threading
import time

from odoo import SUPERUSER_ID, api
from odoo.cli import Command

from ..models.construction_telematics_mqtt_consumer import HEARTBEAT_SECONDS
from ..protocols import mqtt_consumer
from .long_running import load_registry, refreshed_registry, single_database

_logger = logging.getLogger(__name__)

# Test hook: seconds to sleep between a batch's commit and its acknowledgement, so
# that a test can kill -9 the process exactly there.
PAUSE_BEFORE_ACK_ENV = "CAS_MQTT_PAUSE_BEFORE_ACK"


def _arguments(args):
    parser = argparse.ArgumentParser(
        prog="odoo-bin telematics_mqtt",
        description="Consume telematics from MQTT into the ledger (see the addon's README).",
    )
    parser.add_argument("--consumer-name", default=socket.gethostname())
    parser.add_argument("--source", type=int, action="append", dest="source_ids", default=[])
    parser.add_argument("--max-batch", type=int, default=500)
    parser.add_argument("--max-wait-ms", type=int, default=50)
    parser.add_argument("--receive-maximum", type=int, default=1000)
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=HEARTBEAT_SECONDS,
        help="seconds between health reports and configuration reloads",
    )
    return parser.parse_known_args(args)


class TelematicsMqtt(Command):
    """Consume telematics from MQTT brokers into the ledger"""

    name = "telematics_mqtt"

    def run(self, args):
        options, odoo_args = _arguments(args)
        Runner(single_database("telematics_mqtt", odoo_args), options).run()


class Runner:
    def __init__(self, dbname, options):
        self.dbname = dbname
        self.options = options
        self.registry = load_registry(dbname)
        self.consumers = {}  # source id -> (configuration, Consumer)
        self.stopping = threading.Event()
        pause = float(os.environ.get(PAUSE_BEFORE_ACK_ENV) or 0)
        self.before_ack = (lambda _batch: time.sleep(pause)) if pause else None

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: self.stopping.set())
        _logger.info(
            "telematics_mqtt: consumer %r on database %s", self.options.consumer_name, self.dbname
        )
        while not self.stopping.is_set():
            try:
                self.registry = refreshed_registry(self.registry)
                self._reconcile(self._configurations())
                self._report()
            except Exception:
                _logger.exception("telematics_mqtt: could not refresh sources; retrying")
            self.stopping.wait(self.options.heartbeat)
        for _settings, consumer in self.consumers.values():
            consumer.stop()
        self._report()
        _logger.info("telematics_mqtt: consumer %r stopped", self.options.consumer_name)

    def _env(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def _configurations(self):
        """``{source id: (broker settings, filters)}`` of the sources to serve."""
        with self.registry.cursor() as cr:
            Source = self._env(cr)["construction.telematics.source"]
            if self.options.source_ids:
                sources = Source.browse(self.options.source_ids).exists()
            else:
                sources = Source.search([("mqtt_enabled", "=", True)])
            found = {}
            for source in sources:
                found[source.id] = mqtt_consumer.BrokerSettings(
                    host=source.mqtt_host,
                    port=source.mqtt_port or 1883,
                    tls=source.mqtt_tls,
                    tls_ca=(source.mqtt_tls_ca or None) if source.mqtt_tls else None,
                    username=source.mqtt_username or None,
                    password=source.mqtt_password or None,
                    client_id=f"cas-{self.dbname}-{source.id}-{self.options.consumer_name}",
                    subscriptions=tuple(source._mqtt_subscriptions()),
                    session_expiry=max(source.mqtt_session_expiry_hours, 0) * 3600,
                    receive_maximum=self.options.receive_maximum,
                )
            return found

    def _reconcile(self, configurations):
        for source_id in list(self.consumers):
            if configurations.get(source_id) != self.consumers[source_id][0]:
                self._stop(source_id)
        for source_id, settings in configurations.items():
            if source_id not in self.consumers:
                consumer = mqtt_consumer.Consumer(
                    settings,
                    self._committer(source_id),
                    max_batch=self.options.max_batch,
                    max_wait=self.options.max_wait_ms / 1000,
                    before_ack=self.before_ack,
                )
                consumer.start()
                self.consumers[source_id] = (settings, consumer)
                _logger.info(
                    "telematics_mqtt: source %s on %s:%s, %s",
                    source_id,
                    settings.host,
                    settings.port,
                    ", ".join(settings.subscriptions),
                )

    def _stop(self, source_id):
        _settings, consumer = self.consumers.pop(source_id)
        consumer.stop()

    def _committer(self, source_id):
        def commit(messages):
            with self.registry.cursor() as cr:
                # ON CONFLICT sees rows other consumers committed meanwhile: no
                # serialization failure when two of them receive the same event.
                cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                env = self._env(cr)
                source = env["construction.telematics.source"].browse(source_id)
                env["construction.telematics.mqtt.consumer"]._ingest(source, messages)
            # The cursor committed on leaving the block: now the batch may be acknowledged.

        return commit

    def _report(self):
        with self.registry.cursor() as cr:
            Consumer = self._env(cr)["construction.telematics.mqtt.consumer"]
            for source_id, (settings, consumer) in self.consumers.items():
                snapshot = dict(consumer.snapshot(), pid=os.getpid())
                Consumer._report(
                    source_id, self.options.consumer_name, settings.client_id, snapshot
                )
