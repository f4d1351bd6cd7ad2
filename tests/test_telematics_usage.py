import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from unittest.mock import patch

from odoo import fields
from odoo.tests import TransactionCase

from ..models import construction_telematics_usage as usage_model
from ..protocols import usage_rollup
from .common import load_migration
from .telematics_common import ALERT, dumps, iso_snapshot, make_fleet, process_all

COMPARED = (
    "reading_count",
    "engine_hours",
    "idle_hours",
    "distance_km",
    "fuel_used_l",
    "out_of_hours_hours",
    "weekend_hours",
    "end_engine_hours",
    "end_idle_hours",
    "end_odometer_km",
    "end_fuel_used_l",
    "end_fuel_level_pct",
)


# Where generated machines go: two job sites' centres (see setUpClass) and a road.
PLACES = ((50.47, 4.87), (50.50, 4.95), (50.60, 5.10))


def generated_series(rng, start, hours, device="DEV-1", fuel_counter=False, positions=False):
    """Ten-minute readings with engine runs, gaps, counters missing, refuels and one spike.

    With ``positions``, the machine moves between ``PLACES`` every few hours, and
    some readings carry no position.
    """
    engine, idle, odometer, level, fuel = 1700.0, 300.0, 5000.0, 80.0, 12000.0
    readings = []
    place = PLACES[0]
    at = start
    while at < start + timedelta(hours=hours):
        at += timedelta(minutes=10)
        if rng.random() < 0.05:
            at += timedelta(hours=rng.choice((1, 3, 7)))  # the device was silent
        running = rng.random() < 0.6
        if running:
            engine += round(rng.uniform(0.05, 0.17), 2)
            idle += round(rng.uniform(0, 0.05), 2)
            odometer += round(rng.uniform(0, 2), 1)
            level -= round(rng.uniform(0, 1.5), 1)
            fuel += round(rng.uniform(1, 4), 1)
        if level < 10:
            level = 95.0  # refuelled
        reading = {"device_id": device, "at": at}
        if rng.random() < 0.9:
            reading.update(engine_hours=round(engine, 2), idle_hours=round(idle, 2))
        if rng.random() < 0.8:
            reading["odometer_km"] = round(odometer, 1)
        if rng.random() < 0.9:
            reading["fuel_level_pct"] = round(level, 1)
        if fuel_counter and rng.random() < 0.9:
            reading["fuel_used_l"] = round(fuel, 1)
        if positions:
            if rng.random() < 0.04:
                place = rng.choice(PLACES)
            if rng.random() < 0.7:
                reading.update(lat=place[0], lon=place[1])
        readings.append(reading)
    spike = dict(rng.choice(readings[5:-5]))
    spike.update(at=spike["at"] + timedelta(minutes=5), engine_hours=engine + 500)
    readings.append(spike)
    return readings


