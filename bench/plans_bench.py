"""Cost of preventive maintenance plans on readings processing, measured in one run.

Runs inside ``odoo shell`` against a database with the addon installed. Like
the processing cron it commits each batch; it deletes what it created at the
end (dead rows stay behind: vacuum between runs)::

    psql -d "$CAS_DB" -c "VACUUM ANALYZE"
    bash tools/dev.sh odoo shell -d "$CAS_DB" --no-http < bench/plans_bench.py

A fleet of MACHINES machines of one category gets a plan of three items
(250 h / 500 h / 1,000 h or 365 days). Rounds alternate: in a *without* round
the plan is archived, so the processor's plan hook finds nothing to evaluate;
in a *with* round it is active and every machine's three schedules are
evaluated after each batch; the order alternates (without-with, then
with-without, ...). After a warm-up of daily readings (9 days of history
inside the usage window, so that every evaluation computes the use per day and
the forecast), each round sends READINGS_PER_MACHINE hourly
readings per machine through the ledger (``_receive_readings``) and times only
the processing (``_process_batch`` until the queue is empty). It then times the
daily evaluation of the whole fleet (``_cron_evaluate``).
"""

import os
import statistics
import time
from datetime import datetime, timedelta

import odoo
import psycopg2
from odoo.addons.construction_asset_sync.cli.long_running import freeze_loaded

MACHINES = int(os.environ.get("PLANS_BENCH_MACHINES", 2000))
READINGS_PER_MACHINE = int(os.environ.get("PLANS_BENCH_READINGS", 10))
ROUNDS = int(os.environ.get("PLANS_BENCH_ROUNDS", 4))
# How many days ago the readings start. 16: inside the 30-day usage window, every
# evaluation computes the use per day and a forecast that moves with the meters.
# 60: outside it, no use per day, no forecast moves (what earlier figures measured).
START_DAYS = int(os.environ.get("PLANS_BENCH_START_DAYS", 16))
# What each reading carries. "telematics" (default): engine hours, fuel level and
# position, as machines send them (ISO 15143-3 snapshots) and as
# bench/telematics_bench.py does. "hours": the engine hours only, the cheapest
# reading to process, so the largest share for plans.
FIELDS = os.environ.get("PLANS_BENCH_FIELDS", "telematics")
EXTRA = {"fuel_level_pct": 50.0, "lat": 48.0, "lon": 2.0} if FIELDS == "telematics" else {}


