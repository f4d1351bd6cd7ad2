"""Preventive maintenance plans, fed by real readings through the telematics pipeline."""

import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest.mock import patch

from freezegun import freeze_time
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from ..models import construction_maintenance_schedule as schedule_module
from ..models.construction_telematics_event import IngestError
from ..pg_settings import without_jit
from .common import committed_env
from .telematics_common import dumps, iso_snapshot, make_fleet, process_all

NOW = datetime(2026, 11, 27, 10, 0)
TODAY = NOW.date()


class PlanCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env, suffix=" plans")
        cls.category = cls.env["maintenance.equipment.category"].create({"name": "Test dozers"})
        cls.equipment.category_id = cls.category
        cls.Event = cls.env["construction.telematics.event"]
        cls.Schedule = cls.env["construction.maintenance.schedule"]
        cls.done_stage = cls.env["maintenance.stage"].search([("done", "=", True)], limit=1)

    def plan(self, *items, **values):
        plan = self.env["construction.maintenance.plan"].create(
            dict(
                {
                    "name": "Dozer plan",
                    "category_ids": [(6, 0, self.category.ids)],
                    "horizon_days": 0,
                },
                **values,
            )
        )
        created = self.env["construction.maintenance.plan.item"]
        for item in items:
            created |= created.create(dict(item, plan_id=plan.id))
        return created

    def send(self, *readings):
        """Readings (days before NOW, engine hours[, km]) through receipt and processing."""
        parsed = []
        for index, (days_ago, hours, *km) in enumerate(readings):
            value = {"device_id": "DEV-1", "at": NOW - timedelta(days=days_ago), "_index": index}
            value["engine_hours"] = hours
            if km:
                value["odometer_km"] = km[0]
            parsed.append(value)
        self.Event._receive_readings(self.source, parsed, [])
        process_all(self.Event)

    def schedule(self, item, equipment=None):
        return self.Schedule.search(
            [("equipment_id", "=", (equipment or self.equipment).id), ("item_id", "=", item.id)]
        )

    def plan_requests(self, equipment=None):
        return self.env["maintenance.request"].search(
            [("equipment_id", "=", (equipment or self.equipment).id), ("plan_item_id", "!=", False)]
        )

    def complete(self, request):
        request.write({"stage_id": self.done_stage.id})


