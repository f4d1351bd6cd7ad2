import threading
from datetime import datetime, timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from .common import committed_env, load_migration
from .telematics_common import alert, devices_by_shard, dumps, make_fleet


def reading(at, **values):
    return dict(device_id="DEV-1", at=at, **values)


class TestTelematicsProcessing(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]

    def receive(self, *alerts):
        return self.Event._receive_alerts(self.source, list(alerts))

    def receive_readings(self, *readings):
        parsed = []
        for index, item in enumerate(readings):
            value = dict(item, at=fields.Datetime.to_datetime(item["at"]), _index=index)
            parsed.append(value)
        return self.Event._receive_readings(self.source, parsed, [])

    def requests(self):
        return self.env["maintenance.request"].search([("equipment_id", "=", self.equipment.id)])

    # -- alerts --------------------------------------------------------------
    def test_warning_opens_a_normal_priority_request_marked_for_review(self):
        self.receive(alert(severity="warning", code="LOWFUEL", message="Fuel low"))
        self.Event._process_batch()
        request = self.requests()
        self.assertEqual(request.name, "LOWFUEL: Fuel low")
        self.assertEqual(request.priority, "2")
        self.assertEqual(request.maintenance_type, "corrective")
        self.assertEqual(request.request_origin, "telematics_alert")
        self.assertTrue(request.to_review)
        self.assertEqual(request.alert_sensor_snapshot["readings"]["engine_hours"], 1200.5)

    def test_repeats_annotate_the_open_request_and_cleared_posts_a_note(self):
        self.receive(alert(event_id="1", severity="warning"))
        self.receive(alert(event_id="2", severity="critical", occurred_at="2026-11-20T09:00:00Z"))
        self.receive(alert(event_id="3", state="cleared", occurred_at="2026-11-20T10:00:00Z"))
        self.Event._process_batch()
        request = self.requests()
        self.assertEqual(len(request), 1)
        self.assertEqual(request.alert_repeat_count, 2)
        self.assertEqual(request.priority, "3")
        bodies = " ".join(request.message_ids.mapped("body")).lower()
        self.assertIn("repeated", bodies)
        self.assertIn("cleared", bodies)
        self.assertFalse(self.equipment.last_fault_code)

    def test_a_new_request_opens_once_the_previous_one_is_done(self):
        self.receive(alert(event_id="1"))
        self.Event._process_batch()
        done_stage = self.env["maintenance.stage"].search([("done", "=", True)], limit=1)
        self.requests().stage_id = done_stage
        self.receive(alert(event_id="2"))
        self.Event._process_batch()
        self.assertEqual(len(self.requests()), 2)

    def test_info_alert_only_updates_state(self):
        self.receive(alert(severity="info", code="GEOFENCE", location={"lat": 1.5, "lon": 2.5}))
        self.Event._process_batch()
        self.assertFalse(self.requests())
        self.assertEqual(self.equipment.telematics_latitude, 1.5)
        self.assertEqual(self.equipment.engine_hours, 1200.5)

    # -- shards --------------------------------------------------------------
    def test_a_batch_of_shards_takes_only_the_events_of_their_devices(self):
        devices = devices_by_shard(self.env.cr, 2)
        first, second = devices[0], devices[1]
        for device in (first, second):
            machine = self.env["maintenance.equipment"].create({"name": f"Loader {device}"})
            self.env["construction.external.id"].create(
                {
                    "system_id": self.source.external_system_id.id,
                    "external_id": device,
                    "equipment_id": machine.id,
                }
            )
        at = "2026-11-20 09:00:00"
        self.receive_readings(dict(reading(at, engine_hours=5), device_id=first))
        self.receive_readings(dict(reading(at, engine_hours=7), device_id=second))
        self.receive(alert(event_id="shard", device_id=second))
        events = self.Event.search([("source_id", "=", self.source.id)])

        def states():
            return {(e.device_id, e.kind): e.state for e in events}

        self.assertEqual(self.Event._process_batch(shards=[1], shard_count=2), 2)
        self.assertEqual(
            states(),
            {
                (first, "readings"): "pending",
                (second, "readings"): "processed",
                (second, "alert"): "processed",
            },
        )
        self.assertEqual(self.Event._process_batch(shards=[1], shard_count=2), 0)
        self.assertEqual(self.Event._process_batch(shards=[0], shard_count=2), 1)
        self.assertEqual(set(states().values()), {"processed"})

    # -- readings ------------------------------------------------------------
    def test_counters_never_go_backwards_and_jumps_are_flagged(self):
        self.receive_readings(
            reading("2026-11-20 08:00:00", engine_hours=100.0, odometer_km=50.0),
            reading("2026-11-20 10:00:00", engine_hours=101.5, odometer_km=80.0),
            reading("2026-11-20 11:00:00", engine_hours=99.0),
            reading("2026-11-20 12:00:00", engine_hours=160.0),
            reading("2026-11-20 13:00:00", engine_hours=102.4, fuel_level_pct=55.0),
        )
        self.Event._process_batch()
        history = self.equipment.telematics_reading_ids.sorted("at")
        self.assertEqual(history.mapped("suspect"), [False, False, True, True, False])
        self.assertIn("went backwards", history[2].suspect_reason)
        self.assertIn("more than 24 per day", history[3].suspect_reason)
        self.assertEqual(self.equipment.engine_hours, 102.4)
        self.assertEqual(self.equipment.odometer_km, 80.0)
        self.assertEqual(self.equipment.fuel_level_pct, 55.0)

    def test_plausibility_limit_is_configurable(self):
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_max_engine_hours_per_day", "12"
        )
        self.receive_readings(
            reading("2026-11-20 00:00:00", engine_hours=100.0),
            reading("2026-11-21 00:00:00", engine_hours=115.0),
        )
        self.Event._process_batch()
        self.assertEqual(self.equipment.engine_hours, 100.0)
        self.assertTrue(self.equipment.telematics_reading_ids.filtered("suspect"))

    def test_older_readings_fill_history_without_moving_state(self):
        self.receive_readings(
            reading("2026-11-20 12:00:00", engine_hours=200.0, fuel_level_pct=50.0)
        )
        self.Event._process_batch()
        self.receive_readings(
            reading("2026-11-20 06:00:00", engine_hours=195.0, fuel_level_pct=90.0)
        )
        self.Event._process_batch()
        self.assertEqual(self.equipment.engine_hours, 200.0)
        self.assertEqual(self.equipment.fuel_level_pct, 50.0)
        self.assertEqual(self.equipment.telematics_reading_count, 2)

    def test_engine_and_idle_hours_each_keep_their_own_time(self):
        # ISO 15143-3 snapshots give every element its own datetime: here the idle
        # hours are always half an hour ahead of the operating hours, one snapshot
        # an hour, each processed on its own as they arrive.
        for hour, (engine, idle) in enumerate([(1000.0, 200.0), (1001.0, 200.2), (1002.0, 200.4)]):
            self.receive_readings(
                reading(f"2026-11-20 1{hour}:00:00", engine_hours=engine),
                reading(f"2026-11-20 1{hour}:30:00", idle_hours=idle),
            )
            self.Event._process_batch()
        history = self.equipment.telematics_reading_ids
        self.assertEqual(history.filtered("suspect").mapped("suspect_reason"), [])
        self.assertEqual((self.equipment.engine_hours, self.equipment.idle_hours), (1002.0, 200.4))
        self.assertEqual(
            self.equipment.engine_hours_at, fields.Datetime.to_datetime("2026-11-20 12:00:00")
        )
        self.assertEqual(
            self.equipment.idle_hours_at, fields.Datetime.to_datetime("2026-11-20 12:30:00")
        )

    def test_position_and_fuel_move_with_their_own_time_not_the_latest_element(self):
        # The location element of a snapshot may be older than its hours (ISO 15143-3):
        # a newer position than the one shown still moves the machine on the map.
        self.receive_readings(
            reading("2026-11-20 08:58:00", engine_hours=500.0),
            reading("2026-11-20 08:30:00", lat=48.1, lon=2.2, fuel_level_pct=70.0),
        )
        self.Event._process_batch()
        self.receive_readings(
            reading("2026-11-20 09:14:00", engine_hours=500.2),
            reading("2026-11-20 08:50:00", lat=48.9, lon=2.35, fuel_level_pct=64.0),
        )
        self.Event._process_batch()
        machine = self.equipment
        self.assertEqual((machine.telematics_latitude, machine.telematics_longitude), (48.9, 2.35))
        self.assertEqual(machine.fuel_level_pct, 64.0)
        at = fields.Datetime.to_datetime
        self.assertEqual(machine.telematics_position_at, at("2026-11-20 08:50:00"))
        self.assertEqual(machine.fuel_level_at, at("2026-11-20 08:50:00"))
        self.assertEqual(machine.telematics_last_seen_at, at("2026-11-20 09:14:00"))
        # An older position than the one shown still only fills the history.
        self.receive_readings(
            reading("2026-11-20 08:40:00", lat=47.0, lon=1.0, fuel_level_pct=90.0)
        )
        self.Event._process_batch()
        self.assertEqual((machine.telematics_latitude, machine.fuel_level_pct), (48.9, 64.0))
        self.assertEqual(machine.telematics_reading_count, 5)

    def test_an_upgraded_machine_keeps_its_newer_position_and_fuel_level(self):
        # As 18.0.1.5.0 left a machine: one stamp for engine and idle hours, none for
        # its position and fuel level, which were as new as its last reading.
        self.env.cr.execute(
            """UPDATE maintenance_equipment
               SET telematics_last_seen_at = '2026-11-20 09:00',
                   engine_hours_at = '2026-11-20 09:00',
                   engine_hours = 500, idle_hours = 80, telematics_latitude = 48.9,
                   telematics_longitude = 2.35, fuel_level_pct = 64
               WHERE id = %s""",
            [self.equipment.id],
        )
        migration = load_migration("18.0.1.6.0", "post-migrate")
        self.assertGreaterEqual(migration.stamp_idle_hours_position_and_fuel(self.env.cr), 1)
        self.env.invalidate_all()
        at = fields.Datetime.to_datetime("2026-11-20 09:00:00")
        machine = self.equipment
        self.assertEqual(
            (machine.idle_hours_at, machine.telematics_position_at, machine.fuel_level_at),
            (at, at, at),
        )
        self.receive_readings(
            reading("2026-11-20 08:40:00", lat=47.0, lon=1.0, fuel_level_pct=90.0)
        )
        self.Event._process_batch()
        self.assertEqual((machine.telematics_latitude, machine.fuel_level_pct), (48.9, 64.0))

    def test_an_upgraded_machine_whose_idle_hours_stamped_its_engine_hours_is_unfrozen(self):
        self.receive_readings(
            reading("2026-11-20 10:00:00", engine_hours=1000.0),
            reading("2026-11-20 10:30:00", idle_hours=200.0),
        )
        self.Event._process_batch()
        # As 18.0.1.5.0 left it: the idle hours, last, gave the one stamp.
        self.env.flush_all()
        self.env.cr.execute(
            """UPDATE maintenance_equipment
               SET engine_hours_at = '2026-11-20 10:30', idle_hours_at = NULL
               WHERE id = %s""",
            [self.equipment.id],
        )
        migration = load_migration("18.0.1.6.0", "post-migrate")
        migration.stamp_idle_hours_position_and_fuel(self.env.cr)
        self.env.invalidate_all()
        at = fields.Datetime.to_datetime
        self.assertEqual(self.equipment.engine_hours_at, at("2026-11-20 10:00:00"))
        self.assertEqual(self.equipment.idle_hours_at, at("2026-11-20 10:30:00"))
        self.receive_readings(reading("2026-11-20 11:00:00", engine_hours=1001.0))
        self.Event._process_batch()
        self.assertEqual(self.equipment.engine_hours, 1001.0)
        self.assertFalse(self.equipment.telematics_reading_ids.filtered("suspect"))

    def test_history_keeps_every_value_as_sent_whatever_the_device_id_holds(self):
        """The history is written in PostgreSQL's COPY text format: a device id with a
        backslash, a tab and non-ASCII text, microseconds, and every numeric column
        (full precision, extremes, zero, missing) must come back as received."""
        device = "Ex\\cav\t01 é"
        self.env["construction.external.id"].create(
            {
                "system_id": self.source.external_system_id.id,
                "external_id": device,
                "equipment_id": self.equipment.id,
            }
        )
        full = {
            "engine_hours": 1234.56789012345,
            "idle_hours": 0.0,
            "odometer_km": 99999999.9,
            "fuel_level_pct": 100,
            "fuel_used_l": 123456789.5,
            "def_level_pct": 0.05,
            "lat": -33.8688197,
            "lon": 151.2092955,
            "speed_kmh": 12.25,
        }
        answer = self.Event._receive_body(
            self.source,
            "readings",
            dumps(
                {
                    "readings": [
                        dict(full, device_id=device, at="2026-11-20T08:00:00.123456+02:00"),
                        {"device_id": device, "at": "2026-11-20T07:00:00Z", "fuel_level_pct": 7},
                    ]
                }
            ),
        )
        self.assertEqual(answer["accepted"], 2)
        self.Event._process_batch()
        history = self.equipment.telematics_reading_ids.sorted("at")
        self.assertEqual(history.mapped("device_id"), [device, device])
        self.assertEqual(
            history.mapped("at"),
            [datetime(2026, 11, 20, 6, 0, 0, 123456), datetime(2026, 11, 20, 7, 0)],
        )
        self.env.cr.execute(
            f"""SELECT {", ".join(full)} FROM construction_telematics_reading
                WHERE id = %s""",
            [history[0].id],
        )
        self.assertEqual(
            [float(value) for value in self.env.cr.fetchone()], [float(v) for v in full.values()]
        )
        later = history[1]
        self.assertEqual(later.fuel_level_pct, 7)
        self.assertFalse(later.engine_hours or later.lat or later.sensors)
        self.env.cr.execute(
            "SELECT engine_hours IS NULL, lat IS NULL, sensors IS NULL"
            " FROM construction_telematics_reading WHERE id = %s",
            [later.id],
        )
        self.assertEqual(self.env.cr.fetchone(), (True, True, True))

    # -- retained MQTT deliveries: stale state, never alerts (reference, 4.3) --
    def last_event_retained(self):
        """The last event received, marked as the MQTT consumer marks a retained delivery."""
        event = self.Event.search([("source_id", "=", self.source.id)], limit=1)
        event.retained = True
        return event

    def test_a_retained_alert_is_kept_and_changes_nothing(self):
        self.receive(alert(event_id="stale-1"))
        event = self.last_event_retained()
        self.Event._process_batch()
        self.assertFalse(self.requests())
        self.assertEqual((event.state, event.equipment_id), ("processed", self.equipment))
        self.assertEqual(event.result, "Retained delivery (stale state): no alert raised")
        self.assertFalse(event.request_id)
        # Neither its fault code nor the position and meters it carries: old state.
        self.assertFalse(self.equipment.last_fault_code)
        self.assertFalse(self.equipment.telematics_latitude)
        self.assertFalse(self.equipment.engine_hours)
        self.assertFalse(self.equipment.telematics_last_seen_at)
        # Stored before 18.0.1.7.0, the retained copy has the live delivery's key:
        # the same alert delivered live later would be its duplicate.
        self.assertEqual(self.receive(alert(event_id="stale-1"))["duplicates"], 1)
        self.assertEqual(self.Event._process_batch(), 0)
        self.assertFalse(self.requests())
        # The upgrade keys it apart, as the MQTT consumer keys retained rows now.
        migration = load_migration("18.0.1.7.0", "post-migrate")
        self.assertEqual(migration.key_retained_deliveries_apart(self.env.cr), 1)
        self.env.invalidate_all()
        self.assertEqual(event.dedupe_key, "retained:alert:stale-1")
        self.assertEqual(migration.key_retained_deliveries_apart(self.env.cr), 0)
        self.assertEqual(self.receive(alert(event_id="stale-1"))["accepted"], 1)
        self.Event._process_batch()
        self.assertEqual(len(self.requests()), 1, "the live alert opens its request")

    def test_a_retained_repeat_or_clear_leaves_the_open_request_alone(self):
        self.receive(alert(event_id="live-1"))
        self.Event._process_batch()
        request = self.requests()
        notes = request.message_ids
        self.receive(alert(event_id="stale-repeat", occurred_at="2026-11-20T09:00:00Z"))
        self.last_event_retained()
        self.receive(alert(event_id="stale-clear", state="cleared"))
        self.last_event_retained()
        self.Event._process_batch()
        self.assertEqual(self.requests(), request)
        self.assertEqual(request.alert_repeat_count, 1)
        self.assertEqual(request.message_ids, notes, "no note")
        self.assertEqual(self.equipment.last_fault_code, "SPN110-FMI0", "still the live alert's")

    def test_a_retained_reading_is_kept_only_if_newer_than_the_machines_latest(self):
        """A late reading sent live fills the history; a retained one older than what
        the machine has is old state: not kept (the ledger keeps its event)."""
        self.receive_readings(reading("2026-11-20 12:00:00", engine_hours=200.0))
        self.Event._process_batch()
        # In one batch: a live reading, then a retained delivery around it.
        self.receive_readings(reading("2026-11-20 12:45:00", engine_hours=200.5))
        self.receive_readings(
            reading("2026-11-20 06:00:00", engine_hours=195.0),
            reading("2026-11-20 12:30:00", engine_hours=200.4),
            reading("2026-11-20 13:00:00", engine_hours=200.6, fuel_level_pct=60.0),
        )
        event = self.last_event_retained()
        self.Event._process_batch()
        history = self.equipment.telematics_reading_ids.sorted("at")
        self.assertEqual(history.mapped("engine_hours"), [200.0, 200.5, 200.6])
        self.assertEqual(history[-1].event_id, event)
        self.assertEqual(
            event.result, "1 readings stored, 2 retained and no newer than the machine's latest"
        )
        self.assertEqual((self.equipment.engine_hours, self.equipment.fuel_level_pct), (200.6, 60))

    def test_a_retained_reading_older_than_what_the_machine_has_is_stale_without_history(self):
        # Retention emptied the history, or the machine is known by its alerts only:
        # what it last reported still dates what a retained delivery may bring.
        self.receive(alert(severity="info", code="GEOFENCE", occurred_at="2026-11-20T12:00:00Z"))
        self.Event._process_batch()
        self.assertFalse(self.equipment.telematics_reading_ids)
        self.receive_readings(reading("2026-11-20 11:00:00", engine_hours=1100.0))
        event = self.last_event_retained()
        self.Event._process_batch()
        self.assertEqual(
            event.result, "0 readings stored, 1 retained and no newer than the machine's latest"
        )
        self.assertFalse(self.equipment.telematics_reading_ids)

    # -- failures, replay, retention ---------------------------------------
    def test_failures_back_off_then_die_and_replay_recovers(self):
        self.receive(alert())
        event = self.Event.search([("source_id", "=", self.source.id)])
        model_class = type(self.env["construction.telematics.processor"])
        with patch.object(model_class, "_apply_alert", side_effect=RuntimeError("boom")):
            self.Event._process_batch()
            self.assertEqual(event.state, "failed")
            self.assertEqual(event.attempts, 1)
            self.assertIn("RuntimeError: boom", event.last_error)
            self.assertGreater(event.next_attempt_at, fields.Datetime.now())
            self.assertEqual(self.Event._process_batch(), 0, "not due before its backoff")
            for _attempt in range(4):
                # Due by the clock of the query (the transaction's start, which the
                # whole test class shares), not by the wall clock.
                event.next_attempt_at = self.env.cr.now() - timedelta(seconds=1)
                self.Event._process_batch()
        self.assertEqual(event.state, "dead")
        self.assertEqual(event.attempts, 5)
        self.assertFalse(self.requests())
        event.action_replay()
        self.Event._process_batch()
        self.assertEqual(event.state, "processed")
        self.assertEqual(len(self.requests()), 1)

    def test_retention_archives_old_processed_events_only(self):
        self.receive(
            alert(event_id="old"), alert(event_id="new"), alert(event_id="bad", device_id="NOPE")
        )
        self.Event._process_batch()
        events = self.Event.search([("source_id", "=", self.source.id)])
        old = events.filtered(lambda e: e.dedupe_key == "alert:old")
        old.processed_at = fields.Datetime.now() - timedelta(days=31)
        self.env.flush_all()
        self.Event._cron_archive_processed()
        self.assertFalse(old.active)
        self.assertTrue(all((events - old).mapped("active")))
        self.assertTrue(old.exists())
        self.source.invalidate_recordset()
        self.assertEqual((self.source.event_count, self.source.attention_event_count), (3, 1))
        self.assertTrue(self.source.last_received_at)

    def test_dispatcher_reads_the_ledger_but_cannot_replay(self):
        from odoo.exceptions import AccessError
        from odoo.tests import new_test_user

        self.receive(alert())
        dispatcher = new_test_user(
            self.env,
            "tele_dispatch",
            groups="base.group_user,construction_asset_sync.group_dispatcher",
        )
        event = self.Event.search([("source_id", "=", self.source.id)]).with_user(dispatcher)
        self.assertEqual(event.state, "pending")
        with self.assertRaises(AccessError):
            event.action_replay()
        with self.assertRaises(AccessError):
            self.source.with_user(dispatcher).read(["hmac_secret"])