def bench(env, created):
    tag = datetime.now().strftime("%H%M%S")
    category = env["maintenance.equipment.category"].create({"name": f"bench plans {tag}"})
    source = env["construction.telematics.source"].create({"name": f"bench plans {tag}"})
    machines = env["maintenance.equipment"].create(
        [{"name": f"bench {tag} #{i}", "category_id": category.id} for i in range(MACHINES)]
    )
    env["construction.external.id"].create(
        [
            {
                "system_id": source.external_system_id.id,
                "external_id": f"P{tag}-{i}",
                "equipment_id": m.id,
            }
            for i, m in enumerate(machines)
        ]
    )
    plan = env["construction.maintenance.plan"].create(
        {"name": f"bench plan {tag}", "category_ids": [(6, 0, category.ids)], "active": False}
    )
    Item = env["construction.maintenance.plan.item"]
    thousand = Item.create(
        {"plan_id": plan.id, "name": "1,000 h", "interval_hours": 1000, "interval_days": 365}
    )
    five = Item.create(
        {"plan_id": plan.id, "name": "500 h", "interval_hours": 500, "package_of_id": thousand.id}
    )
    Item.create(
        {"plan_id": plan.id, "name": "250 h", "interval_hours": 250, "package_of_id": five.id}
    )
    created.update(
        machines=machines.ids,
        plan=plan.id,
        category=category.id,
        source=source.id,
        system=source.external_system_id.id,
    )
    # Committed, as in service: a row updated in the transaction that created it
    # makes PostgreSQL check all its foreign keys again, which it skips otherwise.
    env.cr.commit()
    Event = env["construction.telematics.event"]
    # Readings inside the usage window (30 days), so that every evaluation computes
    # the use per day and the forecast as in service: a warm-up of daily readings
    # gives each machine 9 days of history, then the rounds send hourly readings.
    start = datetime.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=START_DAYS)
    # 7.2 engine hours a day, each machine well short of its next due point and of
    # the plan's forecast horizon: the rounds measure evaluation alone; opening
    # requests is measured on its own below.
    hours = {i: 10.0 + (i % 50) for i in range(MACHINES)}
    clock = [start]
    # When each machine last reported: a meter grows with the time since, at the same
    # 0.3 h per hour, so that the use per day stays what the machine really does
    # (a round's first reading after the daily warm-up comes 24 h after the last).
    last_at = [None]

    # CPU seconds of this process and of its PostgreSQL backend (same host): a measure
    # the load of other processes on the machine disturbs far less than wall time.
    env.cr.execute("SELECT pg_backend_pid()")
    backend_stat = f"/proc/{env.cr.fetchone()[0]}/stat"
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        try:
            with open(backend_stat) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            backend = (int(fields[11]) + int(fields[12])) / tick
        except OSError:  # PostgreSQL on another host: this process only
            backend = 0.0
        return time.process_time() + backend

    def one_round(every_hours=1):
        readings = []
        for step in range(READINGS_PER_MACHINE):
            at = clock[0] + timedelta(hours=step * every_hours)
            elapsed = (at - last_at[0]).total_seconds() / 3600 if last_at[0] else every_hours
            last_at[0] = at
            for i in range(MACHINES):
                hours[i] += 0.3 * elapsed
                readings.append(
                    {
                        "device_id": f"P{tag}-{i}",
                        "at": at,
                        "engine_hours": round(hours[i], 2),
                        **EXTRA,
                    }
                )
        clock[0] += timedelta(hours=READINGS_PER_MACHINE * every_hours)
        for index, reading in enumerate(readings):
            reading["_index"] = index
        Event._receive_readings(source, readings, [])
        env.flush_all()
        env.cr.commit()
        began, began_cpu = time.perf_counter(), cpu()
        while Event._process_batch():
            env.cr.commit()  # one transaction per batch, as the processing cron
        env.flush_all()
        env.cr.commit()
        return time.perf_counter() - began, cpu() - began_cpu

    # Warm-up with the plan active: caches, and the schedules' creation (once per
    # machine and item, not part of steady processing).
    plan.active = True
    one_round(every_hours=24)
    # Statistics that know the fleet's rows, as autovacuum's analyze keeps them in
    # production. Without it, on a freshly vacuumed database, the planner takes the
    # tables for the few rows they had and scans instead of probing the indexes.
    env.flush_all()
    env.cr.execute(
        "ANALYZE maintenance_equipment, construction_maintenance_schedule,"
        " construction_telematics_reading, construction_telematics_event,"
        " construction_external_id"
    )
    # As the telematics worker (odoo-bin telematics_worker), which runs the batches
    # in service: the loaded registry frozen out of the garbage collector's full
    # collections (90 ms each otherwise, one every other round, in either kind).
    freeze_loaded()
    # Before each round, the dead rows of the last one are vacuumed, as autovacuum
    # does in service (a PostgreSQL tuned for test runs may have it off): without
    # it, every batch updating each machine's row leaves version chains that make
    # later rounds slower than earlier ones, whatever their kind.
    _name, info = odoo.sql_db.connection_info_for(env.cr.dbname)

    def vacuum():
        connection = psycopg2.connect(**info)
        try:
            connection.autocommit = True
            connection.cursor().execute(
                "VACUUM maintenance_equipment, construction_maintenance_schedule,"
                " construction_telematics_event, construction_telematics_reading"
            )
        finally:
            connection.close()

    # Wall time spent in the plan hook itself, inside the with rounds: a share of
    # the same rounds, which the load of other processes disturbs less than a
    # difference between rounds does.
    Schedule = type(env["construction.maintenance.schedule"])
    evaluate, spent = Schedule._evaluate, []

    def timed_evaluate(self, *args, **kwargs):
        began, began_cpu = time.perf_counter(), cpu()
        try:
            return evaluate(self, *args, **kwargs)
        finally:
            spent.append((time.perf_counter() - began, cpu() - began_cpu))

    Schedule._evaluate = timed_evaluate
    timings, cpus, hook, hook_cpu = {"without": [], "with": []}, {"without": [], "with": []}, [], []
    for round_ in range(ROUNDS):
        # ABBA: without-with, then with-without, so that the history growing from
        # round to round (readings, schedules' versions) weighs on both kinds alike.
        for mode in ("without", "with") if round_ % 2 == 0 else ("with", "without"):
            plan.active = mode == "with"
            env.flush_all()
            env.cr.commit()
            vacuum()
            spent.clear()
            wall, used = one_round()
            timings[mode].append(wall)
            cpus[mode].append(used)
            if mode == "with":
                hook.append(sum(wall for wall, _cpu in spent))
                hook_cpu.append(sum(used for _wall, used in spent))
    Schedule._evaluate = evaluate
    plan.active = True
    env.flush_all()
    began = time.perf_counter()
    env["construction.maintenance.schedule"]._cron_evaluate()
    env.flush_all()
    daily = time.perf_counter() - began
    opened = env["maintenance.request"].search_count(
        [("equipment_id", "in", machines.ids), ("plan_item_id", "!=", False)]
    )
    # One machine in 40 reaches its 250 h service: the requests that opens.
    due = machines[::40]
    env.cr.execute(
        "UPDATE maintenance_equipment SET engine_hours = 249 WHERE id IN %s", [tuple(due.ids)]
    )
    env["maintenance.equipment"].invalidate_model(["engine_hours"])
    began = time.perf_counter()
    opened_now = len(env["construction.maintenance.schedule"]._evaluate(due.ids))
    env.flush_all()
    opening = time.perf_counter() - began
    schedules = env["construction.maintenance.schedule"].search_count(
        [("equipment_id", "in", machines.ids)]
    )
    readings = MACHINES * READINGS_PER_MACHINE
    without, with_ = statistics.median(timings["without"]), statistics.median(timings["with"])
    print(
        f"machines {MACHINES}, plan items 3, schedules {schedules}, "
        f"requests opened by the rounds {opened}"
    )
    print(
        f"readings per round {readings} ({FIELDS}), rounds {ROUNDS} each, alternating ABBA, "
        f"readings from {START_DAYS} days ago"
    )
    print("without plans, s per round: " + " / ".join(f"{t:.2f}" for t in timings["without"]))
    print("with plans,    s per round: " + " / ".join(f"{t:.2f}" for t in timings["with"]))
    # Each with round against the without round of its own pair (adjacent in time).
    paired = [
        100 * (w - wo) / wo for w, wo in zip(timings["with"], timings["without"], strict=True)
    ]
    print(
        f"median readings/s: without {readings / without:,.0f}, with {readings / with_:,.0f}; "
        f"plans add {100 * (with_ - without) / without:+.1f} % "
        f"(pair by pair: {' / '.join(f'{p:+.1f}' for p in paired)}, "
        f"median {statistics.median(paired):+.1f} %)"
    )
    shares = [100 * h / (t - h) for h, t in zip(hook, timings["with"], strict=True)]
    print(
        f"plan evaluation inside the with rounds, median {statistics.median(shares):.1f} %: "
        + " / ".join(
            f"{h:.2f} s ({100 * h / (t - h):.1f} %)"
            for h, t in zip(hook, timings["with"], strict=True)
        )
        + " of the processing without it"
    )
    # Over all rounds together: what plans add to the processing of all these readings,
    # the figure a spike in one round cannot hide from.
    print(
        f"over all {ROUNDS} rounds: plan evaluation {sum(hook):.2f} s against "
        f"{sum(timings['with']) - sum(hook):.2f} s of the rest, "
        f"{100 * sum(hook) / (sum(timings['with']) - sum(hook)):.1f} %; "
        f"with against without {100 * (sum(timings['with']) / sum(timings['without']) - 1):+.1f} %"
    )
    print("CPU (this process + its PostgreSQL backend), s per round:")
    print("  without plans: " + " / ".join(f"{t:.2f}" for t in cpus["without"]))
    print("  with plans:    " + " / ".join(f"{t:.2f}" for t in cpus["with"]))
    cpu_without, cpu_with = statistics.median(cpus["without"]), statistics.median(cpus["with"])
    cpu_shares = [100 * h / (t - h) for h, t in zip(hook_cpu, cpus["with"], strict=True)]
    print(
        f"  medians: plans add {100 * (cpu_with - cpu_without) / cpu_without:+.1f} %; "
        f"plan evaluation inside the with rounds, median {statistics.median(cpu_shares):.1f} %: "
        + " / ".join(
            f"{h:.2f} s ({share:.1f} %)" for h, share in zip(hook_cpu, cpu_shares, strict=True)
        )
    )
    print(f"daily evaluation of {MACHINES} machines: {daily:.2f} s")
    print(
        f"{len(due)} machines due at once: {opening:.2f} s, "
        f"{opened_now} requests, {1000 * opening / max(opened_now, 1):.0f} ms per request opened"
    )


def cleanup(env, created):
    """Delete what the bench created and committed."""
    if not created:
        return
    ids = created["machines"]
    env["maintenance.request"].search([("equipment_id", "in", ids)]).unlink()
    # Its readings go with the events (cascade).
    env.cr.execute(
        "DELETE FROM construction_telematics_event WHERE source_id = %s", [created["source"]]
    )
    env["maintenance.equipment"].browse(ids).unlink()
    env["construction.maintenance.plan"].browse(created["plan"]).unlink()
    env["maintenance.equipment.category"].browse(created["category"]).unlink()
    env["construction.telematics.source"].browse(created["source"]).unlink()
    env["construction.external.system"].browse(created["system"]).unlink()
    env.cr.commit()


created = {}
try:
    bench(env, created)  # noqa: F821 (odoo shell provides env)
finally:
    env.cr.rollback()  # noqa: F821
    cleanup(env, created)  # noqa: F821
