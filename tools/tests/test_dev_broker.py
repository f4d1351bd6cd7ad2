"""`tools/dev.sh broker`: the MQTT broker `run` uses, found or started.

The order README promises: the broker MQTT_HOST/MQTT_PORT name (an error when
it does not answer), else the local one, else a private Mosquitto on a free
port, started once and reused. The local port is moved off 1883 here
(CAS_LOCAL_MQTT_PORT), so that the private path runs even on a machine whose
own broker answers on 1883.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
from protocols.mosquitto import PrivateMosquitto, free_port  # noqa: E402


class TestDevBroker(unittest.TestCase):
    def setUp(self):
        self.cache = Path(tempfile.mkdtemp(prefix="cas-dev-broker-"))
        self.environ = {
            key: value
            for key, value in os.environ.items()
            if key not in ("MQTT_HOST", "MQTT_PORT", "CAS_LOCAL_MQTT_PORT")
        }
        self.environ |= {"CAS_CACHE": str(self.cache), "CAS_STATE_DIR": str(self.cache / "state")}
        self.addCleanup(shutil.rmtree, self.cache, True)
        self.addCleanup(self._stop_private_broker)

    def _stop_private_broker(self):
        pid_file = self.cache / "mosquitto" / "mosquitto.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)

    def _broker(self, **environ):
        return subprocess.run(
            ["bash", str(REPO_ROOT / "tools" / "dev.sh"), "broker"],
            env=self.environ | environ,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def _round_trip(self, port):
        """A QoS 1 message published through the broker reaches a subscriber."""
        topic = f"cas-dev-broker/{uuid.uuid4().hex}"
        received = threading.Event()
        subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        subscriber.on_message = lambda _c, _u, message: received.set()
        subscriber.on_subscribe = lambda *_args: subscriber.publish(topic, b"hello", qos=1)
        subscriber.connect("127.0.0.1", port)
        subscriber.subscribe(topic, qos=1)
        subscriber.loop_start()
        try:
            return received.wait(10)
        finally:
            subscriber.disconnect()
            subscriber.loop_stop()

    def test_a_private_mosquitto_starts_when_no_broker_answers_and_is_reused(self):
        silent = str(free_port())
        first = self._broker(CAS_LOCAL_MQTT_PORT=silent)
        self.assertEqual(first.returncode, 0, first.stderr)
        host, port = first.stdout.strip().rsplit(":", 1)
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(port, silent)
        self.assertIn(f"no MQTT broker on 127.0.0.1:{silent}: starting a private", first.stderr)
        configuration = (self.cache / "mosquitto" / "mosquitto.conf").read_text()
        # Sessions survive a restart and queue without Mosquitto's 1,000-message cap.
        self.assertIn("persistence true", configuration)
        self.assertIn("max_queued_messages 0", configuration)
        self.assertTrue(self._round_trip(int(port)), "the private broker relays nothing")
        second = self._broker(CAS_LOCAL_MQTT_PORT=silent)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(second.stdout.strip(), f"127.0.0.1:{port}", "not reused")
        self.assertNotIn("starting a private", second.stderr)

    def test_the_local_broker_is_used_when_it_answers(self):
        local = PrivateMosquitto().start()
        self.addCleanup(local.remove)
        found = self._broker(CAS_LOCAL_MQTT_PORT=str(local.port))
        self.assertEqual(found.returncode, 0, found.stderr)
        self.assertEqual(found.stdout.strip(), f"127.0.0.1:{local.port}")
        self.assertFalse((self.cache / "mosquitto").exists(), "a private broker was made")

    def test_a_named_broker_that_does_not_answer_is_an_error(self):
        silent = str(free_port())
        refused = self._broker(MQTT_PORT=silent)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn(
            f"no MQTT broker answers at MQTT_HOST=127.0.0.1 MQTT_PORT={silent}", refused.stderr
        )
        self.assertFalse((self.cache / "mosquitto").exists())


if __name__ == "__main__":
    unittest.main()
