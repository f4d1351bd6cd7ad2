"""Telematics ingestion benchmark against a live Odoo started by `bash tools/dev.sh run`.

Measures, in one run and against the same server:
  * readings/s from HTTP POST to processed (batches of 5,000, 100 machines);
  * alerts/s from HTTP POST to requests or notes (100 alerts per request), and the
    accept latency p50/p99 of single-alert requests sent one at a time;
  * the baseline an integrator typically writes: one XML-RPC write (readings) or
    create (alerts) per event;
  * the CPU seconds each process family (Odoo server, processing worker, MQTT
    consumer, PostgreSQL, this client) spent per 100,000 readings, median of
    the runs: less disturbed by other work on the machine than the rates;
  * peak RSS of the Odoo process, and its RSS while the processor works through a
    backlog of --backlog-small then --backlog-large queued events.

Each throughput and latency measure is repeated --repeat times, each run starting
from a drained queue (no pending or failing event of any source, and the usage
rollup of the readings processed so far done: a rollup every five minutes
would otherwise land in one run of five and slow it, which --busy-rollup
measures on its own), the tables
it churns vacuumed, the database analysed and checkpointed (``psql``, PG*
environment), and reported as
every run plus min / median / max and how far the slowest run is below the median.
--warmup runs (1) come first and are not reported.

With --busy-rollup, one more readings run is made while the scheduled usage
rollup works through the readings of an unmeasured run just before it (its
scheduled action run at once, 0.3 s into the measured run, in an HTTP worker).

With --busy-odyssee N, one more run of each measure is made while the same
Odoo imports an Odyssee tenant of N approvals (an emulator in a process of its
own, a fresh backend, the Odoo side made to know the tenant as in odyssee_bench, "Sync
now" pressed in a thread, the rest in the scheduled action), and
reported beside the quiet runs with how many approvals came in meanwhile.

Usage: python bench/telematics_bench.py [--url http://127.0.0.1:8069] [--db construction_asset_sync]
       [--repeat 5] [--busy-odyssee 5000] [--busy-rollup]
"""

import json
import multiprocessing
import os
import statistics
import subprocess
import threading
import time
import urllib.request
import uuid
import xmlrpc.client
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

from benchlib import (
    MemorySampler,
    OdooRPC,
    cpu_seconds,
    odoo_argument_parser,
    odoo_pids,
    settle_database,
)

ROLLUP_CRON = "ir_cron_telematics_usage_rollup"
EMULATOR_NICENESS = 10  # the Odyssee emulator of the busy run: see _serve_tenant