class TestTelematicsUsage(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env, suffix=" usage")
        cls.equipment.fuel_tank_capacity_l = 200
        cls.other = cls.env["maintenance.equipment"].create({"name": "Dumper usage"})
        cls.env["construction.external.id"].create(
            {
                "system_id": cls.source.external_system_id.id,
                "external_id": "DEV-2",
                "equipment_id": cls.other.id,
            }
        )
        calendar = cls.env.company.resource_calendar_id
        # Paris, whose clocks go back on 25 October 2026 (a 25-hour Sunday).
        calendar.tz = "Europe/Paris"
        cls.tz = "Europe/Paris"
        cls.windows = usage_rollup.working_windows(
            (att.dayofweek, att.hour_from, att.hour_to)
            for att in calendar.attendance_ids
            if not att.display_type
        )
        cls.Event = cls.env["construction.telematics.event"]
        cls.Usage = cls.env["construction.telematics.usage"]
        cls.UsageSite = cls.env["construction.telematics.usage.site"]
        Project = cls.env["project.project"]
        cls.depot, cls.quarry = (
            Project.create(
                {
                    "name": name,
                    "geofence_kind": "circle",
                    "geofence_latitude": lat,
                    "geofence_longitude": lon,
                    "geofence_radius_m": 300,
                }
            )
            for name, (lat, lon) in (("Depot usage", PLACES[0]), ("Quarry usage", PLACES[1]))
        )

    def deliver(self, readings):
        parsed = [dict(item, _index=index) for index, item in enumerate(readings)]
        self.Event._receive_readings(self.source, parsed, [])
        process_all(self.Event)

    def raw(self, equipment):
        """The machine's stored readings as PostgreSQL holds them (exact decimals, NULLs)."""
        columns = ("at", "suspect", *usage_rollup.END_FIELDS)
        self.env.flush_all()
        self.env.cr.execute(
            f"""SELECT {", ".join(columns)} FROM construction_telematics_reading
                WHERE equipment_id = %s""",
            [equipment.id],
        )
        return [dict(zip(columns, row, strict=True)) for row in self.env.cr.fetchall()]

    def visits(self, equipment):
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT id, project_id, arrived_at, left_at FROM construction_telematics_site_visit
               WHERE equipment_id = %s""",
            [equipment.id],
        )
        return self.env.cr.fetchall()

    def stored_sites(self, equipment):
        """{(day, job site id or None): (engine hours, idle hours)} as stored."""
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT day, project_id, engine_hours, idle_hours
               FROM construction_telematics_usage_site WHERE equipment_id = %s""",
            [equipment.id],
        )
        rows = self.env.cr.fetchall()
        result = {(day, site): (engine, idle) for day, site, engine, idle in rows}
        self.assertEqual(len(result), len(rows), "one row per machine, day and job site")
        return result

    def assertSitesEqual(self, equipment, expected, days):
        """Stored hours per job site equal ``expected`` and add up to each day's hours."""
        stored = self.stored_sites(equipment)
        wanted = {key: (float(engine), float(idle)) for key, (engine, idle) in expected.items()}
        self.assertEqual(stored, wanted)
        for day in days:
            on_day = [value for (date_, _site), value in expected.items() if date_ == day["day"]]
            self.assertEqual(sum(engine for engine, _idle in on_day), day["engine_hours"])
            self.assertEqual(sum(idle for _engine, idle in on_day), day["idle_hours"])

    def site_reference(self, equipment):
        return usage_rollup.site_days(self.raw(equipment), self.tz, self.visits(equipment))

    def reference(self, equipment, readings, seed=None):
        aggregates = usage_rollup.aggregate_days(readings, self.tz, self.windows, seed)
        return usage_rollup.finish_days(aggregates, seed, equipment.fuel_tank_capacity_l)

    def rollups(self, equipment):
        return self.Usage.search([("equipment_id", "=", equipment.id)], order="day")

    def assertRollupsEqual(self, equipment, expected):
        """The stored rollups equal ``expected`` exactly (numerics compared as decimals)."""
        columns = (
            "day",
            *COMPARED,
            "idle_share",
            "fuel_source",
            "first_activity_at",
            "last_activity_at",
        )
        self.env.flush_all()
        self.env.cr.execute(
            f"""SELECT {", ".join(columns)} FROM construction_telematics_usage
                WHERE equipment_id = %s ORDER BY day""",
            [equipment.id],
        )
        stored = [dict(zip(columns, row, strict=True)) for row in self.env.cr.fetchall()]
        self.assertEqual([row["day"] for row in stored], [day["day"] for day in expected])
        for row, day in zip(stored, expected, strict=True):
            for name in columns:
                wanted = day[name]
                if name == "fuel_source":
                    wanted = wanted or None
                elif isinstance(wanted, Decimal):
                    # Odoo's cursor reads numerics as floats: the nearest float, exactly.
                    wanted = float(wanted)
                self.assertEqual(row[name], wanted, f"{day['day']} {name}")

    # -- correctness -----------------------------------------------------------
    def test_rollups_equal_a_computation_from_the_raw_readings(self):
        rng = random.Random(13)
        start = datetime(2026, 10, 22, 20, 0)
        series = generated_series(rng, start, 5 * 24, positions=True)
        dumper = generated_series(rng, start, 5 * 24, device="DEV-2", fuel_counter=True)
        # Delivered out of order in batches, rolled up between them: late readings
        # land in days already rolled up and must move them.
        batches = [series[i : i + 97] for i in range(0, len(series), 97)]
        batches += [dumper[i : i + 150] for i in range(0, len(dumper), 150)]
        # The first batch first: the processor judges the others against it.
        first, rest = batches[0], batches[1:]
        rng.shuffle(rest)
        batches = [first, *rest]
        for batch in batches:
            self.deliver(batch)
            self.Usage._rollup()
        for machine in (self.equipment, self.other):
            raw = self.raw(machine)
            self.assertTrue(any(reading["suspect"] for reading in raw), "the spike is flagged")
            expected = self.reference(machine, raw)
            self.assertGreaterEqual(len(expected), 5)
            self.assertRollupsEqual(machine, expected)
            sites = usage_rollup.site_days(raw, self.tz, self.visits(machine))
            self.assertSitesEqual(machine, sites, expected)
            self.assertFalse(machine.usage_dirty_from)
        days = self.rollups(self.equipment)
        self.assertEqual({rollup.fuel_source for rollup in days if rollup.fuel_used_l}, {"level"})
        self.assertIn("counter", self.rollups(self.other).mapped("fuel_source"))
        # The 500 h spike counts nowhere; the week adds up to the meter's real rise.
        total = sum(days.mapped("engine_hours"))
        self.assertLess(total, 5 * 24)
        raw = self.raw(self.equipment)
        plausible = [r for r in raw if not r["suspect"] and r["engine_hours"] is not None]
        plausible.sort(key=lambda r: r["at"])
        self.assertAlmostEqual(
            total, plausible[-1]["engine_hours"] - plausible[0]["engine_hours"], places=6
        )
        # The 25-hour Sunday is one day in Paris.
        self.assertIn(date(2026, 10, 25), days.mapped("day"))
        # The machine went to both sites and off site; the pivot by job site shows it.
        sites = self.site_reference(self.equipment)
        self.assertTrue({self.depot.id, self.quarry.id, None} <= {site for _d, site in sites})
        pivot = dict(
            self.UsageSite._read_group(
                [("equipment_id", "=", self.equipment.id)], ["project_id"], ["engine_hours:sum"]
            )
        )
        for project in (self.depot, self.quarry, self.env["project.project"]):
            site_id = project.id or None
            self.assertAlmostEqual(
                pivot[project],
                float(sum(engine for (_d, site), (engine, _i) in sites.items() if site == site_id)),
                places=6,
            )

    def test_iso15143_snapshots_cumulative_fuel_and_position_repeated_and_out_of_order(self):
        """Fleet snapshots shaped as ISO 15143-3 documents them (each element with its
        own datetime, FuelUsed cumulative since manufacture with FuelUnits, spelling
        variants), delivered late, out of order and twice: the day's fuel comes from
        the counter, and the position puts the machine on its job site."""
        depot = PLACES[0]

        def snapshot(at, hours, idle, fuel, unit="litre"):
            return dumps(
                iso_snapshot(
                    at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    CumulativeOperatingHours={"Hour": hours},
                    CumulativeIdleHours={"Hour": idle},
                    FuelUsed={"FuelUnits": unit, "FuelConsumed": fuel},
                    Location={"Latitude": depot[0], "Longitude": depot[1]},
                )
            )

        tuesday = datetime(2026, 11, 10, 7, 0)  # 08:00 in Paris
        bodies = [
            snapshot(tuesday + timedelta(days=1), 112, 3, 1100, unit="liter"),
            snapshot(tuesday + timedelta(hours=8), 108, 2.5, 1040),
            snapshot(tuesday, 100, 2, 1000),
            snapshot(tuesday + timedelta(hours=8), 108, 2.5, 1040),  # the same, again
        ]
        for body in bodies:
            self.Event._receive_body(self.source, "iso15143", body)
        process_all(self.Event)
        self.Usage._rollup()
        first, second = self.rollups(self.equipment)
        self.assertEqual(
            (first.engine_hours, first.idle_hours, first.fuel_used_l, first.fuel_source),
            (8, 0.5, 40, "counter"),
        )
        self.assertEqual((second.engine_hours, second.fuel_used_l), (4, 60))
        self.assertEqual(self.equipment.job_site_project_id, self.depot)
        self.assertEqual(len(self.raw(self.equipment)), 3, "the repeated snapshot is stored once")
        self.assertRollupsEqual(
            self.equipment, self.reference(self.equipment, self.raw(self.equipment))
        )

    def test_the_scheduled_rollup_goes_in_short_chunks_until_every_machine_is_done(self):
        rng = random.Random(7)
        start = datetime(2026, 10, 22, 20, 0)
        self.deliver(generated_series(rng, start, 2 * 24))
        self.deliver(generated_series(rng, start, 2 * 24, device="DEV-2"))
        # Ten more machines marked dirty (from an upgrade, say), with no readings.
        idle = self.env["maintenance.equipment"].create(
            [{"name": f"Idle usage {i}"} for i in range(10)]
        )
        idle.write({"usage_dirty_from": start})
        Usage = type(self.Usage)
        rollup, limits, counts, sized = Usage._rollup, [], [], []

        def spy(usage, limit=200):
            limits.append(limit)
            counts.append(rollup(usage, limit=limit))
            return counts[-1]

        def size(machines, seconds):
            sized.append(machines)
            return 50  # more than are left: the second chunk comes back short

        with (
            patch.object(usage_model, "ROLLUP_FIRST_CHUNK", 3),
            patch.object(usage_model, "next_rollup_chunk", size),
            patch.object(Usage, "_rollup", spy),
        ):
            self.assertGreaterEqual(self.Usage._cron_rollup(), 12)
        # 3 machines first, then as sized from the machines each chunk took
        # (not from how many it asked for), until none is left.
        self.assertEqual(limits, [3, 50, 50])
        self.assertLess(counts[1], 50)
        self.assertEqual((sized, counts[2]), (counts[:2], 0))
        dirty = self.env["maintenance.equipment"].search([("usage_dirty_from", "!=", False)])
        self.assertFalse(dirty)
        for machine in (self.equipment, self.other):
            self.assertRollupsEqual(machine, self.reference(machine, self.raw(machine)))

    def test_rollup_chunks_are_sized_to_a_fifth_of_a_second(self):
        size = usage_model.next_rollup_chunk
        self.assertEqual(size(10, 0.4), 5)  # slow: half as many
        self.assertEqual(size(10, 2.0), 1)  # never none
        self.assertEqual(size(10, 0.1), 20)
        self.assertEqual(size(10, 0.001), 40)  # at most four times as many
        self.assertEqual(size(100, 0.0), 200)  # at most 200
        self.assertEqual(size(200, 0.2), 200)

    def test_working_time_weekend_and_activity_by_the_company_calendar(self):
        def run(local_start, hours, engine):
            # One reading every 30 min while the engine runs 0.5 h each.
            rows = []
            for step in range(int(hours * 2) + 1):
                at = local_start + timedelta(minutes=30 * step)
                rows.append({"device_id": "DEV-1", "at": at, "engine_hours": engine + step / 2})
            return rows, engine + hours

        # One employee's own Saturday morning is not the company's working time.
        employee = self.env["resource.resource"].create({"name": "Saturday driver"})
        self.env.company.resource_calendar_id.attendance_ids = [
            fields.Command.create(
                {
                    "name": "Saturday morning",
                    "dayofweek": "5",
                    "hour_from": 8,
                    "hour_to": 13,
                    "resource_id": employee.id,
                }
            )
        ]
        # Times are UTC; Paris is UTC+1 in November.
        saturday, engine = run(datetime(2026, 11, 7, 9, 0), 2, 100.0)  # 10:00-12:00 Saturday
        monday, engine = run(datetime(2026, 11, 9, 7, 0), 3, engine)  # 08:00-11:00 working
        evening, engine = run(datetime(2026, 11, 9, 17, 0), 1, engine)  # 18:00-19:00
        self.deliver(saturday + monday + evening)
        self.Usage._rollup()
        sat, mon = self.rollups(self.equipment)
        self.assertEqual((sat.day, sat.engine_hours, sat.weekend_hours), (date(2026, 11, 7), 2, 2))
        self.assertEqual(sat.out_of_hours_hours, 0)
        # 08:00 rises from Saturday's last value: 44 hours apart, counted in Monday's hours.
        self.assertEqual(mon.engine_hours, 4)
        self.assertEqual(mon.weekend_hours, 0)
        self.assertEqual(mon.out_of_hours_hours, 1)
        self.assertEqual(mon.first_activity_at, datetime(2026, 11, 9, 7, 30))
        self.assertEqual(mon.last_activity_at, datetime(2026, 11, 9, 18, 0))

    def test_idle_share_exception_and_unused_machines(self):
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_idle_share_threshold", "50"
        )
        today = fields.Datetime.now().replace(hour=12, minute=0, second=0, microsecond=0)
        self.deliver(
            [
                {
                    "device_id": "DEV-1",
                    "at": today - timedelta(hours=hours),
                    "engine_hours": round(10 + (3 - hours) * 0.8, 2),
                    "idle_hours": round(1 + (3 - hours) * 0.6, 2),
                }
                for hours in (3, 2, 1)
            ]
            + [
                {"device_id": "DEV-2", "at": today - timedelta(days=20), "engine_hours": 5.0},
                {
                    "device_id": "DEV-2",
                    "at": today - timedelta(days=20, hours=-1),
                    "engine_hours": 5.5,
                },
            ]
        )
        self.Usage._rollup()
        busy = self.rollups(self.equipment)
        self.assertEqual((busy.engine_hours, busy.idle_hours, busy.idle_share), (1.6, 1.2, 75.0))
        self.assertTrue(busy.idle_exception)
        exceptions = self.Usage.search([("idle_exception", "=", True)])
        self.assertIn(busy, exceptions)
        unused = self.env["maintenance.equipment"].search([("usage_unused", "=", True)])
        self.assertIn(self.other, unused)
        self.assertNotIn(self.equipment, unused)
        self.assertTrue(self.other.usage_unused)
        self.assertEqual(self.equipment.usage_last_active_day, busy.day)

    def test_engine_hours_per_job_site_from_the_site_visits(self):
        """Each rise goes to the site the machine was on at its later reading."""
        start = datetime(2026, 11, 10, 7, 0)  # a Tuesday, 08:00 in Paris
        depot, quarry, road = PLACES
        plan = [depot] * 5 + [quarry] * 6 + [road] * 2 + [None]
        readings = []
        for step, place in enumerate(plan):
            reading = {
                "device_id": "DEV-1",
                "at": start + timedelta(minutes=30 * step),
                "engine_hours": 100 + step / 2,
                "idle_hours": round(10 + step / 10, 1),
            }
            if place:
                reading.update(lat=place[0], lon=place[1])
            readings.append(reading)
        self.deliver(readings)
        # Later, a reading without position, rolled up off site...
        self.deliver(
            [{"device_id": "DEV-1", "at": start + timedelta(minutes=450), "engine_hours": 107.5}]
        )
        self.Usage._rollup()

        def per_site():
            return {
                project.name or "off site": (engine, idle)
                for project, engine, idle in self.UsageSite._read_group(
                    [("equipment_id", "=", self.equipment.id)],
                    ["project_id"],
                    ["engine_hours:sum", "idle_hours:sum"],
                )
            }

        self.assertEqual(
            per_site(),
            {"Depot usage": (2, 0.4), "Quarry usage": (3, 0.6), "off site": (2.5, 0.3)},
        )
        # ... until an alert placed the machine back at the depot before it: the
        # move is followed like a reading's and the day rolled up again.
        alert = dict(
            ALERT,
            occurred_at=(start + timedelta(minutes=420)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            location={"lat": depot[0], "lon": depot[1]},
            readings={"fuel_level_pct": 50},
        )
        self.Event._receive_alerts(self.source, [alert])
        process_all(self.Event)
        self.assertTrue(self.equipment.usage_dirty_from)
        self.Usage._rollup()
        self.assertEqual(
            per_site(),
            {"Depot usage": (3, 0.4), "Quarry usage": (3, 0.6), "off site": (1.5, 0.3)},
        )
        (day,) = self.rollups(self.equipment)
        self.assertEqual((day.engine_hours, day.idle_hours), (7.5, 1.3))

    def test_upgrade_to_1_3_rolls_machines_up_again_for_their_hours_per_site(self):
        """A 18.0.1.2.0 database had daily rollups and no per-site rows: the upgrade
        marks each machine dirty from its first kept reading, and the next rollup
        gives the per-site rows of every day still in the raw readings."""
        migration = load_migration("18.0.1.3.0", "post-migrate")
        start = datetime(2026, 11, 10, 7, 0)
        depot = PLACES[0]
        self.deliver(
            [
                {
                    "device_id": "DEV-1",
                    "at": start + timedelta(hours=step),
                    "engine_hours": 200 + step,
                    "lat": depot[0],
                    "lon": depot[1],
                }
                for step in range(4)
            ]
        )
        self.Usage._rollup()
        # As 1.2.0 left it: the daily row, no per-site row, nothing dirty.
        self.UsageSite.search([("equipment_id", "=", self.equipment.id)]).unlink()
        self.assertFalse(self.equipment.usage_dirty_from)
        self.env.flush_all()
        self.assertGreaterEqual(migration.mark_machines_for_rollup(self.env.cr), 1)
        self.env.invalidate_all()
        self.assertEqual(self.equipment.usage_dirty_from, start)
        self.Usage._rollup()
        rows = self.UsageSite.search([("equipment_id", "=", self.equipment.id)])
        self.assertEqual(
            [(row.project_id.name, row.engine_hours) for row in rows], [("Depot usage", 3)]
        )

    def test_two_week_calendar_by_odoo_week_parity(self):
        """A Friday of a week whose calendar has no Friday counts as weekend use."""
        calendar = self.env["resource.calendar"].create({"name": "Two weeks", "tz": self.tz})
        calendar.switch_calendar_type()
        self.assertTrue(calendar.two_weeks_calendar)
        fridays = calendar.attendance_ids.filtered(
            lambda att: att.week_type == "1" and att.dayofweek == "4" and not att.display_type
        )
        self.assertTrue(fridays)
        fridays.unlink()
        self.env.company.resource_calendar_id = calendar
        self.equipment.company_id = self.env.company
        week_type = self.env["resource.calendar.attendance"].get_week_type
        odd, even = sorted((date(2026, 11, 13), date(2026, 11, 20)), key=week_type, reverse=True)
        self.assertEqual((week_type(odd), week_type(even)), (1, 0))
        readings = []
        engine = 100.0
        for friday in sorted((odd, even)):
            # 10:00-12:00 in Paris (UTC+1), working time on a Friday with attendances.
            for step in range(5):
                at = datetime(friday.year, friday.month, friday.day, 9, 0) + timedelta(
                    minutes=30 * step
                )
                readings.append({"device_id": "DEV-1", "at": at, "engine_hours": engine})
                engine += 0.5
        self.deliver(readings)
        self.Usage._rollup()
        by_day = {rollup.day: rollup for rollup in self.rollups(self.equipment)}
        # The later Friday rises from the earlier one's last value: a week apart.
        used = {min(odd, even): 2, max(odd, even): 2.5}
        self.assertEqual(
            (by_day[odd].engine_hours, by_day[odd].weekend_hours, by_day[odd].out_of_hours_hours),
            (used[odd], used[odd], 0),
        )
        even_day = by_day[even]
        self.assertEqual(
            (even_day.engine_hours, even_day.weekend_hours, even_day.out_of_hours_hours),
            (used[even], 0, 0),
        )
        # The reference reads the calendar the same way.
        windows = usage_rollup.calendar_windows(
            (
                (att.dayofweek, att.hour_from, att.hour_to, att.week_type)
                for att in calendar.attendance_ids
                if not att.display_type
            ),
            True,
        )
        self.assertEqual(
            [
                (day["day"], day["weekend_hours"])
                for day in usage_rollup.finish_days(
                    usage_rollup.aggregate_days(self.raw(self.equipment), self.tz, windows)
                )
            ],
            sorted([(odd, used[odd]), (even, 0)]),
        )

    # -- retention -------------------------------------------------------------
    def test_purge_keeps_rollups_exact_and_frozen(self):
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_reading_retention_days", "5"
        )
        rng = random.Random(7)
        # From a local midnight: the purge takes whole local days, so the share it
        # takes of nine days must not depend on the hour the test runs at.
        today = usage_rollup.local_time(fields.Datetime.now(), self.tz).date()
        start = usage_rollup.local_day_start(today - timedelta(days=10), self.tz)
        self.deliver(generated_series(rng, start, 9 * 24, positions=True))
        self.Usage._rollup()
        expected = self.reference(self.equipment, self.raw(self.equipment))
        sites = self.site_reference(self.equipment)
        self.assertGreater(len({site for _day, site in sites}), 1)
        Reading = self.env["construction.telematics.reading"]
        before = Reading.search_count([("equipment_id", "=", self.equipment.id)])
        deleted = self.Usage._cron_purge_readings(batch_size=50)
        cutoff = fields.Datetime.now() - timedelta(days=5)
        kept = Reading.search_count([("equipment_id", "=", self.equipment.id)])
        # About five of the nine days are past retention (other machines may count too).
        self.assertTrue(before * 0.4 < before - kept <= deleted, (before, kept, deleted))
        # Whole local days go: the horizon is the start of the cutoff's day in Paris.
        horizon = self.equipment.usage_raw_since
        self.assertTrue(cutoff - timedelta(days=1) < horizon <= cutoff)
        self.assertEqual(usage_rollup.local_time(horizon, self.tz).time(), datetime.min.time())
        self.assertFalse(
            Reading.search_count([("equipment_id", "=", self.equipment.id), ("at", "<", horizon)])
        )
        self.assertRollupsEqual(self.equipment, expected)
        self.assertSitesEqual(self.equipment, sites, expected)
        # Recomputing from a kept day rises from the frozen day before it: same values.
        self.equipment.usage_dirty_from = horizon + timedelta(days=1, hours=3)
        self.Usage._rollup()
        self.assertRollupsEqual(self.equipment, expected)
        self.assertSitesEqual(self.equipment, sites, expected)
        # A late reading from before the horizon is kept but cannot rewrite final days.
        late = {"device_id": "DEV-1", "at": start + timedelta(minutes=1), "engine_hours": 1}
        self.deliver([late])
        self.Usage._rollup()
        self.assertFalse(self.equipment.usage_dirty_from)
        self.assertRollupsEqual(self.equipment, expected)
        self.assertSitesEqual(self.equipment, sites, expected)
        # Purging again deletes it, and nothing else.
        self.assertEqual(self.Usage._cron_purge_readings(), 1)
        self.assertRollupsEqual(self.equipment, expected)
        self.assertSitesEqual(self.equipment, sites, expected)

    def test_no_retention_keeps_every_reading(self):
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_reading_retention_days", "0"
        )
        old = fields.Datetime.now() - timedelta(days=900)
        self.deliver([{"device_id": "DEV-1", "at": old, "engine_hours": 3.0}])
        self.assertEqual(self.Usage._cron_purge_readings(), 0)
        self.assertTrue(self.equipment.telematics_reading_ids)
