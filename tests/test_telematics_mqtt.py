"""MQTT ingestion end to end: real consumer processes, a real Mosquitto, real PostgreSQL.

Each test runs ``odoo-bin telematics_mqtt`` processes against this database and a
private Mosquitto (password file and ACL, persistence, started on a free port);
the data they see is committed (``committed_env``) and removed afterwards.
"""

import json
import os
import signal
import ssl
import time
import uuid
from datetime import timedelta

import paho.mqtt.client as mqtt
from odoo import fields
from odoo.addons.construction_asset_sync.cli.telematics_mqtt import PAUSE_BEFORE_ACK_ENV
from odoo.addons.construction_asset_sync.protocols.mosquitto import PrivateMosquitto
from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged

from .common import OdooCommandMixin, committed_env
from .telematics_common import drop_committed_fleet

ROOT_PREFIX = "cas-mqtt-test"
PASSWORDS = {"odoo": "odoo-pw", "acme": "acme-pw", "rival": "rival-pw"}
# The setup README documents: the consumer reads everything under the root,
# each gateway writes only under <prefix>/<its user name>/.
ACL = f"""user odoo
topic read {ROOT_PREFIX}/#

pattern write {ROOT_PREFIX}/+/%u/#
"""
MAX_BODY_PARAMETER = "construction_asset_sync.telematics_max_body_mb"