class Bench:
    def __init__(self, args):
        self.args = args
        self.url = args.url.rstrip("/")
        self.call = OdooRPC(self.url, args.db, args.user, args.password)
        self.tag = uuid.uuid4().hex[:6]
        self.run = 0  # runs never share an alert id, an alert code or a reading timestamp
        self.minutes_used = 0

    def setup_fleet(self, machines):
        source_id = self.call(
            "construction.telematics.source", "create", {"name": f"bench {self.tag}"}
        )
        action = self.call("construction.telematics.source", "action_generate_api_key", [source_id])
        self.key = self.call(
            "construction.telematics.key.wizard", "read", [action["res_id"]], ["api_key"]
        )[0]["api_key"]
        system_id = self.call(
            "construction.telematics.source", "read", [source_id], ["external_system_id"]
        )[0]["external_system_id"][0]
        self.equipment_ids = self.call(
            "maintenance.equipment",
            "create",
            [{"name": f"bench {self.tag} #{i}"} for i in range(machines)],
        )
        self.call(
            "construction.external.id",
            "create",
            [
                {"system_id": system_id, "external_id": f"B{self.tag}-{i}", "equipment_id": eid}
                for i, eid in enumerate(self.equipment_ids)
            ],
        )
        self.source_id = source_id

    def post(self, path, document):
        """POST a document (or its encoded body); returns the seconds until the answer."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        request = urllib.request.Request(
            f"{self.url}/telematics/v1/{path}",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            status = response.status
            response.read()
        if status != 202:
            raise RuntimeError(f"{path}: HTTP {status}")
        return time.perf_counter() - started

    def drain(self, timeout=1800, roll_up=True):
        """Wait until nothing of any source is due: each run starts from the same state.

        Failed events whose next attempt is later are not waited for (retries back
        off up to hours); they are not processed during the run either. With
        ``roll_up``, the usage rollup then rolls up what was processed."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        domain = [
            ("state", "in", ["pending", "failed"]),
            "|",
            ("next_attempt_at", "=", False),
            ("next_attempt_at", "<=", now),
        ]
        deadline = time.time() + timeout
        while self.call("construction.telematics.event", "search_count", domain):
            if time.time() > deadline:
                raise RuntimeError("the queue did not drain")
            time.sleep(0.2)
        if roll_up:
            self.roll_up()
        self.vacuum()
        self.run += 1

    def roll_up(self):
        """Run the usage rollup now, waiting while its scheduled run holds it; its
        schedule then restarts from now, as after a scheduled run (every 5 minutes),
        so that the next run does not roll up the readings of the one measured."""
        cron = self.call.addon_record_id(ROLLUP_CRON)
        for _attempt in range(600):
            try:
                self.call("ir.cron", "method_direct_trigger", [cron])
                later = datetime.now(timezone.utc) + timedelta(minutes=5)
                self.call(
                    "ir.cron", "write", [cron], {"nextcall": later.strftime("%Y-%m-%d %H:%M:%S")}
                )
                return
            except xmlrpc.client.Fault as fault:
                if "currently being executed" not in fault.faultString:
                    raise
                time.sleep(0.5)
        raise RuntimeError("the usage rollup stayed busy")

    def vacuum(self):
        """Each run starts from the state autovacuum keeps in service (``settle_database``)."""
        settle_database(
            self.args.db, vacuum=["maintenance_equipment", "construction_telematics_event"]
        )

    def wait_processed(self, timeout=600):
        domain = [("source_id", "=", self.source_id), ("state", "in", ["pending", "failed"])]
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.call("construction.telematics.event", "search_count", domain):
                return
            time.sleep(0.1)
        raise RuntimeError("events still queued after the timeout")

    def readings_run(self, total, batch=5000, bodies=None):
        """Readings/s from POST to processed; ``bodies`` from ``readings_bodies`` or made here."""
        bodies = bodies or self.readings_bodies(total, batch)
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda doc: self.post("readings", doc), bodies))
        accepted = time.perf_counter() - started
        self.wait_processed()
        return len(bodies) * batch, accepted, time.perf_counter() - started

    def readings_bodies(self, total, batch=5000):
        """The encoded request bodies of a readings run: the senders' work, not Odoo's,
        made before the clock (and the CPU count) starts."""
        machines = len(self.equipment_ids)
        per_machine_batch = batch // machines
        start = datetime.now(timezone.utc) - timedelta(days=30, minutes=-self.minutes_used)
        self.minutes_used += total // machines
        batches = []
        for b in range(total // batch):
            readings = []
            for m in range(machines):
                for k in range(per_machine_batch):
                    step = b * per_machine_batch + k
                    readings.append(
                        {
                            "device_id": f"B{self.tag}-{m}",
                            "at": (start + timedelta(minutes=step)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "engine_hours": 1000 + step / 60,
                            "fuel_level_pct": 50.0,
                            "lat": 48.0,
                            "lon": 2.0,
                        }
                    )
            batches.append(json.dumps({"readings": readings}).encode())
        return batches

    def busy_rollup_run(self, total):
        """(readings/s, seconds the rollup took) of a readings run while the usage
        rollup works through the readings of an unmeasured run just before it."""
        self.drain()
        self.readings_run(total)  # every machine of the fleet marked for rollup
        self.drain(roll_up=False)
        cron = self.call.addon_record_id(ROLLUP_CRON)
        bodies = self.readings_bodies(total)
        rollup = {}

        def run_rollup():
            time.sleep(0.3)
            started = time.perf_counter()
            # Its own proxy: a ServerProxy is not thread-safe.
            call = OdooRPC(self.url, self.args.db, self.args.user, self.args.password)
            call("ir.cron", "method_direct_trigger", [cron])
            rollup["seconds"] = time.perf_counter() - started

        thread = threading.Thread(target=run_rollup)
        thread.start()
        readings, _accept_s, processed_s = self.readings_run(total, bodies=bodies)
        thread.join()
        return readings / processed_s, rollup.get("seconds")

    def _alert(self, number, total, now):
        return {
            "event_id": f"{self.tag}-{self.run}-{number}",
            "device_id": f"B{self.tag}-{number % len(self.equipment_ids)}",
            "occurred_at": (now - timedelta(seconds=max(total - number, 0))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "severity": "warning" if number % 3 else "critical",
            "code": f"SPN{number % 5}-FMI{self.run}",
            "message": "bench alert",
        }

    def alerts_run(self, total, batch=100):
        """Alerts/s from POST to processed, senders batching up to `batch` alerts per request."""
        now = datetime.now(timezone.utc)
        documents = [
            json.dumps(
                {
                    "alerts": [
                        self._alert(n, total, now) for n in range(first, min(first + batch, total))
                    ]
                }
            ).encode()
            for first in range(0, total, batch)
        ]
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda doc: self.post("alerts", doc), documents))
        self.wait_processed()
        return total, time.perf_counter() - started

    def alert_latency(self, count):
        """Accept latency of single-alert requests, one at a time."""
        now = datetime.now(timezone.utc)
        latencies = sorted(
            self.post("alerts", self._alert(1_000_000 + n, count, now)) for n in range(count)
        )
        self.wait_processed()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return statistics.median(latencies), p99

    def baseline_readings(self, total):
        started = time.perf_counter()
        for i in range(total):
            self.call(
                "maintenance.equipment",
                "write",
                [self.equipment_ids[i % len(self.equipment_ids)]],
                {"engine_hours": 2000 + i, "fuel_level_pct": 50.0, "telematics_latitude": 48.0},
            )
        return total / (time.perf_counter() - started)

    def baseline_alerts(self, total):
        started = time.perf_counter()
        for i in range(total):
            self.call(
                "maintenance.request",
                "create",
                {
                    "name": f"baseline {self.tag} {i}",
                    "equipment_id": self.equipment_ids[i % len(self.equipment_ids)],
                    "request_origin": "telematics_alert",
                    "alert_code": f"BASE{i}",
                    "priority": "2",
                },
            )
        return total / (time.perf_counter() - started)

    def backlog_rss(self, pids, size, seconds=20):
        """Queue `size` events for an unmapped device, sample RSS while they are processed."""
        sql = f"""
            INSERT INTO construction_telematics_event
              (source_id, company_id, channel, dedupe_key, kind, device_id, payload,
               payload_sha256, item_count, state, attempts, active, received_at,
               create_date, write_date, create_uid, write_uid)
            SELECT {self.source_id}, 1, 'http', 'backlog:{self.tag}:{size}:' || g, 'alert',
                   'UNMAPPED-{self.tag}',
                   jsonb_build_object('event_id', 'b' || g, 'device_id', 'UNMAPPED-{self.tag}',
                     'occurred_at', '2026-11-20T08:00:00Z', 'severity', 'warning', 'code', 'X'),
                   md5(g::text), 1, 'pending', 0, true, now(), now(), now(), 1, 1
            FROM generate_series(1, {size}) g"""
        subprocess.run(["psql", "-q", "-d", self.args.db, "-c", sql], check=True)
        # Any accepted alert triggers the processor; send one to wake it.
        self.post(
            "alerts",
            {
                "event_id": f"wake-{size}",
                "device_id": f"B{self.tag}-0",
                "occurred_at": "2026-11-20T08:00:00Z",
                "severity": "info",
                "code": "WAKE",
            },
        )
        sampler = MemorySampler(pids)
        sampler.start()
        time.sleep(seconds)
        peak = sampler.stop()
        done = self.call(
            "construction.telematics.event",
            "search_count",
            [("dedupe_key", "like", f"backlog:{self.tag}:{size}:%"), ("state", "!=", "pending")],
        )
        cleanup = (
            "DELETE FROM construction_telematics_event "
            f"WHERE dedupe_key LIKE 'backlog:{self.tag}:{size}:%'"
        )
        subprocess.run(["psql", "-q", "-d", self.args.db, "-c", cleanup], check=True)
        return peak, done


def _serve_tenant(approvals, connection):
    """In a process of its own: an emulator with ``approvals`` approvals, until told.

    It runs at the Odyssee sync's priority (nice 10, the default of *Odyssee
    sync priority*, for a bench started at nice 0: ``os.nice`` adds): it
    stands for Odyssee's servers, whose CPU in service is
    not the one Odoo receives telematics on. At full priority, on a 2-core
    machine, it competed with receipt: in one busy run, readings were accepted
    at 0.66 of the quiet rate (the Odyssee benchmark's process, emulator and
    client, spent 1.5 to 6.1 CPU seconds on an import of 1,000 approvals).
    """
    from odyssee_bench import tenant, tenant_keys  # the emulator, only when asked for

    os.nice(EMULATOR_NICENESS)
    emulator = tenant(approvals)
    url = emulator.start()
    connection.send(
        (url, emulator.domain, emulator.username, emulator.password, tenant_keys(emulator))
    )
    connection.recv()
    emulator.stop()


class BusyOdyssee:
    """An Odyssee import of ``approvals`` approvals running in the bench's Odoo.

    The emulator serves from a process of its own: in the bench's process it
    shared one interpreter with the bench's HTTP client and answered a few calls
    a second, too few to keep the import busy.
    """

    def __init__(self, args, approvals):
        self.args = args
        self.call = self._rpc()
        self.approvals = approvals

    def _rpc(self):
        # One XML-RPC proxy per thread: a ServerProxy is not thread-safe.
        return OdooRPC(self.args.url, self.args.db, self.args.user, self.args.password)

    def __enter__(self):
        self.connection, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve_tenant, args=(self.approvals, child), daemon=True
        )
        self.process.start()
        url, domain, username, password, keys = self.connection.recv()
        self.stats_url = urljoin(url, "/_emulator/stats")
        Backend = "construction.odyssee.backend"
        self.previous = self.call(Backend, "search", [("active", "=", True)])
        self.call(Backend, "write", self.previous, {"active": False})
        self.backend = self.call(
            Backend,
            "create",
            {
                "name": f"bench busy {time.time():.0f}",
                "url": url,
                "domain": domain,
                "username": username,
                "password": password,
                "rate_limit": 0,
            },
        )
        from odyssee_bench import match_odoo_to

        try:
            # Odoo knows the tenant's articles, technicians and machines, as a customer's does.
            match_odoo_to(self.call, keys, f"({self.backend})")
        except BaseException:
            self._restore()
            raise
        # "Sync now" answers at once; the scheduled action it triggers imports.
        self.pressed = threading.Thread(
            target=lambda: self._rpc()(Backend, "action_sync_now", [self.backend]), daemon=True
        )
        self.pressed.start()
        time.sleep(2)
        return self

    def progress(self):
        """(Odyssee API calls served, approvals imported) so far."""
        approvals = self.call(
            "construction.odyssee.approval", "search_count", [("backend_id", "=", self.backend)]
        )
        with urllib.request.urlopen(self.stats_url, timeout=30) as response:
            calls = json.load(response)["calls"]
        return calls, approvals

    def world(self):
        """What the import has made of the tenant so far (``odyssee_bench.imported_world``)."""
        from odyssee_bench import imported_world

        return imported_world(self.call, self.backend)

    def __exit__(self, *_exc):
        self.pressed.join(timeout=120)
        self._restore()
        # The scheduled action goes on after the backend is archived, until its
        # page: the runs after this one must not share the machine with it.
        self._wait_for_the_sync_to_end()

    def _wait_for_the_sync_to_end(self, timeout=120):
        """Until no transaction holds the backend's sync lock (SYNC_LOCK, 0x0D55EE)."""
        query = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            f" AND classid = {0x0D55EE} AND objid = {int(self.backend)}"
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            held = subprocess.run(
                ["psql", "-X", "-At", "-d", self.args.db, "-c", query],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if held == "0":
                return
            time.sleep(0.5)
        raise RuntimeError("the Odyssee sync of the busy run did not end")

    def _restore(self):
        Backend = "construction.odyssee.backend"
        self.call(Backend, "write", [self.backend], {"active": False})
        self.call(Backend, "write", self.previous, {"active": True})
        self.connection.send("stop")
        self.process.join(timeout=30)


def spread(values, digits=0, slower_is_higher=False):
    """Every run, min / median / max, and how far the slowest run is from the median (%)."""
    median = statistics.median(values)
    slowest = max(values) if slower_is_higher else min(values)
    return {
        "runs": [round(value, digits or None) for value in values],
        "min": round(min(values), digits or None),
        "median": round(median, digits or None),
        "max": round(max(values), digits or None),
        "slowest_vs_median_pct": round(100 * abs(slowest - median) / median, 1),
    }


def main():
    parser = odoo_argument_parser(__doc__)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=5_000)
    parser.add_argument("--latency-alerts", type=int, default=500)
    parser.add_argument("--baseline-readings", type=int, default=1_000)
    parser.add_argument("--baseline-alerts", type=int, default=300)
    parser.add_argument("--backlog-small", type=int, default=10_000)
    parser.add_argument("--backlog-large", type=int, default=1_000_000)
    parser.add_argument("--backlog-seconds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured runs of each measure first: a server just started (caches of"
        " each worker, PostgreSQL's buffers) makes its first run the slowest",
    )
    parser.add_argument(
        "--busy-odyssee",
        type=int,
        default=0,
        help="approvals of an Odyssee import running during one more run (0: none)",
    )
    parser.add_argument(
        "--busy-rollup",
        action="store_true",
        help="one more readings run while the usage rollup of the run before it works",
    )
    args = parser.parse_args()

    bench = Bench(args)
    pids = odoo_pids(args.db)
    bench.setup_fleet(args.machines)
    sampler = MemorySampler(pids)
    sampler.start()
    for _ in range(args.warmup):
        bench.drain()
        bench.readings_run(args.readings)
        bench.drain()
        bench.alerts_run(args.alerts)
        bench.drain()
        bench.alert_latency(args.latency_alerts)
    readings_rates, accept_rates, alerts_rates, p50s, p99s = [], [], [], [], []
    readings_cpu = defaultdict(list)  # family -> CPU seconds per 100,000 readings, per run
    for _ in range(args.repeat):
        bench.drain()
        bodies = bench.readings_bodies(args.readings)
        cpu_before = cpu_seconds(args.db)
        readings, accept_s, processed_s = bench.readings_run(args.readings, bodies=bodies)
        cpu_after = cpu_seconds(args.db)
        for family, seconds in cpu_after.items():
            readings_cpu[family].append((seconds - cpu_before[family]) * 100_000 / readings)
        readings_rates.append(readings / processed_s)
        accept_rates.append(readings / accept_s)
        bench.drain()
        alerts, alerts_s = bench.alerts_run(args.alerts)
        alerts_rates.append(alerts / alerts_s)
        bench.drain()
        p50, p99 = bench.alert_latency(args.latency_alerts)
        p50s.append(p50 * 1000)
        p99s.append(p99 * 1000)
        print(
            json.dumps(
                {
                    "run": len(readings_rates),
                    "readings_per_s": round(readings_rates[-1]),
                    "alerts_per_s": round(alerts_rates[-1], 1),
                    "alert_accept_p99_ms": round(p99s[-1], 1),
                }
            ),
            flush=True,
        )
    peak = sampler.stop()
    base_readings = bench.baseline_readings(args.baseline_readings)
    base_alerts = bench.baseline_alerts(args.baseline_alerts)
    readings_median = statistics.median(readings_rates)
    alerts_median = statistics.median(alerts_rates)
    results = {
        "runs": args.repeat,
        "warmup_runs": args.warmup,
        "readings": readings,
        "readings_per_s": spread(readings_rates),
        "readings_accept_per_s": spread(accept_rates),
        # What the machine spent, which other work on it disturbs less than the rate.
        "readings_cpu_s_per_100k": {
            family: round(statistics.median(values), 2) for family, values in readings_cpu.items()
        },
        "baseline_xmlrpc_readings_per_s": round(base_readings, 1),
        "readings_speedup_vs_baseline": round(readings_median / base_readings, 1),
        "alerts": alerts,
        "alerts_per_s": spread(alerts_rates, 1),
        "baseline_xmlrpc_alerts_per_s": round(base_alerts, 1),
        "alerts_speedup_vs_baseline": round(alerts_median / base_alerts, 2),
        "alert_accept_p50_ms": spread(p50s, 1, slower_is_higher=True),
        "alert_accept_p99_ms": spread(p99s, 1, slower_is_higher=True),
        "odoo_peak_rss_mb": round(peak),
    }
    if args.busy_odyssee:
        bench.drain()
        with BusyOdyssee(args, args.busy_odyssee) as odyssee:
            calls_before, approvals_before = odyssee.progress()
            readings, accept_s, processed_s = bench.readings_run(args.readings)
            bench.drain()
            alerts, alerts_s = bench.alerts_run(args.alerts)
            bench.drain()
            _p50, p99 = bench.alert_latency(args.latency_alerts)
            calls_after, approvals_after = odyssee.progress()
            world = odyssee.world()
        results["while_odyssee_imports"] = {
            "approvals_in_tenant": args.busy_odyssee,
            # The sync reads the jobs before the approvals: calls say it was at work.
            "odyssee_calls_during_the_run": calls_after - calls_before,
            "approvals_imported_during_the_run": approvals_after - approvals_before,
            "readings_per_s": round(readings / processed_s),
            "readings_vs_quiet_median": round(readings / processed_s / readings_median, 2),
            # Accepting alone: receipt's share of the machine beside the import.
            "readings_accept_per_s": round(readings / accept_s),
            "readings_accept_vs_quiet_median": round(
                readings / accept_s / statistics.median(accept_rates), 2
            ),
            "alerts_per_s": round(alerts / alerts_s, 1),
            "alerts_vs_quiet_median": round(alerts / alerts_s / alerts_median, 2),
            "alert_accept_p99_ms": round(p99 * 1000, 1),
            # What the import had made of the tenant by the end of the run.
            "odyssee_imported": world,
        }
    if args.busy_rollup:
        rate, rollup_s = bench.busy_rollup_run(args.readings)
        results["while_the_usage_rollup_runs"] = {
            "readings_per_s": round(rate),
            "readings_vs_quiet_median": round(rate / readings_median, 2),
            "rollup_s": round(rollup_s, 2) if rollup_s is not None else None,
        }
    for size in (args.backlog_small, args.backlog_large):
        if size:
            rss, processed = bench.backlog_rss(pids, size, args.backlog_seconds)
            results[f"rss_mb_with_backlog_{size}"] = round(rss)
            results[f"backlog_{size}_processed_in_window"] = processed
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