class SimulatedCrash(BaseException):
    """A worker killed mid-batch: not an Exception, so nothing inside catches it."""


@tagged("post_install", "-at_install")
class TestTelematicsWorkers(TransactionCase):
    """Real concurrency: committed events, separate cursors, separate threads."""

    ALERTS = 30

    def setUp(self):
        super().setUp()
        with committed_env(self.registry) as env:
            source, _key, equipment = make_fleet(env, suffix=f" workers {id(self)}")
            env["construction.telematics.event"]._receive_alerts(
                source,
                [alert(event_id=f"w{i}", code=f"CODE-{i % 10}") for i in range(self.ALERTS)],
            )
            self.source_id, self.equipment_id = source.id, equipment.id
            self.system_id = source.external_system_id.id
        self.addCleanup(self._drop_committed_data)

    def _drop_committed_data(self):
        with committed_env(self.registry) as env:
            env["maintenance.request"].search([("equipment_id", "=", self.equipment_id)]).unlink()
            Event = env["construction.telematics.event"].with_context(active_test=False)
            Event.search([("source_id", "=", self.source_id)]).unlink()
            env["construction.telematics.source"].browse(self.source_id).unlink()
            env["maintenance.equipment"].browse(self.equipment_id).unlink()
            env["construction.external.system"].browse(self.system_id).unlink()

    def _committed_outcome(self):
        with committed_env(self.registry) as env:
            events = env["construction.telematics.event"].search(
                [("source_id", "=", self.source_id)]
            )
            requests = env["maintenance.request"].search([("equipment_id", "=", self.equipment_id)])
            return (
                sorted(events.mapped("state")),
                events.mapped("attempts"),
                len(requests),
                sum(requests.mapped("alert_repeat_count")),
            )

    def _worker(self, batch_size, taken, errors):
        try:
            while True:
                with committed_env(self.registry) as env:
                    count = env["construction.telematics.event"]._process_batch(limit=batch_size)
                    taken.append(count)
                if not count:
                    return
        except Exception as exc:  # reported to the test thread
            errors.append(exc)

    def test_two_workers_never_process_the_same_event(self):
        taken, errors = [], []
        threads = [threading.Thread(target=self._worker, args=(3, taken, errors)) for _ in range(2)]
        # Colliding workers make PostgreSQL refuse some statements (serialization
        # failures, which the batch handles); odoo.sql_db logs each as an ERROR.
        with mute_logger("odoo.sql_db"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        self.assertEqual(errors, [])
        states, attempts, request_count, repeats = self._committed_outcome()
        self.assertEqual(states, ["processed"] * self.ALERTS)
        self.assertEqual(set(attempts), {1}, "an event was processed twice")
        self.assertGreaterEqual(sum(taken), self.ALERTS)  # postponed events are taken again
        self.assertEqual(request_count, 10, "one open request per machine and alert code")
        self.assertEqual(repeats, self.ALERTS)

    def test_crash_mid_batch_loses_and_duplicates_nothing(self):
        model_class = type(self.env["construction.telematics.processor"])
        original = model_class._process

        def crash_after_the_work(processor, events):
            original(processor, events)  # requests and notes are made...
            raise SimulatedCrash  # ...and the worker dies before committing

        with (
            patch.object(model_class, "_process", crash_after_the_work),
            self.assertRaises(SimulatedCrash),
            committed_env(self.registry) as env,
        ):
            env["construction.telematics.event"]._process_batch(limit=10)
        states, attempts, request_count, _repeats = self._committed_outcome()
        self.assertEqual(states, ["pending"] * self.ALERTS, "the crashed batch rolled back")
        self.assertEqual(request_count, 0)

        with committed_env(self.registry) as env:
            while env["construction.telematics.event"]._process_batch(limit=10):
                env.cr.commit()
        states, attempts, request_count, repeats = self._committed_outcome()
        self.assertEqual(states, ["processed"] * self.ALERTS)
        self.assertEqual(set(attempts), {1})
        self.assertEqual(request_count, 10)
        self.assertEqual(repeats, self.ALERTS)


class TestTelematicsKeys(TransactionCase):
    def test_admin_gets_the_key_once_and_only_its_hash_is_stored(self):
        from odoo.exceptions import AccessError, UserError
        from odoo.tests import new_test_user

        admin = new_test_user(
            self.env,
            "tele_admin",
            groups="base.group_user,construction_asset_sync.group_integration_admin",
        )
        dispatcher = new_test_user(
            self.env, "tele_disp", groups="base.group_user,construction_asset_sync.group_dispatcher"
        )
        source = (
            self.env["construction.telematics.source"].with_user(admin).create({"name": "Gateway"})
        )
        self.assertEqual(source.external_system_id.kind, "telematics")
        action = source.action_generate_api_key()
        key = self.env[action["res_model"]].browse(action["res_id"]).api_key
        Source = self.env["construction.telematics.source"]
        self.assertEqual(Source._authenticate(key), source)
        self.assertNotIn(key, str(source.sudo().read()[0]))
        self.assertEqual(source.sudo().api_key_prefix, key.split("_")[1])
        source.action_generate_api_key()
        self.assertFalse(Source._authenticate(key), "the replaced key stops working")
        with self.assertRaises(UserError):
            source.with_user(dispatcher).action_generate_api_key()
        with self.assertRaises(AccessError):
            source.with_user(dispatcher).read(["api_key_hash"])


class TestTelematicsBatchBudget(TransactionCase):
    def test_a_batch_stops_at_its_item_budget(self):
        source, _key, equipment = make_fleet(self.env)
        second = self.env["maintenance.equipment"].create({"name": "Second"})
        self.env["construction.external.id"].create(
            {
                "system_id": source.external_system_id.id,
                "external_id": "DEV-2",
                "equipment_id": second.id,
            }
        )
        Event = self.env["construction.telematics.event"]
        readings = [
            {
                "device_id": device,
                "at": fields.Datetime.to_datetime(f"2026-11-20 0{h}:00:00"),
                "engine_hours": 10.0 + h,
                "_index": 0,
            }
            for device in ("DEV-1", "DEV-2")
            for h in range(3)
        ]
        Event._receive_readings(source, readings, [])
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_batch_items", "4"
        )
        self.assertEqual(Event._process_batch(), 1, "the second 3-reading event exceeds the budget")
        self.assertEqual(Event._process_batch(), 1)
        self.assertEqual(Event._process_batch(), 0)
        self.assertEqual(equipment.telematics_reading_count, 3)
        self.assertEqual(second.telematics_reading_count, 3)