@freeze_time(NOW)
class TestMaintenancePlans(PlanCase):
    def test_due_soon_then_overdue_opens_one_preventive_request_to_review(self):
        item = self.plan({"name": "250 h service", "interval_hours": 250, "interval_days": 365})
        self.send((10, 100.0), (5, 150.0))
        schedule = self.schedule(item)
        self.assertEqual((schedule.due_hours, schedule.due_status), (250.0, "ok"))
        self.assertAlmostEqual(schedule.progress, 60.0)
        self.assertFalse(self.plan_requests())

        self.send((1, 226.0))
        self.assertEqual(schedule.due_status, "soon")
        request = self.plan_requests()
        self.assertEqual(len(request), 1)
        self.assertEqual(
            (request.maintenance_type, request.request_origin, request.to_review, request.name),
            ("preventive", "usage_threshold", True, "250 h service"),
        )
        self.assertIn("250 h", str(request.description))
        self.assertEqual(request.priority, "1")
        self.assertEqual(schedule.open_request_id, request)

        self.send((0, 250.0))
        self.assertEqual(schedule.due_status, "overdue")
        self.assertEqual(self.plan_requests(), request, "still one open request per item")

    def test_hours_reached_first(self):
        item = self.plan({"name": "Service", "interval_hours": 250, "interval_days": 90})
        self.send((20, 10.0))
        self.send((0, 255.0))
        self.assertEqual(self.schedule(item).due_status, "overdue")
        self.assertEqual(len(self.plan_requests()), 1)

    def test_days_reached_first(self):
        item = self.plan({"name": "Yearly check", "interval_hours": 250, "interval_days": 30})
        self.send((1, 10.0), (0, 11.0))
        self.assertEqual(self.schedule(item).due_date, TODAY + timedelta(days=30))
        self.assertFalse(self.plan_requests())
        with freeze_time(NOW + timedelta(days=31)):
            self.Schedule._cron_evaluate()
            self.assertEqual(self.schedule(item).due_status, "overdue")
        request = self.plan_requests()
        self.assertEqual(len(request), 1)
        self.assertIn(str(TODAY + timedelta(days=30)), str(request.description))

    def test_and_item_waits_for_the_last_trigger(self):
        item = self.plan(
            {"name": "Both", "interval_hours": 250, "interval_days": 30, "combine": "and"}
        )
        self.send((15, 10.0))
        self.send((0, 260.0))
        self.assertEqual(self.schedule(item).due_status, "ok")
        self.assertFalse(self.plan_requests())
        with freeze_time(NOW + timedelta(days=31)):
            self.Schedule._cron_evaluate()
        self.assertEqual(self.schedule(item).due_status, "overdue")
        self.assertEqual(len(self.plan_requests()), 1)

    def test_nested_packages_larger_service_replaces_the_smaller(self):
        big = self.plan({"name": "500 h", "interval_hours": 500})
        small = big.create(
            {
                "name": "250 h",
                "interval_hours": 250,
                "plan_id": big.plan_id.id,
                "package_of_id": big.id,
            }
        )
        self.send((30, 10.0))
        self.send((20, 240.0))
        first = self.plan_requests()
        self.assertEqual(first.plan_item_id, small)
        self.complete(first)
        self.assertEqual(self.schedule(small).due_hours, 490.0)

        self.send((5, 480.0))
        second = self.plan_requests().filtered(lambda r: not r.stage_id.done)
        self.assertEqual(second.plan_item_id, big, "the 500 h package replaces the 250 h")
        self.assertEqual(self.schedule(small).due_status, "soon")
        self.complete(second)
        self.assertEqual(self.schedule(big).due_hours, 980.0)
        self.assertEqual(self.schedule(small).due_hours, 730.0, "completing 500 h did 250 h")

    def test_completion_resets_the_baseline(self):
        item = self.plan({"name": "250 h", "interval_hours": 250, "interval_days": 180})
        self.send((10, 100.0))
        self.send((1, 249.0), (0, 252.0))
        request = self.plan_requests()
        self.assertEqual(len(request), 1)
        self.complete(request)
        schedule = self.schedule(item)
        self.assertEqual(
            (
                schedule.baseline_hours,
                schedule.baseline_date,
                schedule.due_hours,
                schedule.due_date,
            ),
            (252.0, TODAY, 502.0, TODAY + timedelta(days=180)),
        )
        self.assertEqual(schedule.last_request_id, request)
        self.assertEqual((schedule.due_status, schedule.open_request_id.id), ("ok", False))
        self.assertFalse(request.plan_open)
        self.assertIn("Completion recorded at 252.0 h", request.message_ids[0].body)

        self.send(*((-day, 252.0 + 20 * day) for day in range(1, 14)))
        with freeze_time(NOW + timedelta(days=13)):
            self.Schedule._evaluate(self.equipment.ids)
        again = self.plan_requests() - request
        self.assertEqual(len(again), 1, "the next cycle opens a new request")

    def test_reopening_a_cancelled_request_while_another_is_open_is_refused_in_words(self):
        self.plan({"name": "250 h service", "interval_hours": 250})
        self.send((10, 100.0), (0, 246.0))
        first = self.plan_requests()
        self.assertEqual(len(first), 1)
        first.archive_equipment_request()
        self.Schedule._evaluate(self.equipment.ids)
        second = self.plan_requests() - first
        self.assertEqual(len(second), 1, "a cancelled request leaves room for a new one")
        with self.assertRaises(UserError) as refused:
            first.reset_equipment_request()
        message = str(refused.exception)
        for part in (self.equipment.name, "250 h service", f"#{second.id}"):
            self.assertIn(part, message)
        self.assertTrue(first.archive)
        # Once the other one is done, the cancelled one may be reopened.
        self.complete(second)
        first.reset_equipment_request()
        self.assertTrue(first.plan_open)

    def test_forecast_moves_when_utilisation_changes(self):
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.send((10, 0.0), (0, 50.0))
        schedule = self.schedule(item)
        self.assertEqual((schedule.hours_per_day, schedule.usage_source), (5.0, "readings"))
        self.assertEqual(schedule.forecast_date, TODAY + timedelta(days=40))
        with freeze_time(NOW + timedelta(days=5)):
            self.send((-5, 150.0))
            self.assertEqual(schedule.hours_per_day, 10.0)
            self.assertEqual(schedule.forecast_date, TODAY + timedelta(days=5 + 10))

    def test_a_batch_leaves_a_forecast_that_barely_moved_to_the_daily_evaluation(self):
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.send((10, 0.0), (0, 50.0))
        schedule = self.schedule(item)
        self.assertEqual(
            (schedule.hours_per_day, schedule.forecast_date), (5.0, TODAY + timedelta(days=40))
        )
        with freeze_time(NOW + timedelta(days=1)):
            # 54 h in 11 days: 4.91 h a day (2 % less), due one day later: within
            # the batch tolerance, so the stored row stays as it was...
            self.send((-1, 54.0))
            self.assertEqual(
                (schedule.hours_per_day, schedule.forecast_date), (5.0, TODAY + timedelta(days=40))
            )
            # ... until the daily evaluation writes the exact values.
            self.Schedule._cron_evaluate()
            self.assertEqual(
                (schedule.hours_per_day, schedule.forecast_date),
                (4.9, TODAY + timedelta(days=41)),
            )

    def test_a_machine_without_readings_uses_its_estimate(self):
        machine = self.env["maintenance.equipment"].create(
            {"name": "New dozer", "category_id": self.category.id, "estimated_hours_per_day": 8}
        )
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.Schedule._cron_evaluate()
        schedule = self.schedule(item, machine)
        self.assertEqual((schedule.usage_source, schedule.hours_per_day), ("estimate", 8.0))
        self.assertEqual(schedule.forecast_date, TODAY + timedelta(days=32))  # 250 / 8, up
        self.assertEqual(machine.next_maintenance_forecast_date, TODAY + timedelta(days=32))

    def test_forecast_inside_the_horizon_opens_a_request(self):
        item = self.plan({"name": "250 h", "interval_hours": 250, "soon_hours": 0}, horizon_days=7)
        self.send((10, 0.0), (0, 200.0))  # 20 h a day: 250 h in 3 days
        self.assertEqual(self.schedule(item).forecast_date, TODAY + timedelta(days=3))
        self.assertEqual(self.schedule(item).due_status, "soon")
        self.assertEqual(len(self.plan_requests()), 1)

    def test_first_service_offset_and_km_trigger(self):
        item = self.plan(
            {"name": "Running-in", "interval_km": 10000, "first_km": 1000, "soon_km": 100}
        )
        self.send((2, 1.0, 100.0), (0, 2.0, 950.0))
        schedule = self.schedule(item)
        self.assertEqual((schedule.due_km, schedule.due_status), (1000.0, "soon"))
        self.assertEqual(len(self.plan_requests()), 1)

    def test_iso15143_snapshots_drive_the_plans_late_repeated_and_hostile(self):
        """Fleet snapshots as ISO 15143-3 documents them (each element with its own
        datetime, the key spelt DateTime or datetime, Distance in miles) cross the
        250 h and the 10,000 km due-soon points, delivered out of order and twice:
        one request per item, the forecast from the use per day. Then a meter that
        went back without a replacement, a placeholder date, a number no meter
        reaches and bytes that are not JSON change nothing the plans show."""
        hours_item, km_item = self.plan(
            {"name": "250 h", "interval_hours": 250, "soon_hours": 25},
            {"name": "10,000 km", "interval_km": 10000, "soon_km": 500},
        )

        def snapshot(days_ago, hours, miles, date_key="datetime"):
            return dumps(
                iso_snapshot(
                    (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    date_key=date_key,
                    CumulativeOperatingHours={"Hour": hours},
                    Distance={"OdometerUnits": "miles", "Odometer": miles},
                )
            )

        def receive(*bodies):
            outcomes = []
            for body in bodies:
                try:
                    self.Event._receive_body(self.source, "iso15143", body)
                    outcomes.append("accepted")
                except IngestError as refused:
                    outcomes.append(refused.status)
            process_all(self.Event)
            return outcomes

        today = snapshot(0, 230.0, 6000)  # 9,656 km: past 9,500, the 10,000 km item's soon point
        receive(today, snapshot(10, 100.0, 100), snapshot(5, 180.0, 3000, "DateTime"), today)
        shown = self.Schedule.search([("equipment_id", "=", self.equipment.id)])
        self.assertEqual(self.equipment.engine_hours, 230.0)
        self.assertAlmostEqual(self.equipment.odometer_km, 6000 * 1.609344, places=1)
        self.assertEqual(set(shown.mapped("due_status")), {"soon"})
        hours_schedule = self.schedule(hours_item)
        # 130 h in 10 days: 13 h a day, 20 h left: due in 2 days (rounded up).
        self.assertEqual(hours_schedule.hours_per_day, 13.0)
        self.assertEqual(hours_schedule.forecast_date, TODAY + timedelta(days=2))
        requests = self.plan_requests()
        self.assertEqual(
            sorted(requests.mapped("plan_item_id").ids), sorted([hours_item.id, km_item.id])
        )
        self.assertEqual(set(requests.mapped("maintenance_type")), {"preventive"})

        outcomes = receive(
            snapshot(-0.01, 50.0, 6001),  # the meter went back: no replacement recorded
            snapshot(-0.02, 1e12, 6002),  # no meter reaches that
            dumps(iso_snapshot("0001-01-01T00:00:00Z", CumulativeOperatingHours={"Hour": 999})),
            b"\xff\xfe{not json",
        )
        # The meter that went back is stored and set aside; the number no meter reaches
        # is refused at receipt (kept as a rejected event, the snapshot's distance
        # taken); the undated and the unreadable bodies are refused whole.
        self.assertEqual(outcomes, ["accepted", "accepted", 422, 400])
        Reading = self.env["construction.telematics.reading"]
        went_back = Reading.search(
            [("equipment_id", "=", self.equipment.id), ("engine_hours", "=", 50.0)]
        )
        self.assertEqual(went_back.mapped("suspect"), [True])
        self.assertIn("went backwards", went_back.suspect_reason)
        self.assertFalse(
            Reading.search([("equipment_id", "=", self.equipment.id), ("engine_hours", ">", 1e6)])
        )
        self.assertEqual(
            self.Event.search_count(
                [("source_id", "=", self.source.id), ("state", "=", "rejected")]
            ),
            3,
        )
        self.assertEqual(self.equipment.engine_hours, 230.0)
        self.assertEqual(self.plan_requests(), requests)
        self.assertEqual(set(shown.mapped("due_status")), {"soon"})
        self.assertEqual(hours_schedule.forecast_date, TODAY + timedelta(days=2))

    def test_evaluation_runs_without_jit_and_puts_the_setting_back(self):
        # PostgreSQL compiled the machines statement (16 ms) after every batch once
        # the window held a few weeks of readings: evaluation turns JIT off for it.
        cr = self.env.cr

        def jit():
            cr.execute("SELECT current_setting('jit')")
            return cr.fetchone()[0]

        during = []

        @contextmanager
        def observed(cursor):
            with without_jit(cursor):
                during.append(jit())  # what the machines statement runs with
                yield

        item = self.plan({"name": "250 h", "interval_hours": 250})
        with patch.object(schedule_module, "without_jit", observed):
            for setting in ("on", "off"):
                cr.execute("SELECT set_config('jit', %s, true)", [setting])
                self.send(
                    (2 if setting == "on" else 1, 10.0), (0, 20.0 if setting == "on" else 30.0)
                )
                self.assertEqual(jit(), setting, "the evaluation left JIT changed")
        self.assertEqual(during, ["off", "off"])
        self.assertEqual(self.schedule(item).usage_source, "readings")

    def test_machines_without_plans_cost_nothing(self):
        self.send((1, 10.0), (0, 20.0))
        self.assertFalse(self.Schedule.search([("equipment_id", "=", self.equipment.id)]))

    def test_upcoming_maintenance_views_load(self):
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.send((1, 10.0), (0, 20.0))
        action = self.env.ref("construction_asset_sync.construction_maintenance_schedule_action")
        self.assertEqual(action.view_mode, "list,calendar,form")
        for view in ("list", "calendar", "search"):
            self.Schedule.get_view(view_type=view)
        found = self.Schedule.search([("equipment_id", "=", self.equipment.id)])
        self.assertEqual(found.item_id, item)
        self.assertEqual(self.equipment.maintenance_due_status, "ok")
        # The machine's card shows the service badges beside the telematics state.
        kanban = self.env["maintenance.equipment"].get_view(view_type="kanban")["arch"]
        for shown in ("Service overdue", "Service due soon", "Next service", "Engine hours"):
            self.assertIn(shown, kanban)


@tagged("post_install", "-at_install")
class TestPlanConcurrency(TransactionCase):
    """Two committed transactions find the same item due: one request, never two."""

    def setUp(self):
        super().setUp()
        with committed_env(self.registry) as env:
            source, _key, equipment = make_fleet(env, suffix=f" plans {id(self)}")
            category = env["maintenance.equipment.category"].create({"name": f"C {id(self)}"})
            equipment.category_id = category
            plan = env["construction.maintenance.plan"].create(
                {"name": "Concurrent plan", "category_ids": [(6, 0, category.ids)]}
            )
            env["construction.maintenance.plan.item"].create(
                {"name": "250 h", "interval_hours": 250, "plan_id": plan.id}
            )
            self.ids = {
                "source": source.id,
                "system": source.external_system_id.id,
                "equipment": equipment.id,
                "category": category.id,
                "plan": plan.id,
            }
        self.addCleanup(self._drop_committed_data)

    def _drop_committed_data(self):
        with committed_env(self.registry) as env:
            env["maintenance.request"].search(
                [("equipment_id", "=", self.ids["equipment"])]
            ).unlink()
            env["construction.maintenance.plan"].browse(self.ids["plan"]).unlink()
            Event = env["construction.telematics.event"].with_context(active_test=False)
            Event.search([("source_id", "=", self.ids["source"])]).unlink()
            env["construction.telematics.source"].browse(self.ids["source"]).unlink()
            env["maintenance.equipment"].browse(self.ids["equipment"]).unlink()
            env["maintenance.equipment.category"].browse(self.ids["category"]).unlink()
            env["construction.external.system"].browse(self.ids["system"]).unlink()

    def _requests(self):
        with committed_env(self.registry) as env:
            return len(
                env["maintenance.request"].search(
                    [("equipment_id", "=", self.ids["equipment"]), ("plan_open", "=", True)]
                )
            )

    def test_two_evaluations_open_one_request(self):
        with committed_env(self.registry) as env:
            env["construction.maintenance.schedule"]._evaluate([self.ids["equipment"]])
            env.cr.execute(
                "UPDATE maintenance_equipment SET engine_hours = 260, engine_hours_at = %s "
                "WHERE id = %s",
                [datetime.now(), self.ids["equipment"]],
            )
            env["construction.maintenance.schedule"]._evaluate([self.ids["equipment"]])
            # Both transactions below see the item overdue and no open request.
            env["maintenance.request"].search(
                [("equipment_id", "=", self.ids["equipment"])]
            ).unlink()
        first_inserted, errors, opened, waited = threading.Event(), [], [], []

        def first():
            try:
                with committed_env(self.registry) as env:
                    opened.append(
                        len(
                            env["construction.maintenance.schedule"]._evaluate(
                                [self.ids["equipment"]]
                            )
                        )
                    )
                    first_inserted.set()
                    # Hold the transaction open while the second one tries.
                    threading.Event().wait(1.5)
            except Exception as exc:
                errors.append(exc)
                first_inserted.set()

        def second():
            try:
                first_inserted.wait(30)
                started = time.monotonic()
                with committed_env(self.registry) as env:
                    opened.append(
                        len(
                            env["construction.maintenance.schedule"]._evaluate(
                                [self.ids["equipment"]]
                            )
                        )
                    )
                    waited.append(time.monotonic() - started)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        with mute_logger("odoo.sql_db"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        self.assertEqual(errors, [])
        # The second insert waited on the partial unique index until the first
        # committed, then gave way.
        self.assertGreater(waited[0], 1.0)
        self.assertEqual(sorted(opened), [0, 1])
        self.assertEqual(self._requests(), 1)

    def test_concurrent_batches_open_one_request(self):
        with committed_env(self.registry) as env:
            source = env["construction.telematics.source"].browse(self.ids["source"])
            Event = env["construction.telematics.event"]
            for batch in range(6):
                at = datetime(2026, 11, 20) + timedelta(hours=batch)
                Event._receive_readings(
                    source,
                    [{"device_id": "DEV-1", "at": at, "engine_hours": 240.0 + batch, "_index": 0}],
                    [],
                )
        errors = []

        def worker():
            try:
                while True:
                    with committed_env(self.registry) as env:
                        if not env["construction.telematics.event"]._process_batch(limit=1):
                            return
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        with mute_logger("odoo.sql_db"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(self._requests(), 1)
        with committed_env(self.registry) as env:
            events = env["construction.telematics.event"].search(
                [("source_id", "=", self.ids["source"])]
            )
            self.assertEqual(set(events.mapped("state")), {"processed"})
