"""Daily utilisation rollups and the retention purge at fleet scale; ingestion with and without.

Runs inside Odoo on a database with the addon installed (no HTTP server needed):

    $VENV/bin/python bench/usage_bench.py -c .dev/odoo.conf -d $CAS_DB

(``$VENV`` is the virtualenv ``tools/dev.sh`` made, where ``odoo`` imports.)

1. ``--machines`` machines by ``--days`` days of one-minute readings are written
   straight into the readings table (the processor's own speed is measured in
   step 3 and by ``telematics_bench.py``), with a site visit a day per machine
   (07:00 to 17:00 UTC on one of two job sites, off site the rest of the day),
   the machines marked for rollup;
2. the rollup of all of them is timed, then the purge of every reading past a
   one-day retention, with the tables' sizes before and after;
3. ingestion (ledger events processed into readings) is timed with rollup
   marking off and on, alternating, in the same run; the scheduled rollup of
   what was ingested is timed separately.

Everything it creates is named "Bench usage …" and deleted on the next run.
"""

import argparse
import random
import statistics
import time
from datetime import timedelta
from unittest.mock import patch

import odoo
import psycopg2
from odoo import fields

SIZE_SQL = """SELECT pg_total_relation_size('construction_telematics_reading'),
                     pg_total_relation_size('construction_telematics_usage'),
                     pg_total_relation_size('construction_telematics_usage_site')"""


def mb(size):
    return f"{size / 1024 / 1024:,.1f} MB"


def sizes(cr):
    cr.execute(SIZE_SQL)
    return cr.fetchone()


def clean(env):
    machines = env["maintenance.equipment"].search([("name", "=like", "Bench usage %")])
    sources = env["construction.telematics.source"].search([("name", "=like", "Bench usage %")])
    if machines:
        env.cr.execute(
            "DELETE FROM construction_telematics_reading WHERE equipment_id IN %s",
            [tuple(machines.ids)],
        )
    events = env["construction.telematics.event"].with_context(active_test=False)
    events.search([("source_id", "in", sources.ids)]).unlink()
    machines.unlink()
    env["project.project"].search([("name", "=like", "Bench usage %")]).unlink()
    env["construction.external.id"].search(
        [("system_id", "in", sources.external_system_id.ids)]
    ).unlink()
    sources.unlink()


def fleet(env, machines, tag):
    source = env["construction.telematics.source"].create({"name": f"Bench usage {tag}"})
    equipment = env["maintenance.equipment"].create(
        [
            {"name": f"Bench usage {tag} {i:03d}", "fuel_tank_capacity_l": 300}
            for i in range(machines)
        ]
    )
    env["construction.external.id"].create(
        [
            {
                "system_id": source.external_system_id.id,
                "external_id": f"BENCH-{tag}-{i:03d}",
                "equipment_id": machine.id,
            }
            for i, machine in enumerate(equipment)
        ]
    )
    return source, equipment


def generate_history(env, source, equipment, days, start):
    """One reading a minute per machine: counters that rise, a saw-tooth fuel level."""
    Event = env["construction.telematics.event"]
    # One ledger event per machine for the rows to belong to.
    Event._receive_readings(
        source,
        [
            {"device_id": f"BENCH-hist-{i:03d}", "at": start - timedelta(minutes=1), "_index": i}
            for i in range(len(equipment))
        ],
        [],
    )
    while Event._process_batch():
        pass
    env.cr.execute(
        """INSERT INTO construction_telematics_reading
               (equipment_id, event_id, device_id, at, engine_hours, idle_hours, odometer_km,
                fuel_level_pct, suspect)
           SELECT r.equipment_id, r.event_id, r.device_id, %s + m * interval '1 minute',
                  round((1000 + m * (0.3 + (r.equipment_id %% 7) / 10.0) / 60)::numeric, 2),
                  round((200 + m * 0.1 / 60)::numeric, 2),
                  round((5000 + m * 0.02)::numeric, 1),
                  round((95 - (m %% 1200) * 0.07)::numeric, 1),
                  m %% 5000 = 4999
           FROM (SELECT DISTINCT ON (equipment_id) equipment_id, event_id, device_id
                 FROM construction_telematics_reading WHERE equipment_id IN %s
                 ORDER BY equipment_id) r,
                generate_series(0, %s) m""",
        [start, tuple(equipment.ids), days * 1440 - 1],
    )
    count = env.cr.rowcount
    sites = env["project.project"].create(
        [{"name": f"Bench usage site {name}"} for name in ("A", "B")]
    )
    env.cr.execute(
        """INSERT INTO construction_telematics_site_visit
               (equipment_id, project_id, company_id, arrived_at, left_at, duration_hours,
                create_uid, write_uid, create_date, write_date)
           SELECT e.id, (ARRAY[%s, %s])[e.id %% 2 + 1], e.company_id,
                  %s + d * interval '1 day' + interval '7 hours',
                  %s + d * interval '1 day' + interval '17 hours', 10, 1, 1, now(), now()
           FROM maintenance_equipment e, generate_series(0, %s) d
           WHERE e.id IN %s""",
        [*sites.ids, start.date(), start.date(), days - 1, tuple(equipment.ids)],
    )
    env.cr.execute(
        "UPDATE maintenance_equipment SET usage_dirty_from = %s WHERE id IN %s",
        [start - timedelta(minutes=1), tuple(equipment.ids)],
    )
    return count