class TestTelematicsMultiCompany(TransactionCase):
    def test_each_company_sees_only_its_own_telematics(self):
        from odoo import Command
        from odoo.tests import new_test_user

        other = self.env["res.company"].create({"name": "Other Builders"})
        other_env = self.env(context=dict(self.env.context, allowed_company_ids=[other.id]))
        source, _key, equipment = make_fleet(other_env, suffix=" other")
        self.assertEqual(source.company_id, other)
        self.env["construction.telematics.event"]._receive_alerts(source, [alert()])
        self.env["construction.telematics.event"]._process_batch()
        self.assertEqual(equipment.telematics_reading_count, 0)
        self.env["construction.telematics.event"]._receive_readings(
            source,
            [
                {
                    "device_id": "DEV-1",
                    "at": fields.Datetime.to_datetime("2026-11-20 08:00:00"),
                    "engine_hours": 5.0,
                    "_index": 0,
                }
            ],
            [],
        )
        self.env["construction.telematics.event"]._process_batch()
        self.env["construction.telematics.idempotency"]._remember(
            source, "key-1", "0" * 64, 202, {"accepted": 1}
        )
        self.assertTrue(
            self.env["construction.telematics.idempotency"].search([("source_id", "=", source.id)])
        )
        admin_here = new_test_user(
            self.env,
            "tele_admin_here",
            groups="base.group_user,construction_asset_sync.group_integration_admin",
            company_id=self.env.company.id,
            company_ids=[Command.set(self.env.company.ids)],
        )
        for model in (
            "construction.telematics.source",
            "construction.telematics.event",
            "construction.telematics.reading",
            "construction.telematics.idempotency",
        ):
            visible = self.env[model].with_user(admin_here).search([])
            self.assertFalse(
                visible.filtered(lambda record: record.company_id == other), f"{model} leaks"
            )
        self.assertTrue(
            self.env["construction.telematics.reading"].search(
                [("equipment_id", "=", equipment.id)]
            )
        )
