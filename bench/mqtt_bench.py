"""MQTT ingestion benchmark against a live Odoo started by `bash tools/dev.sh run`.

Measures, in one run, on the same server, database and machines:
  * the HTTP figure: readings/s from POST (batches of 5,000) to processed;
  * readings/s from MQTT publish to ledger and to processed, with one consumer
    and with two consumers on one shared subscription (messages of
    --per-message readings of one device, 100 machines);
  * the consumer's RSS while it drains a backlog of --backlog-small and then
    --backlog-large messages queued at the broker while it was away.

The consumers are `odoo-bin telematics_mqtt` processes started here for the
bench's own source (--source), against a private Mosquitto on a free port (no
offline queue limit); the server of `tools/dev.sh run` processes the ledger.

Usage: python bench/mqtt_bench.py [--url http://127.0.0.1:8069] [--db construction_asset_sync]
"""

import configparser
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
from benchlib import odoo_argument_parser
from telematics_bench import Bench

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from protocols.mosquitto import PrivateMosquitto  # noqa: E402

STATE_DIR = Path(os.environ.get("CAS_STATE_DIR", REPO / ".dev"))


def process_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


class MqttBench(Bench):
    def setup_mqtt(self, broker):
        self.broker = broker
        self.call(
            "construction.telematics.source",
            "write",
            [self.source_id],
            {
                # Not enabled: the consumer of `dev.sh run` leaves it to the bench's own.
                "mqtt_enabled": False,
                "mqtt_host": "127.0.0.1",
                "mqtt_port": broker.port,
                "mqtt_topic_prefix": "fleet/v1",
                "mqtt_source_code": f"bench-{self.tag}",
            },
        )
        self.topic_base = f"fleet/v1/bench-{self.tag}"
        self.consumers = {}
        self.step = 0  # readings of successive runs never share a timestamp

    # -- consumers ----------------------------------------------------------
    def start_consumer(self, name):
        odoo_conf = STATE_DIR / "odoo.conf"
        parser = configparser.ConfigParser()
        parser.read(odoo_conf)
        odoo_src = os.environ.get("ODOO_SRC") or str(
            Path.home() / ".cache/construction_asset_sync/odoo-18.0"
        )
        log = open(STATE_DIR / f"mqtt-bench-{name}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                f"{odoo_src}/odoo-bin",
                f"--addons-path={parser['options']['addons_path']}",
                "telematics_mqtt",
                "-c",
                str(odoo_conf),
                "-d",
                self.args.db,
                "--consumer-name",
                f"bench-{self.tag}-{name}",
                "--source",
                str(self.source_id),
                "--heartbeat",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.consumers[name] = process
        deadline = time.time() + 300
        while time.time() < deadline:
            rows = self.call(
                "construction.telematics.mqtt.consumer",
                "search_read",
                [("name", "=", f"bench-{self.tag}-{name}"), ("pid", "=", process.pid)],
                ["connected"],
            )
            if rows and rows[0]["connected"]:
                return process
            time.sleep(0.5)
        raise RuntimeError(f"consumer {name} did not connect")

    def stop_consumers(self, forget=False):
        for process in self.consumers.values():
            process.terminate()
            process.wait(60)
        if forget:
            for name in self.consumers:
                self.forget_session(name)
        self.consumers = {}

    def forget_session(self, name):
        """End a consumer's session at the broker (it has nothing unacknowledged left).

        A session outlives its consumer: as a member of the shared subscription it
        would keep receiving its share of later messages, queued until it returns.
        """
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"cas-{self.args.db}-{self.source_id}-bench-{self.tag}-{name}",
            protocol=mqtt.MQTTv5,
        )
        client.connect("127.0.0.1", self.broker.port, clean_start=True)
        client.loop_start()
        time.sleep(0.5)
        client.disconnect()
        client.loop_stop()

    # -- publishing and waiting -------------------------------------------
    def messages(self, count, per_message):
        """``count`` readings as (topic, payload), ``per_message`` of one device each."""
        # One second apart: all runs together stay within the past (a reading more
        # than 24 h ahead is refused) and rise by one engine hour per hour.
        start = datetime.now(timezone.utc) - timedelta(days=10)
        machines = len(self.equipment_ids)
        out = []
        for number in range(count // per_message):
            device = number % machines
            readings = []
            for _ in range(per_message):
                self.step += 1
                readings.append(
                    {
                        "device_id": f"B{self.tag}-{device}",
                        "at": (start + timedelta(seconds=self.step)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "engine_hours": 1000 + self.step / 3600,
                        "fuel_level_pct": 50.0,
                    }
                )
            topic = f"{self.topic_base}/B{self.tag}-{device}/readings"
            out.append((topic, json.dumps({"readings": readings}).encode()))
        return out

    def publish(self, messages, publishers=2):
        def send(part):
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            client.max_inflight_messages_set(1000)
            client.max_queued_messages_set(0)
            client.connect("127.0.0.1", self.broker.port)
            client.loop_start()
            infos = [client.publish(topic, payload, qos=1) for topic, payload in part]
            for info in infos:
                info.wait_for_publish(600)
            client.disconnect()
            client.loop_stop()

        threads = [
            threading.Thread(target=send, args=(messages[index::publishers],))
            for index in range(publishers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def mqtt_events(self, states=None):
        domain = [("source_id", "=", self.source_id), ("channel", "=", "mqtt")]
        if states:
            domain.append(("state", "in", states))
        return self.call("construction.telematics.event", "search_count", domain)

    def wait_until(self, condition, timeout=1800, step=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return time.perf_counter()
            time.sleep(step)
        raise RuntimeError("timed out")

    def mqtt_run(self, total, per_message, consumers):
        for number in range(consumers):
            self.start_consumer(f"c{number + 1}")
        messages = self.messages(total, per_message)
        before = self.mqtt_events()
        started = time.perf_counter()
        self.publish(messages)
        published = time.perf_counter()
        in_ledger = self.wait_until(lambda: self.mqtt_events() >= before + len(messages))
        processed = self.wait_until(lambda: not self.mqtt_events(["pending", "failed"]))
        self.stop_consumers(forget=True)
        self.check_nothing_refused()
        readings = len(messages) * per_message
        return {
            "readings": readings,
            "messages": len(messages),
            "publish_s": round(published - started, 2),
            "to_ledger_per_s": round(readings / (in_ledger - started)),
            "to_processed_per_s": round(readings / (processed - started)),
        }

    def check_nothing_refused(self):
        refused = self.mqtt_events(["rejected", "dead", "failed"])
        if refused:
            raise RuntimeError(f"{refused} MQTT events of the bench were refused or failed")

    def backlog_rss(self, size):
        """Peak RSS of a consumer draining ``size`` messages queued while it was away."""
        self.start_consumer("backlog")
        idle = process_rss_mb(self.consumers["backlog"].pid)
        self.stop_consumers()  # the session stays at the broker and queues
        messages = self.messages(size, 1)
        self.publish(messages)
        before = self.mqtt_events()
        process = self.start_consumer("backlog")
        peak, started = 0.0, time.perf_counter()
        while self.mqtt_events() < before + size:
            peak = max(peak, process_rss_mb(process.pid))
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        self.stop_consumers()
        self.check_nothing_refused()
        return {
            "idle_rss_mb": round(idle),
            "peak_rss_mb": round(peak),
            "drained_per_s": round(size / elapsed),
        }


def main():
    parser = odoo_argument_parser(__doc__)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--backlog-small", type=int, default=10_000)
    parser.add_argument("--backlog-large", type=int, default=100_000)
    args = parser.parse_args()

    broker = PrivateMosquitto().start()
    bench = MqttBench(args)
    try:
        bench.setup_fleet(args.machines)
        bench.setup_mqtt(broker)
        readings, accept_s, processed_s = bench.readings_run(args.readings)
        results = {
            "http": {
                "readings": readings,
                "accepted_per_s": round(readings / accept_s),
                "to_processed_per_s": round(readings / processed_s),
            },
            "mqtt_one_consumer": bench.mqtt_run(args.readings, args.per_message, 1),
            "mqtt_two_consumers": bench.mqtt_run(args.readings, args.per_message, 2),
        }
        print(json.dumps(results, indent=2), flush=True)
        for size in (args.backlog_small, args.backlog_large):
            if size:
                results[f"consumer_backlog_{size}"] = bench.backlog_rss(size)
                print(json.dumps({size: results[f"consumer_backlog_{size}"]}), flush=True)
        print(json.dumps(results, indent=2))
    finally:
        bench.stop_consumers()
        broker.remove()


if __name__ == "__main__":
    main()
