"""Plain tests of the MQTT pieces: topics, the batch queue, and the consumer against a real
Mosquitto (a private one on a free port, never a mock)."""

import threading
import time
import unittest
import uuid

import paho.mqtt.client as mqtt

from protocols import mqtt_topics
from protocols.mosquitto import PrivateMosquitto, free_port
from protocols.mqtt_batch_queue import BatchQueue
from protocols.mqtt_consumer import BrokerSettings, Consumer, tls_context


class TestTopics(unittest.TestCase):
    def test_layout_round_trip(self):
        topic = mqtt_topics.topic("fleet/v1", "acme", "CAT-320-0001", "readings")
        self.assertEqual(topic, "fleet/v1/acme/CAT-320-0001/readings")
        self.assertEqual(
            mqtt_topics.parse("/fleet/v1/", "acme", topic), ("CAT-320-0001", "readings")
        )
        self.assertEqual(
            mqtt_topics.data_filters("fleet/v1", "acme", "odoo-ingest"),
            [
                "$share/odoo-ingest/fleet/v1/acme/+/readings",
                "$share/odoo-ingest/fleet/v1/acme/+/alerts",
                "$share/odoo-ingest/fleet/v1/acme/+/iso15143",
            ],
        )
        self.assertEqual(mqtt_topics.data_filters("a", "b")[0], "a/b/+/readings")
        self.assertEqual(mqtt_topics.status_filter("a", "b"), "a/b/+/status")

    def test_bad_topics_say_why(self):
        for topic, words in (
            ("fleet/v1/other/DEV/readings", "is not under"),
            ("fleet/v1/acme/DEV/readings/extra", "must end with"),
            ("fleet/v1/acme/DEV/commands", "not one of"),
            ("fleet/v1/acme//readings", "must not be empty"),
            (b"fleet/v1/acme/DEV/readings", "is not under"),
        ):
            with self.subTest(topic=topic), self.assertRaises(mqtt_topics.TopicError) as caught:
                mqtt_topics.parse("fleet/v1", "acme", topic)
            self.assertIn(words, str(caught.exception))

    def test_levels_refuse_wildcards_and_separators(self):
        for value in ("a/b", "a+", "#", "", "$SYS", "a\x00b", None):
            with self.subTest(value=value), self.assertRaises(mqtt_topics.TopicError):
                mqtt_topics.check_level(value, "the source code")
        with self.assertRaises(mqtt_topics.TopicError):
            mqtt_topics.data_filters("fleet/+", "acme")
        with self.assertRaises(mqtt_topics.TopicError):
            mqtt_topics.check_prefix(" / ")

    def test_status_payloads(self):
        for payload, expected in (
            (b"online", True),
            (b" OFFLINE\n", False),
            (b"1", True),
            (b"false", False),
            (b'{"online": true, "timestamp": 1}', True),
            (b'{"online": "yes"}', None),
            (b"\xff\xfe", None),
            (b"[" * 5000, None),
            (b"", None),
        ):
            with self.subTest(payload=payload[:20]):
                self.assertIs(mqtt_topics.parse_status(payload), expected)


class TestBatchQueue(unittest.TestCase):
    def test_batches_by_count_then_by_time(self):
        queue = BatchQueue(100)
        for number in range(7):
            queue.put(number)
        self.assertEqual(queue.take(5, max_wait=1), [0, 1, 2, 3, 4])
        started = time.monotonic()
        self.assertEqual(queue.take(5, max_wait=0.05), [5, 6])
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertEqual(queue.take(5, max_wait=0.01, idle_timeout=0.01), [])

    def test_a_batch_fills_with_what_comes_within_the_wait(self):
        queue = BatchQueue(100)
        queue.put("first")
        threading.Timer(0.02, queue.put, ["second"]).start()
        self.assertEqual(queue.take(10, max_wait=0.3), ["first", "second"])

    def test_bounded(self):
        queue = BatchQueue(2)
        self.assertTrue(queue.put(1) and queue.put(2))
        self.assertFalse(queue.put(3, timeout=0.01))
        self.assertEqual(queue.take(1, 0), [1])
        self.assertTrue(queue.put(3, timeout=0.01))
        self.assertEqual(len(queue), 2)