@tagged("post_install", "-at_install")
class TestTelematicsMqtt(OdooCommandMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.broker = PrivateMosquitto(users=PASSWORDS, acl=ACL).start()
        cls.addClassCleanup(cls.broker.remove)

    def setUp(self):
        super().setUp()
        self.prefix = f"{ROOT_PREFIX}/{uuid.uuid4().hex[:10]}"
        with committed_env(self.registry) as env:
            machines = env["maintenance.equipment"].create(
                [{"name": f"MQTT machine {n} {self.prefix}"} for n in (1, 2)]
            )
            source = env["construction.telematics.source"].create(
                {
                    "name": f"MQTT gateway {self.prefix}",
                    "mqtt_enabled": True,
                    "mqtt_host": "127.0.0.1",
                    "mqtt_port": self.broker.port,
                    "mqtt_username": "odoo",
                    "mqtt_password": PASSWORDS["odoo"],
                    "mqtt_topic_prefix": self.prefix,
                    "mqtt_source_code": "acme",
                }
            )
            env["construction.external.id"].create(
                [
                    {
                        "system_id": source.external_system_id.id,
                        "external_id": f"DEV-{n}",
                        "equipment_id": machine.id,
                    }
                    for n, machine in zip((1, 2), machines, strict=True)
                ]
            )
            self.source_id, self.machine_ids = source.id, machines.ids
        self.addCleanup(drop_committed_fleet, self.registry, self.source_id, self.machine_ids)

    # ------------------------------------------------------------------
    # Consumers, gateways, waiting
    # ------------------------------------------------------------------
    def _start_consumer(self, name, pause_before_ack=None, wait_connected=True):
        environ = dict(os.environ)
        environ.pop(PAUSE_BEFORE_ACK_ENV, None)
        if pause_before_ack:
            environ[PAUSE_BEFORE_ACK_ENV] = str(pause_before_ack)
        process = self._odoo_command(
            name,
            "telematics_mqtt",
            "--consumer-name",
            name,
            "--source",
            str(self.source_id),
            "--heartbeat",
            "0.5",
            environ=environ,
        )
        if not wait_connected:
            return process
        self._wait(
            lambda: self._consumer_row(name).get("connected")
            and self._consumer_row(name).get("pid") == process.pid,
            f"consumer {name} did not connect (log: {self.logs / name}.log)",
            timeout=180,
            process=process,
        )
        return process

    def _stop_consumer(self, name):
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(60), 0)

    def _consumer_row(self, name):
        with committed_env(self.registry) as env:
            consumer = env["construction.telematics.mqtt.consumer"].search(
                [("source_id", "=", self.source_id), ("name", "=", name)]
            )
            if not consumer:
                return {}
            return consumer.read(
                [
                    "connected",
                    "pid",
                    "committed_total",
                    "waiting",
                    "connection_state",
                    "connection_count",
                    "last_error",
                ]
            )[0]

    def _gateway(self, user="acme", will_device=None, broker=None):
        broker = broker or self.broker
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"gw-{user}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(user, PASSWORDS[user])
        if broker.tls:
            client.tls_set_context(ssl.create_default_context(cadata=broker.ca_pem))
        client.puback = {}
        client.on_publish = lambda _c, _u, mid, reason, _p: client.puback.__setitem__(mid, reason)
        if will_device:
            client.will_set(self._topic(will_device, "status"), b"offline", qos=1, retain=True)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        self.addCleanup(client.loop_stop)
        return client

    def _topic(self, device, kind, source="acme"):
        return f"{self.prefix}/{source}/{device}/{kind}"

    def _publish(self, client, device, kind, payload, retain=False, source="acme", qos=1):
        """Publish; returns the broker's PUBACK (QoS 2: PUBCOMP) reason code."""
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        info = client.publish(self._topic(device, kind, source), payload, qos=qos, retain=retain)
        info.wait_for_publish(20)
        self._wait(lambda: info.mid in client.puback, "no PUBACK")
        return client.puback[info.mid]

    def _publish_reading(self, gateway, minute, qos=1):
        reading = self._reading("DEV-1", minute, 100 + minute / 100)
        return self._publish(gateway, "DEV-1", "readings", {"readings": [reading]}, qos=qos)

    def _reading(self, device, minute, hours):
        return {
            "device_id": device,
            "at": f"2026-11-20T08:{minute:02d}:00Z",
            "engine_hours": hours,
        }

    def _alert(self, device, event_id, severity="critical"):
        return {
            "event_id": event_id,
            "device_id": device,
            "occurred_at": "2026-11-20T09:00:00Z",
            "severity": severity,
            "code": "SPN110-FMI0",
            "message": "Coolant hot",
        }

    def _ledger(self):
        with committed_env(self.registry) as env:
            events = env["construction.telematics.event"].search(
                [("source_id", "=", self.source_id)], order="id"
            )
            return [
                {
                    "key": event.dedupe_key,
                    "state": event.state,
                    "channel": event.channel,
                    "device": event.device_id,
                    "items": event.item_count,
                    "errors": event.validation_errors,
                    "result": event.result,
                }
                for event in events
            ]

    def _wait_ledger(self, count, timeout=60):
        self._wait(
            lambda: len(self._ledger()) >= count,
            f"the ledger did not reach {count} events: {self._ledger()}",
            timeout=timeout,
        )
        return self._ledger()

    def _process_all(self):
        while True:
            with committed_env(self.registry) as env:
                if not env["construction.telematics.event"]._process_batch():
                    return

    def _machines(self):
        with committed_env(self.registry) as env:
            machines = env["maintenance.equipment"].browse(self.machine_ids)
            return [
                {
                    "engine_hours": machine.engine_hours,
                    "connectivity": machine.telematics_connectivity,
                    "readings": len(machine.telematics_reading_ids),
                    "requests": len(machine.maintenance_ids),
                    "to_review": machine.maintenance_ids.mapped("to_review"),
                }
                for machine in machines
            ]

    # ------------------------------------------------------------------
    # Tests
    # ------------------------------------------------------------------
    def test_a_gateway_with_its_own_credentials_reaches_the_machine(self):
        self._start_consumer("main")
        gateway = self._gateway(will_device="DEV-1")
        self.assertEqual(
            self._publish(gateway, "DEV-1", "status", b"online", retain=True), 0, "status"
        )
        reading = {
            "readings": [self._reading("DEV-1", 0, 1234.5), self._reading("DEV-1", 5, 1234.55)]
        }
        self.assertEqual(self._publish(gateway, "DEV-1", "readings", reading), 0)
        alert = self._alert("DEV-2", "mqtt-alert-1")
        self.assertEqual(self._publish(gateway, "DEV-2", "alerts", alert), 0)
        # A gateway re-publishing (or a broker redelivering) changes nothing.
        self.assertEqual(self._publish(gateway, "DEV-2", "alerts", alert), 0)
        self.assertEqual(self._publish(gateway, "DEV-1", "readings", reading), 0)
        # Another gateway's credentials do not reach this source's topics.
        rival = self._gateway("rival")
        refused = self._publish(rival, "DEV-1", "alerts", self._alert("DEV-1", "forged"))
        self.assertEqual(refused.getName(), "Not authorized")
        self._wait(lambda: self._consumer_row("main").get("committed_total", 0) >= 5, "not all in")
        ledger = self._ledger()
        self.assertEqual(
            sorted((event["device"], event["state"], event["channel"]) for event in ledger),
            [("DEV-1", "pending", "mqtt"), ("DEV-2", "pending", "mqtt")],
        )
        self._process_all()
        first, second = self._machines()
        self.assertEqual((first["engine_hours"], first["readings"]), (1234.55, 2))
        self.assertEqual(first["connectivity"], "online")
        self.assertEqual((second["requests"], second["to_review"]), (1, [True]))
        with committed_env(self.registry) as env:
            source = env["construction.telematics.source"].browse(self.source_id)
            self.assertEqual(source.mqtt_health, "connected")
            self.assertTrue(source.mqtt_last_message_at)
            self.assertEqual(source.mqtt_waiting, 0)
        # The gateway drops off: the broker publishes its last will, the machine goes offline.
        gateway.socket().close()
        self._wait(lambda: self._machines()[0]["connectivity"] == "offline", "no last will")
        self._stop_consumer("main")
        with committed_env(self.registry) as env:
            source = env["construction.telematics.source"].browse(self.source_id)
            self.assertEqual(source.mqtt_health, "disconnected")
            self.assertEqual(source.mqtt_consumer_ids.connection_state, "disconnected")

    def test_malformed_payloads_are_rejected_acknowledged_and_do_not_stop_the_consumer(self):
        with committed_env(self.registry) as env:
            parameters = env["ir.config_parameter"]
            previous = parameters.get_param(MAX_BODY_PARAMETER)
            parameters.set_param(MAX_BODY_PARAMETER, "0.001")  # 1,048 bytes
        self.addCleanup(self._restore_parameter, previous)
        self._start_consumer("main")
        gateway = self._gateway()
        bad = [
            ("alerts", b"not json at all"),
            ("alerts", b"\xff\xfe\x00binary"),
            ("readings", b'{"readings": [{"device_id": "DEV-1", "at": NaN}]}'),
            ("readings", b'{"readings": "none"}'),
            ("readings", b'{"readings": [{"device_id": "DEV-1", "at": "x\\u0000"}]}'),
            ("readings", {"readings": [self._reading("DEV-2", 1, 10)]}),  # not this topic's device
            ("alerts", self._alert("DEV-1", "bad", severity="apocalyptic")),
            ("readings", {"readings": [self._reading("DEV-1", m, 100 + m) for m in range(30)]}),
            ("readings", b'{"readings": ' + b"[" * 400 + b"]" * 400 + b"}"),  # deep nesting
            (
                "readings",
                b'{"readings": [{"device_id": "DEV-1", "at": "2026-11-20T08:00:00Z",'
                b' "engine_hours": 1e400}]}',
            ),  # a number no float holds
        ]
        for kind, payload in bad:
            self.assertEqual(self._publish(gateway, "DEV-1", kind, payload), 0)
        good = {"readings": [self._reading("DEV-1", 59, 7.5)]}
        self._publish(gateway, "DEV-1", "readings", good)
        ledger = self._wait_ledger(len(bad) + 1)
        rejected = [event for event in ledger if event["state"] == "rejected"]
        self.assertEqual(len(rejected), len(bad))
        # A rejected item names its own device; a body refused as a whole, the topic's.
        self.assertEqual({event["device"] for event in rejected}, {"DEV-1", "DEV-2"})
        messages = [error["message"] for event in rejected for error in event["errors"]]
        fields = [error["field"] for event in rejected for error in event["errors"]]
        self.assertIn("is not valid JSON", messages)
        self.assertIn("must be 'DEV-1', the device of the topic", messages)
        self.assertIn("must be at most 1048 bytes", messages)
        self.assertIn("severity", fields)
        self.assertIn("readings", fields)
        self.assertEqual([event["state"] for event in ledger][-1], "pending")
        self._wait(lambda: self._consumer_row("main").get("waiting") == 0, "still waiting")
        self.assertIsNone(self.processes["main"].poll())
        self._process_all()
        self.assertEqual(self._machines()[0]["engine_hours"], 7.5)

    def _restore_parameter(self, previous):
        with committed_env(self.registry) as env:
            env["ir.config_parameter"].set_param(MAX_BODY_PARAMETER, previous or False)

    def test_an_iso15143_snapshot_and_a_retained_alert_delivered_again(self):
        """A gateway's ISO 15143-3 fleet snapshot (its topic names the gateway, the
        snapshot its machines), and an alert published retained: without a share group
        the broker sends it again at every subscription (reference, 4.3): the ledger
        keeps the live alert and one retained copy, which raises nothing."""
        with committed_env(self.registry) as env:
            env["construction.telematics.source"].browse(self.source_id).mqtt_share_group = False
        self._start_consumer("main")
        gateway = self._gateway()
        snapshot = {
            "version": "1",
            "snapshotTime": "2026-11-20T09:00:00Z",
            "Equipment": [
                {
                    "EquipmentHeader": {"OEMName": "CAT", "PIN": device},
                    "CumulativeOperatingHours": {"datetime": "2026-11-20T08:59:00Z", "Hour": hours},
                }
                for device, hours in (("DEV-1", 1500.25), ("DEV-2", 730))
            ],
        }
        self.assertEqual(self._publish(gateway, "GW-7", "iso15143", snapshot), 0)
        alert = self._alert("DEV-2", "retained-1")
        self.assertEqual(self._publish(gateway, "DEV-2", "alerts", alert, retain=True), 0)
        self._wait(lambda: self._consumer_row("main").get("committed_total", 0) >= 2, "not in")
        self._stop_consumer("main")
        for _subscription in range(2):
            self._start_consumer("main")  # subscribes again: the retained alert comes again
            self._wait(
                lambda: self._consumer_row("main").get("committed_total", 0) >= 1, "no resend"
            )
            self._stop_consumer("main")
        # The snapshot's readings of each machine, the alert, and its retained copy once.
        self.assertEqual(
            sorted((event["device"], event["key"].split(":")[0]) for event in self._ledger()),
            [
                ("DEV-1", "readings"),
                ("DEV-2", "alert"),
                ("DEV-2", "readings"),
                ("DEV-2", "retained"),
            ],
        )
        self._process_all()
        first, second = self._machines()
        self.assertEqual((first["engine_hours"], second["engine_hours"]), (1500.25, 730))
        self.assertEqual(second["requests"], 1)

    def _publish_retained(self, gateway, device, kind, payload):
        """Publish ``payload`` as its topic's retained message, deleted when the test ends."""
        reason = self._publish(gateway, device, kind, payload, retain=True)
        # Success, or "No matching subscribers" (16): the broker keeps it all the same.
        self.assertFalse(reason.is_failure, reason)
        # Registered before the consumers start: it runs once they are stopped.
        self.addCleanup(self._delete_retained, device, kind)

    def _delete_retained(self, device, kind):
        gateway = self._gateway()
        # An empty retained payload deletes the topic's retained message at the broker.
        self._publish(gateway, device, kind, b"", retain=True)
        gateway.disconnect()

    def test_retained_deliveries_are_stale_state_never_alerts(self):
        """The broker sends its retained messages to every new subscription, perhaps
        months after they were published (a new source, prefix or consumer session,
        no share group): stale state, not events (reference, 4.3). Each stays in the
        ledger saying what became of it; an alert opens no request, a reading is kept
        only if it is newer than the machine's latest."""
        with committed_env(self.registry) as env:
            source = env["construction.telematics.source"].browse(self.source_id)
            source.mqtt_share_group = False
            # DEV-1's latest reading came another way (HTTP) at 08:30.
            env["construction.telematics.event"]._receive_body(
                source,
                "readings",
                json.dumps({"readings": [self._reading("DEV-1", 30, 130)]}).encode(),
            )
        gateway = self._gateway()
        stale_alert = self._alert("DEV-2", "stale-1")
        self._publish_retained(gateway, "DEV-2", "alerts", stale_alert)
        older = {"readings": [self._reading("DEV-1", 10, 110)]}
        self._publish_retained(gateway, "DEV-1", "readings", older)
        newer = {"readings": [self._reading("DEV-2", 40, 140)]}
        self._publish_retained(gateway, "DEV-2", "readings", newer)
        self._start_consumer("main")  # subscribes: the broker sends the three retained messages
        self._wait_ledger(4)
        self._process_all()
        first, second = self._machines()
        self.assertEqual(second["requests"], 0, "a retained alert opens no request")
        self.assertEqual(
            (first["readings"], first["engine_hours"]), (1, 130), "the older one is not kept"
        )
        self.assertEqual((second["readings"], second["engine_hours"]), (1, 140))
        self.assertEqual(
            # The broker sends retained messages in an order of its own.
            sorted((event["device"], event["state"], event["result"]) for event in self._ledger()),
            [
                (
                    "DEV-1",
                    "processed",
                    "0 readings stored, 1 retained and no newer than the machine's latest",
                ),
                ("DEV-1", "processed", "1 readings stored"),
                ("DEV-2", "processed", "1 readings stored"),
                ("DEV-2", "processed", "Retained delivery (stale state): no alert raised"),
            ],
        )
        with committed_env(self.registry) as env:
            machine = env["maintenance.equipment"].browse(self.machine_ids[1])
            self.assertFalse(machine.last_fault_code)
            self.assertNotIn("Telematics alert", " ".join(machine.message_ids.mapped("body")))
        # The same alert delivered live later (queued behind the replay, or sent
        # again) is not taken for its retained copy: it opens its request, once.
        self.assertEqual(self._publish(gateway, "DEV-2", "alerts", stale_alert), 0)
        self.assertEqual(self._publish(gateway, "DEV-2", "alerts", stale_alert), 0)
        live_alert = self._alert("DEV-2", "live-1")
        self.assertEqual(self._publish(gateway, "DEV-2", "alerts", live_alert), 0)
        self._wait(lambda: self._consumer_row("main").get("committed_total", 0) >= 6, "not in")
        self.assertEqual(len(self._ledger()), 6, "the live stale-1 once, live-1")
        self._process_all()
        self.assertEqual(self._machines()[1]["requests"], 1, "live-1 repeats its fault")
        with committed_env(self.registry) as env:
            request = env["maintenance.request"].search(
                [("equipment_id", "=", self.machine_ids[1])]
            )
            self.assertEqual(request.alert_sensor_snapshot["event_id"], "stale-1")

    def _kill_between_commit_and_ack_and_resume(self, name, published):
        """Kill consumer ``name`` (asleep before acknowledging its first committed
        batch) and start it again: every message in the ledger once."""
        time.sleep(0.5)
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes.pop(name).wait()
        self.assertEqual(len(self._ledger()), 1, "nothing else was committed before the kill")
        # Same consumer name, same client id: the broker resumes the session and
        # sends every unacknowledged message again, the committed ones included.
        self._start_consumer(name)
        self._wait(
            lambda: self._consumer_row(name).get("committed_total", 0) >= published,
            f"got {self._consumer_row(name)} of {published}",
        )
        ledger = self._ledger()
        self.assertEqual(len(ledger), published, "nothing lost, nothing twice")
        self.assertEqual(len({event["key"] for event in ledger}), published)
        # The restarted consumer received all of them: the committed ones were redelivered.
        self.assertEqual(self._consumer_row(name)["committed_total"], published)

    def test_kill_9_between_commit_and_ack_loses_and_duplicates_nothing(self):
        self._start_consumer("crashing", pause_before_ack=60)
        gateway = self._gateway()
        self._publish_reading(gateway, 0)
        # The first batch is committed, and its consumer sleeps before acknowledging it
        # while the rest of the stream arrives.
        self.assertEqual(len(self._wait_ledger(1)), 1)
        self._publish(gateway, "DEV-2", "alerts", self._alert("DEV-2", "kill-0"))
        published = 2
        for minute in range(1, 20):
            self._publish_reading(gateway, minute)
            self._publish(gateway, "DEV-2", "alerts", self._alert("DEV-2", f"kill-{minute}"))
            published += 2
        self._kill_between_commit_and_ack_and_resume("crashing", published)
        self._process_all()
        first, second = self._machines()
        self.assertEqual((first["readings"], first["engine_hours"]), (20, 100.19))
        # One request per machine and code; the repeats count on it.
        self.assertEqual(second["requests"], 1)
        with committed_env(self.registry) as env:
            request = env["maintenance.request"].search(
                [("equipment_id", "=", self.machine_ids[1])]
            )
            self.assertEqual(request.alert_repeat_count, 20)

    def test_qos_2_over_tls_to_a_private_ca_kill_9_loses_and_doubles_nothing(self):
        """Gateways publishing at QoS 2 through a TLS broker whose CA is not the system's."""
        broker = PrivateMosquitto(users=PASSWORDS, acl=ACL, tls=True).start()
        self.addCleanup(broker.remove)
        source = self.env["construction.telematics.source"].browse(self.source_id)
        with self.assertRaisesRegex(ValidationError, "not a PEM certificate"):
            source.write({"mqtt_tls_ca": "-----BEGIN CERTIFICATE-----\nnot one\n"})
        with committed_env(self.registry) as env:
            env["construction.telematics.source"].browse(self.source_id).write(
                {"mqtt_port": broker.port, "mqtt_tls": True}
            )
        # Without the broker's CA the consumer refuses the broker, and says why.
        self._start_consumer("tls", wait_connected=False)
        self._wait(
            lambda: "certificate verify failed"
            in (self._consumer_row("tls").get("last_error") or ""),
            f"no certificate error reported: {self._consumer_row('tls')}",
            timeout=180,
        )
        self.assertFalse(self._consumer_row("tls")["connected"])
        self._stop_consumer("tls")
        with committed_env(self.registry) as env:
            env["construction.telematics.source"].browse(self.source_id).mqtt_tls_ca = broker.ca_pem
        self._start_consumer("tls", pause_before_ack=60)
        gateway = self._gateway(broker=broker)
        self._publish_reading(gateway, 0, qos=2)
        self.assertEqual(len(self._wait_ledger(1)), 1)
        published = 1
        for minute in range(1, 10):
            self.assertEqual(self._publish_reading(gateway, minute, qos=2), 0)
            alert = self._alert("DEV-2", f"qos2-{minute}")
            self.assertEqual(self._publish(gateway, "DEV-2", "alerts", alert, qos=2), 0)
            published += 2
        # Killed between a commit and its acknowledgement: had the consumer taken them
        # at QoS 2, the broker would hold only PUBRELs of messages nobody has any more.
        self._kill_between_commit_and_ack_and_resume("tls", published)
        self._process_all()
        first, second = self._machines()
        self.assertEqual((first["readings"], first["engine_hours"]), (10, 100.09))
        self.assertEqual(second["requests"], 1)

    def test_offline_consumer_and_broker_restarts_lose_nothing(self):
        self._start_consumer("main")
        gateway = self._gateway()
        # The broker restarts under a running consumer: it reconnects by itself.
        self.broker.restart()
        self._wait(
            lambda: self._consumer_row("main").get("connection_count") == 2
            and self._consumer_row("main").get("connected"),
            "no reconnection",
        )
        gateway = self._gateway()
        for minute in range(5):
            self._publish_reading(gateway, minute)
        self._wait_ledger(5)
        # The consumer is away while gateways publish, and the broker restarts meanwhile:
        # the persistent session kept the subscription and the messages.
        self._stop_consumer("main")
        for minute in range(5, 15):
            self._publish_reading(gateway, minute)
        self.broker.restart()
        self._start_consumer("main")
        ledger = self._wait_ledger(15)
        self.assertEqual(len(ledger), 15)
        self._process_all()
        self.assertEqual(self._machines()[0]["readings"], 15)
        self.assertEqual(self._machines()[0]["engine_hours"], 100.14)

    def test_two_consumers_share_one_subscription(self):
        self._start_consumer("one")
        self._start_consumer("two")
        gateway = self._gateway()
        published = 0
        for minute in range(60):
            for device in ("DEV-1", "DEV-2"):
                reading = self._reading(device, minute, 500 + minute / 100)
                self._publish(gateway, device, "readings", {"readings": [reading]})
                published += 1
        self._wait(
            lambda: self._consumer_row("one").get("committed_total", 0)
            + self._consumer_row("two").get("committed_total", 0)
            >= published,
            "not all messages were committed",
        )
        one, two = self._consumer_row("one"), self._consumer_row("two")
        # Each message went to one consumer only, and both took a share.
        self.assertEqual(one["committed_total"] + two["committed_total"], published)
        self.assertGreater(one["committed_total"], 0)
        self.assertGreater(two["committed_total"], 0)
        ledger = self._ledger()
        self.assertEqual(len(ledger), published)
        self._process_all()
        for machine in self._machines():
            # Whatever order the two consumers committed in, the machine ends on its latest.
            self.assertEqual((machine["readings"], machine["engine_hours"]), (60, 500.59))