def ingest(env, source, devices, readings_per_device, start, batch=500):
    """Receive then process readings; returns the processing time in seconds."""
    Event = env["construction.telematics.event"]
    rng = random.Random(1)
    for device in devices:
        rows = []
        for minute in range(readings_per_device):
            rows.append(
                {
                    "device_id": device,
                    "at": start + timedelta(minutes=minute),
                    "engine_hours": round(3000 + minute / 70, 2),
                    "idle_hours": round(600 + minute / 400, 2),
                    "fuel_level_pct": round(90 - (minute % 600) * 0.1, 1),
                    "lat": 48.85 + rng.uniform(-0.001, 0.001),
                    "lon": 2.35 + rng.uniform(-0.001, 0.001),
                    "_index": minute,
                }
            )
        for index in range(0, len(rows), batch):
            Event._receive_readings(source, rows[index : index + batch], [])
    env.cr.commit()
    began = time.perf_counter()
    while Event._process_batch():
        env.cr.commit()
    return time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default=".dev/odoo.conf")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--ingest-readings", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database])
    registry = odoo.modules.registry.Registry(args.database)
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        clean(env)
        cr.commit()
        Usage = env["construction.telematics.usage"]
        now = fields.Datetime.now().replace(second=0, microsecond=0)
        start = now - timedelta(days=args.days + 1)

        # 1-2. rollups and purge at fleet scale
        source, equipment = fleet(env, args.machines, "hist")
        began = time.perf_counter()
        count = generate_history(env, source, equipment, args.days, start)
        cr.commit()
        print(f"generated {count:,} readings in {time.perf_counter() - began:.1f} s")
        before = sizes(cr)
        began = time.perf_counter()
        while Usage._rollup(limit=20):
            cr.commit()
        rollup_seconds = time.perf_counter() - began
        cr.execute(
            "SELECT count(*) FROM construction_telematics_usage WHERE equipment_id IN %s",
            [tuple(equipment.ids)],
        )
        rollups = cr.fetchone()[0]
        cr.execute(
            "SELECT count(*) FROM construction_telematics_usage_site WHERE equipment_id IN %s",
            [tuple(equipment.ids)],
        )
        site_rollups = cr.fetchone()[0]
        after_rollup = sizes(cr)
        env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_reading_retention_days", "1"
        )
        cr.commit()
        began = time.perf_counter()
        deleted = Usage._cron_purge_readings(time_budget=3600)
        purge_seconds = time.perf_counter() - began
        after_purge = sizes(cr)
        env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_reading_retention_days", "400"
        )
        cr.commit()
        # VACUUM runs outside a transaction: on a connection of its own.
        _name, info = odoo.sql_db.connection_info_for(args.database)
        connection = psycopg2.connect(**info)
        connection.autocommit = True
        connection.cursor().execute("VACUUM construction_telematics_reading")
        connection.close()
        after_vacuum = sizes(cr)
        print(
            f"rollup of {count:,} readings into {rollups:,} rows "
            f"and {site_rollups:,} rows per job site: {rollup_seconds:.1f} s "
            f"({count / rollup_seconds:,.0f} readings/s)"
        )
        print(
            f"purge of {deleted:,} readings: {purge_seconds:.1f} s "
            f"({deleted / purge_seconds:,.0f} readings/s)"
        )
        print("sizes (readings, rollups, rollups per job site):")
        for label, pair in (
            ("before rollup", before),
            ("after rollup", after_rollup),
            ("after purge", after_purge),
            ("after VACUUM", after_vacuum),
        ):
            print(f"  {label:14} {''.join(f'{mb(size):>12}' for size in pair)}")

        # 3. ingestion with rollup marking off and on, alternating
        ingest_source, ingest_machines = fleet(env, 20, "ingest")
        devices = [f"BENCH-ingest-{i:03d}" for i in range(len(ingest_machines))]
        per_device = args.ingest_readings // len(devices)
        timings = {"off": [], "on": []}
        rollup_times = []
        cursor_at = now - timedelta(days=60)
        for _pair in range(args.pairs):
            for mode in ("off", "on"):
                cursor_at += timedelta(minutes=per_device + 1)
                if mode == "off":
                    with patch.object(type(Usage), "_mark_dirty", lambda self, rows: None):
                        seconds = ingest(env, ingest_source, devices, per_device, cursor_at)
                else:
                    seconds = ingest(env, ingest_source, devices, per_device, cursor_at)
                    began = time.perf_counter()
                    while Usage._rollup(limit=20):
                        cr.commit()
                    rollup_times.append(time.perf_counter() - began)
                timings[mode].append(per_device * len(devices) / seconds)
        off, on = statistics.median(timings["off"]), statistics.median(timings["on"])
        rollup = statistics.median(rollup_times)
        print(
            f"ingestion, readings/s processed, rollup marking off: "
            f"{', '.join(f'{x:,.0f}' for x in timings['off'])} (median {off:,.0f})"
        )
        print(
            f"ingestion, readings/s processed, rollup marking on:  "
            f"{', '.join(f'{x:,.0f}' for x in timings['on'])} (median {on:,.0f})"
        )
        print(f"on/off ratio: {on / off:.3f}")
        total_on = per_device * len(devices) / (per_device * len(devices) / on + rollup)
        print(
            f"scheduled rollup of each ingested run: median {rollup:.2f} s; "
            f"processing plus rollup {total_on:,.0f} readings/s ({total_on / off:.3f} of off)"
        )
        clean(env)
        cr.commit()


if __name__ == "__main__":
    main()