class TestConsumerAgainstMosquitto(unittest.TestCase):
    """At-least-once, offline queueing and Receive Maximum on a real broker."""

    @classmethod
    def setUpClass(cls):
        cls.broker = PrivateMosquitto().start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.remove()

    def setUp(self):
        self.prefix = f"cas-test-{uuid.uuid4().hex[:8]}"
        self.client_id = f"cas-plain-{uuid.uuid4().hex[:8]}"
        self.consumers = []
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        for consumer in self.consumers:
            consumer.stop(timeout=2)

    def _consumer(self, commit, receive_maximum=100, before_ack=None, share_group=None):
        share = f"$share/{share_group}/" if share_group else ""
        settings = BrokerSettings(
            host="127.0.0.1",
            port=self.broker.port,
            client_id=self.client_id,
            subscriptions=(f"{share}{self.prefix}/#",),
            session_expiry=600,
            receive_maximum=receive_maximum,
        )
        consumer = Consumer(settings, commit, before_ack=before_ack, reconnect_min=1)
        self.consumers.append(consumer)
        consumer.start()
        self._wait(lambda: consumer.connected, "the consumer did not connect")
        time.sleep(0.2)  # the SUBACK
        return consumer

    def _wait(self, condition, message, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        self.fail(message)

    def _publisher(self):
        """A connected MQTT 5 client of this test's broker, its network loop running."""
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        return client

    def _publish(self, count, start=0):
        client = self._publisher()
        infos = [
            client.publish(f"{self.prefix}/DEV/readings", str(number).encode(), qos=1)
            for number in range(start, start + count)
        ]
        for info in infos:
            info.wait_for_publish(10)
        client.disconnect()
        client.loop_stop()

    @staticmethod
    def _recorder():
        received = []

        def commit(messages):
            received.extend(int(message.payload) for message in messages)

        return received, commit

    def test_messages_published_while_away_arrive_in_order_on_return(self):
        received, commit = self._recorder()
        self._consumer(commit).stop()
        self._publish(50)
        self._consumer(commit)
        self._wait(lambda: len(received) == 50, f"got {len(received)} of 50")
        self.assertEqual(received, list(range(50)))

    def test_a_failed_commit_is_retried_and_only_then_acknowledged(self):
        received, record = self._recorder()
        failures = []

        def commit(messages):
            if not failures:
                failures.append(len(messages))
                raise ConnectionError("database away")
            record(messages)

        consumer = self._consumer(commit)
        with self.assertLogs("protocols.mqtt_consumer", "WARNING") as logs:
            self._publish(10)
            self._wait(lambda: len(received) == 10, f"got {len(received)} of 10")
        self.assertIn("could not commit", logs.output[0])
        self.assertEqual(received, list(range(10)))
        self.assertTrue(failures)
        consumer.stop()
        # Everything was acknowledged: the next session receives nothing again.
        again, commit_again = self._recorder()
        self._consumer(commit_again)
        time.sleep(1)
        self.assertEqual(again, [])

    def test_committed_but_unacknowledged_messages_come_again(self):
        committed, commit = self._recorder()
        hold = threading.Event()
        self.addCleanup(hold.set)
        crashed = self._consumer(commit, before_ack=lambda _batch: hold.wait(30))
        self._publish(5)
        self._wait(lambda: len(committed) == 5, "the batch was not committed")
        # The process "dies" between commit and acknowledgement: no PUBACK ever leaves.
        crashed.client.socket().close()
        crashed._stop.set()
        again, commit_again = self._recorder()
        self._consumer(commit_again)
        self._wait(lambda: len(again) == 5, f"redelivered {len(again)} of 5")
        self.assertEqual(sorted(again), list(range(5)))

    def test_a_connection_lost_while_a_batch_is_acknowledged_waits_for_its_acks(self):
        # paho notes a lost connection in its network thread, then reconnects and
        # drops the acks queued meanwhile. An ack checked before the loss and sent
        # after it would leave on the next connection, whose broker may have given
        # that packet id to a message not committed yet.
        received, commit = self._recorder()
        batches = []
        consumer = self._consumer(commit, before_ack=batches.append)
        send_ack, acked, loss_waited = consumer.client.ack, [], []

        def ack(mid, qos):
            if not acked:  # the loss is noticed right after the first ack's check
                noticing = threading.Thread(
                    target=consumer._on_disconnect,
                    args=(consumer.client, None, None, "connection lost", None),
                )
                noticing.start()
                noticing.join(0.3)
                loss_waited.append(noticing.is_alive())
            acked.append(mid)
            return send_ack(mid, qos)

        consumer.client.ack = ack
        with self.assertLogs("protocols.mqtt_consumer", "WARNING"):  # "disconnected"
            self._publish(5)
            self._wait(lambda: len(received) == 5 and not consumer.committing, "not committed")
        self.assertTrue(loss_waited[0], "the loss was noted in the middle of the batch's acks")
        # The whole batch was acknowledged on its connection, before the loss took effect.
        first = [message.mid for message in batches[0]]
        self.assertEqual(acked[: len(first)], first)

    def test_receive_maximum_bounds_what_waits_in_the_consumer(self):
        release = threading.Event()
        self.addCleanup(release.set)
        received, record = self._recorder()

        def slow_commit(messages):
            release.wait(30)
            record(messages)

        consumer = self._consumer(slow_commit, receive_maximum=5)
        self._publish(40)
        time.sleep(1)
        self.assertLessEqual(consumer.waiting, 5)
        release.set()
        self._wait(lambda: len(received) == 40, f"got {len(received)} of 40")
        self.assertEqual(received, list(range(40)))

    def _publish_one(self, payload, retain):
        client = self._publisher()
        client.publish(f"{self.prefix}/DEV/alerts", payload, qos=1, retain=retain).wait_for_publish(
            10
        )
        client.disconnect()
        client.loop_stop()

    def test_only_deliveries_caused_by_subscribing_are_marked_retained(self):
        """The ledger tells stale state from new events by this flag (reference, 4.3)."""
        received = []

        def commit(messages):
            received.extend((message.payload, message.retain) for message in messages)

        self._publish_one(b"published before anyone subscribed", retain=True)
        # An empty retained payload deletes the topic's retained message.
        self.addCleanup(self._publish_one, b"", retain=True)
        consumer = self._consumer(commit)
        self._wait(lambda: received, "the retained message did not come")
        self._publish_one(b"retained, to a subscriber", retain=True)
        self._publish_one(b"live", retain=False)
        self._wait(lambda: len(received) == 3, f"got {received}")
        self.assertEqual(
            received,
            [
                (b"published before anyone subscribed", True),
                # Forwarded to a subscription that exists: a new event, whatever its publisher
                # asked the broker to keep.
                (b"retained, to a subscriber", False),
                (b"live", False),
            ],
        )
        # The consumer subscribes again at each connection, even to its own session:
        # the broker sends the topic's retained message again, marked retained.
        consumer.stop()
        received.clear()
        self._consumer(commit)
        self._wait(lambda: received, "the retained message did not come again")
        self.assertEqual(received, [(b"retained, to a subscriber", True)])

    def test_mosquitto_sends_retained_messages_to_a_shared_subscription_too(self):
        """The MQTT 5 specification sends none to a shared subscription (reference, 4.4);
        Mosquitto 2.0 does, to every member that joins: the flag matters there too."""
        received = []

        def commit(messages):
            received.extend((message.payload, message.retain) for message in messages)

        self._publish_one(b"published before anyone subscribed", retain=True)
        self.addCleanup(self._publish_one, b"", retain=True)
        self._consumer(commit, share_group="odoo-ingest")
        self._wait(lambda: received, "no retained message came")
        self.assertEqual(received, [(b"published before anyone subscribed", True)])

    def test_reconnects_after_a_broker_restart(self):
        received, commit = self._recorder()
        consumer = self._consumer(commit)
        with self.assertLogs("protocols.mqtt_consumer", "WARNING"):
            self.broker.restart()
            self._wait(lambda: not consumer.connected, "the restart went unnoticed")
        self._wait(lambda: consumer.connected, "no reconnection", timeout=30)
        time.sleep(0.3)
        self._publish(3)
        self._wait(lambda: len(received) == 3, f"got {len(received)} of 3")


class TestConsumerTls(unittest.TestCase):
    """TLS to a broker whose certificate a private CA signed."""

    @classmethod
    def setUpClass(cls):
        cls.broker = PrivateMosquitto(tls=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.remove()

    def _consumer(self, port, ca_pem):
        settings = BrokerSettings(
            host="127.0.0.1",
            port=port,
            client_id=f"cas-tls-{uuid.uuid4().hex[:8]}",
            subscriptions=("cas-tls/#",),
            tls=True,
            tls_ca=ca_pem,
        )
        consumer = Consumer(settings, lambda _messages: None, reconnect_min=1, reconnect_max=1)
        self.addCleanup(consumer.stop, 2)
        consumer.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (consumer.connected or consumer.last_error):
            time.sleep(0.05)
        return consumer

    def test_the_broker_ca_given_connects(self):
        consumer = self._consumer(self.broker.port, self.broker.ca_pem)
        self.assertTrue(consumer.connected, consumer.last_error)

    def test_without_the_broker_ca_the_reason_is_reported(self):
        with self.assertLogs("protocols.mqtt_consumer", "WARNING"):
            consumer = self._consumer(self.broker.port, None)
        self.assertFalse(consumer.connected)
        self.assertIn("certificate verify failed", consumer.last_error)

    def test_an_unreachable_broker_is_reported(self):
        with self.assertLogs("protocols.mqtt_consumer", "WARNING"):
            consumer = self._consumer(free_port(), self.broker.ca_pem)
        self.assertFalse(consumer.connected)
        self.assertIn("cannot connect: [Errno 111] Connection refused", consumer.last_error)

    def test_a_ca_that_is_no_certificate_is_refused(self):
        with self.assertRaises(ValueError):
            tls_context("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")


if __name__ == "__main__":
    unittest.main()