class TestMqttHealth(TransactionCase):
    """What a person sees of consumers, without a broker: reports as the process writes them."""

    def setUp(self):
        super().setUp()
        self.source = self.env["construction.telematics.source"].create(
            {"name": "Health gateway", "mqtt_enabled": True, "mqtt_source_code": "health"}
        )
        self.Consumer = self.env["construction.telematics.mqtt.consumer"]

    def _report(self, name, connected, age_seconds=0):
        consumer = self.Consumer._report(
            self.source.id,
            name,
            f"cas-test-{name}",
            {"connected": connected, "waiting": 3, "last_message_at": time.time(), "pid": 42},
        )
        if age_seconds:
            past = fields.Datetime.now() - timedelta(seconds=age_seconds)
            consumer.write({"heartbeat_at": past, "last_connected_at": past, "create_date": past})
        return consumer

    def _outage_messages(self):
        return self.source.message_ids.filtered(lambda m: "No MQTT consumer" in (m.body or ""))

    def test_health_follows_the_reports(self):
        self.assertEqual(self.source.mqtt_health, "disconnected")  # enabled, nobody reported
        self._report("a", connected=True)
        self.source.invalidate_recordset()
        self.assertEqual(self.source.mqtt_health, "connected")
        self.assertEqual(self.source.mqtt_waiting, 3)
        self.assertTrue(self.source.mqtt_last_message_at)
        self._report("a", connected=True, age_seconds=120)  # the process died
        self.source.invalidate_recordset()
        self.assertEqual(self.source.mqtt_health, "disconnected")
        self.assertEqual(self.source.mqtt_waiting, 0)

    def test_administrators_are_told_once_per_outage(self):
        admin = self.env.ref("base.user_admin")
        self._report("a", connected=False)  # just started, still connecting: not an outage
        self.Consumer._cron_check_consumers()
        self.assertFalse(self._outage_messages())
        self._report("a", connected=True, age_seconds=600)
        self.Consumer._cron_check_consumers()
        self.Consumer._cron_check_consumers()
        self.assertEqual(len(self._outage_messages()), 1)
        self.assertIn(admin.partner_id, self._outage_messages().partner_ids)
        self._report("a", connected=True)  # back
        self.Consumer._cron_check_consumers()
        self.assertFalse(self.source.mqtt_outage_notified)
        self._report("a", connected=True, age_seconds=600)  # gone again
        self.Consumer._cron_check_consumers()
        self.assertEqual(len(self._outage_messages()), 2)
