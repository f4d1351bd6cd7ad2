"""An at-least-once MQTT 5 consumer: a message is acknowledged only after it is committed.

Built on paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``, MQTT 5):

* a stable client id, ``clean_start=False`` and a Session Expiry Interval, so
  the broker keeps the session, its subscriptions and the messages published
  while the consumer is away (paho's defaults start clean and expire at once);
* subscriptions are (re)made in ``on_connect``, at QoS 1 (``SUBSCRIPTION_QOS``);
* ``manual_ack=True``: paho does not send PUBACK on its own. ``on_message``
  only appends the message to a bounded ``BatchQueue`` and returns; a worker
  thread takes up to ``max_batch`` messages (or what came within
  ``max_wait`` seconds), hands them to ``commit`` (which must return only once
  they are durably stored), and then acknowledges them, in arrival order. A crash
  between the two leaves them unacknowledged: the broker sends them again and
  the ledger's idempotency keys recognise them;
* Receive Maximum bounds how many unacknowledged messages the broker sends, so
  memory does not grow with the backlog waiting at the broker;
* paho reconnects on its own, with a backoff from ``reconnect_min`` to
  ``reconnect_max`` seconds; a failing ``commit`` is retried with a backoff too,
  and nothing is acknowledged meanwhile.

No Odoo here: ``commit(messages)`` is given by the caller.
"""

import logging
import ssl
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .mqtt_batch_queue import BatchQueue

_logger = logging.getLogger(__name__)

# Gateways may publish at QoS 2; the broker then delivers at the subscription's QoS,
# never above it. QoS 1 to this consumer: with QoS 2, paho answers PUBREC as soon as
# a PUBLISH arrives and keeps the message in memory until the broker's PUBREL. A
# consumer killed in between leaves the broker holding only the PUBREL, which it
# resends to the next session: a message nobody has any more, lost. With QoS 1 the
# broker resends the whole message until it is acknowledged after its commit, and
# the ledger's idempotency keys make the second delivery a no-op: exactly once in effect.
SUBSCRIPTION_QOS = 1


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    client_id: str
    subscriptions: tuple  # topic filters
    port: int = 1883
    tls: bool = False
    # PEM certificates of the CAs to trust for the broker's certificate; None: the system's.
    tls_ca: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    session_expiry: int = 7 * 24 * 3600
    receive_maximum: int = 1000
    keepalive: int = 30


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    dup: bool
    received_at: float  # time.time()
    # The connection it came on: a packet id is only worth acknowledging on that one.
    connection: int = 0


def tls_context(ca_pem=None):
    """A client TLS context verifying the broker's certificate and host name.

    ``ca_pem``: the CA certificates (PEM) to trust instead of the system's, for a
    broker whose certificate a private CA signed. Raises ``ValueError`` when
    they hold no certificate that can be read.
    """
    try:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem or None)
    except ssl.SSLError as exc:
        raise ValueError(exc.reason or str(exc)) from None


class _Client(mqtt.Client):
    """paho's client, keeping why the last connection attempt failed.

    paho calls ``on_connect_fail`` without the error; the consumer reports it,
    since "certificate verify failed" and "connection refused" call for
    different fixes.
    """

    connect_error = None

    def reconnect(self):
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise


class Consumer:
    def __init__(
        self,
        settings,
        commit,
        max_batch=500,
        max_wait=0.05,
        before_ack=None,
        reconnect_min=1,
        reconnect_max=60,
    ):
        self.settings = settings
        self._commit = commit
        self._before_ack = before_ack
        self.max_batch, self.max_wait = max_batch, max_wait
        # Above Receive Maximum: with QoS 1, put() never waits.
        self.queue = BatchQueue(settings.receive_maximum + max_batch)
        self._stop = threading.Event()
        self._worker = None
        self._reconnect = (reconnect_min, reconnect_max)
        self.connected = False
        self._connection = 0
        # Which connection a packet id belongs to: it changes when a connection
        # is lost, before paho opens the next, and never while a batch is being
        # acknowledged (the worker holds the lock from its check to its last ack).
        # Reentrant: with its network thread gone, paho writes an ack in the
        # caller's thread, and a failed write calls on_disconnect right there.
        self._ack_lock = threading.RLock()
        self._ack_epoch = 0
        self.last_message_at = None
        self.last_error = None
        self.committing = 0
        self.committed_total = 0
        self.client = self._make_client()

    # -- paho ---------------------------------------------------------------
    def _make_client(self):
        settings = self.settings
        client = _Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            client.tls_set_context(tls_context(settings.tls_ca))
        client.reconnect_delay_set(*self._reconnect)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self):
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry
        properties.ReceiveMaximum = self.settings.receive_maximum
        return properties

    def _failed(self, error):
        """Log, then show: whoever waits for ``last_error`` finds the warning logged."""
        _logger.warning("MQTT %s: %s", self.settings.client_id, error)
        self.last_error = error

    def _on_connect(self, client, _userdata, flags, reason_code, _properties):
        if reason_code.is_failure:
            self._failed(f"connection refused: {reason_code}")
            return
        self._connection += 1
        with self._ack_lock:
            self._ack_epoch += 1
        _logger.info(
            "MQTT %s connected to %s:%s (session present: %s)",
            self.settings.client_id,
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        client.subscribe(
            [
                (topic, SubscribeOptions(qos=SUBSCRIPTION_QOS))
                for topic in self.settings.subscriptions
            ]
        )

    def _on_connect_fail(self, client, _userdata):
        # No CONNACK at all: unreachable, or TLS refused (an unknown CA, a wrong host name).
        self._failed(f"cannot connect: {client.connect_error}")

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties):
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self._failed(f"subscription refused: {', '.join(refused)}")
            return
        # Connected means receiving: only once the broker granted every subscription.
        self.connected = True
        self.last_error = None

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties):
        # paho closes the socket, then calls this, then reconnects, dropping the
        # acks queued meanwhile: an ack of this connection's packet ids after
        # this point could otherwise leave on the next connection, where the
        # broker may have given the same id to a message not committed yet.
        with self._ack_lock:
            self._ack_epoch += 1
        self.connected = False
        if not self._stop.is_set():
            self._failed(f"disconnected: {reason_code}")

    def _on_message(self, _client, _userdata, message):
        now = time.time()
        self.last_message_at = now
        self.queue.put(
            Received(
                topic=message.topic,
                payload=message.payload,
                qos=message.qos,
                mid=message.mid,
                retain=bool(message.retain),
                dup=bool(message.dup),
                received_at=now,
                connection=self._ack_epoch,
            )
        )

    # -- life cycle ---------------------------------------------------------
    def start(self):
        self._worker = threading.Thread(
            target=self._work, name=f"mqtt-worker-{self.settings.client_id}", daemon=True
        )
        self._worker.start()
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()

    def stop(self, timeout=10):
        """Commit and acknowledge what was received, then disconnect (the session stays)."""
        self._stop.set()
        if self._worker:
            self._worker.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    @property
    def waiting(self):
        """Messages received and not yet acknowledged."""
        return len(self.queue) + self.committing

    def snapshot(self):
        return {
            "connected": self.connected,
            "last_message_at": self.last_message_at,
            "waiting": self.waiting,
            "last_error": self.last_error,
            "committed_total": self.committed_total,
            "connections": self._connection,
        }

    # -- the worker ---------------------------------------------------------
    def _work(self):
        while True:
            batch = self.queue.take(self.max_batch, self.max_wait, idle_timeout=0.2)
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self.committing = len(batch)
            if not self._commit_with_retries(batch):
                return  # stopping: the broker sends the batch again to the next session
            if self._before_ack:
                self._before_ack(batch)
            with self._ack_lock:
                for message in batch:
                    # After a reconnection the broker sends unacknowledged messages
                    # again and may reuse their packet ids: an old id is not acknowledged.
                    if message.qos and message.connection == self._ack_epoch:
                        self.client.ack(message.mid, message.qos)
            self.committing = 0
            self.committed_total += len(batch)

    def _commit_with_retries(self, batch):
        delay = 0.5
        while True:
            try:
                self._commit(batch)
                return True
            except Exception as exc:
                self.last_error = f"commit failed: {type(exc).__name__}: {exc}"
                _logger.warning(
                    "MQTT %s could not commit %d messages; retrying in %.1f s",
                    self.settings.client_id,
                    len(batch),
                    delay,
                    exc_info=True,
                )
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, 30)
