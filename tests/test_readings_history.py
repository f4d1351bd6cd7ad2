"""The readings history has no foreign key; deleting and concurrency keep its integrity."""

import threading
import time
from datetime import datetime, timedelta
from unittest.mock import patch

from odoo.tests import TransactionCase, new_test_user
from odoo.tools import mute_logger
from psycopg2 import errors as pg_errors

from .common import committed_env, load_migration
from .telematics_common import drop_committed_fleet, make_fleet, process_all

HISTORY_KEYS_SQL = """
    SELECT conname FROM pg_constraint
    WHERE conrelid = 'construction_telematics_reading'::regclass AND contype = 'f'
    ORDER BY conname"""


def hours_reading(at, hours):
    return {"device_id": "DEV-1", "at": at, "engine_hours": hours, "_index": 0}


def history_of(cr, column, record_id):
    cr.execute(
        f"SELECT count(*) FROM construction_telematics_reading WHERE {column} = %s", [record_id]
    )
    return cr.fetchone()[0]


class TestReadingsHistoryDeletion(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]
        start = datetime(2026, 11, 20, 8)
        cls.Event._receive_readings(
            cls.source,
            [hours_reading(start + timedelta(minutes=m), 100 + m / 60) for m in range(5)],
            [],
        )
        process_all(cls.Event)
        cls.event = cls.Event.search([("source_id", "=", cls.source.id)])

    def test_the_history_has_no_foreign_key(self):
        # The per-row checks of a foreign key doubled the cost of storing history.
        self.env.cr.execute(HISTORY_KEYS_SQL)
        self.assertEqual(self.env.cr.fetchall(), [])

    def test_deleting_a_machine_deletes_its_history(self):
        manager = new_test_user(
            self.env,
            login="history_manager",
            groups="base.group_user,maintenance.group_equipment_manager",
        )
        self.assertEqual(history_of(self.env.cr, "equipment_id", self.equipment.id), 5)
        # A maintenance manager has no right on readings, and needs none to delete a machine.
        self.equipment.with_user(manager).unlink()
        self.assertEqual(history_of(self.env.cr, "equipment_id", self.equipment.id), 0)

    def test_deleting_an_event_deletes_its_history(self):
        self.assertEqual(history_of(self.env.cr, "event_id", self.event.id), 5)
        self.event.unlink()
        self.assertEqual(history_of(self.env.cr, "event_id", self.event.id), 0)
        self.assertEqual(history_of(self.env.cr, "equipment_id", self.equipment.id), 0)

    def test_the_migration_drops_the_foreign_keys_of_an_older_database(self):
        migration = load_migration("18.0.1.4.0", "pre-migrate")
        cr = self.env.cr
        # As 18.0.1.3.0 left them.
        cr.execute(
            """ALTER TABLE construction_telematics_reading
               ADD CONSTRAINT construction_telematics_reading_equipment_id_fkey
                   FOREIGN KEY (equipment_id) REFERENCES maintenance_equipment(id)
                   ON DELETE CASCADE,
               ADD CONSTRAINT construction_telematics_reading_event_id_fkey
                   FOREIGN KEY (event_id) REFERENCES construction_telematics_event(id)
                   ON DELETE CASCADE"""
        )
        cr.execute(HISTORY_KEYS_SQL)
        self.assertEqual(len(cr.fetchall()), 2)
        migration.migrate(cr, "18.0.1.3.0")
        cr.execute(HISTORY_KEYS_SQL)
        self.assertEqual(cr.fetchall(), [])
        migration.migrate(cr, "18.0.1.3.0")  # runs again harmlessly


class TestReadingsHistoryInsert(TransactionCase):
    """New, late and repeated readings in one batch: each machine and time stored once."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]
        cls.start = datetime(2026, 11, 20, 8)
        cls.Event._receive_readings(
            cls.source,
            [hours_reading(cls.start + timedelta(minutes=m), 100 + m / 100) for m in range(5)],
            [],
        )
        process_all(cls.Event)

    def at(self, minutes):
        return self.start + timedelta(minutes=minutes)

    def receive(self, *readings):
        self.Event._receive_readings(
            self.source, [hours_reading(self.at(m), hours) for m, hours in readings], []
        )
        return self.Event.search([("source_id", "=", self.source.id)], limit=1)

    def process_one_batch_of_new_late_and_repeated_readings(self):
        """Returns the times of the rows sent through ON CONFLICT."""
        # The first event: two readings already stored (08:02, and 08:04, the
        # latest of the history), two new ones.
        first = self.receive((2, 100.025), (4, 100.04), (10, 100.1), (11, 100.11))
        # The second: 08:11 again with another value, one new, one late but unknown.
        second = self.receive((11, 100.115), (12, 100.12), (-60, 99.4))
        Processor = self.registry["construction.telematics.processor"]
        insert_on_conflict = Processor._insert_readings_on_conflict
        sent = []

        def spy(processor, rows):
            sent.extend(row[3] for row in rows)
            return insert_on_conflict(processor, rows)

        with patch.object(Processor, "_insert_readings_on_conflict", spy):
            self.assertEqual(self.Event._process_batch(), 2)
        history = self.equipment.telematics_reading_ids.sorted("at")
        self.assertEqual(
            history.mapped("at"), [self.at(m) for m in (-60, 0, 1, 2, 3, 4, 10, 11, 12)]
        )
        repeated = history.filtered(lambda reading: reading.at == self.at(11))
        self.assertEqual((repeated.engine_hours, repeated.event_id), (100.11, first))
        self.assertEqual(first.result, "2 readings stored, 2 already known")
        self.assertEqual(second.result, "2 readings stored, 1 already known")
        self.assertEqual(self.equipment.engine_hours, 100.12)
        return sorted(sent)

    def test_new_late_and_repeated_readings_in_one_batch(self):
        sent = self.process_one_batch_of_new_late_and_repeated_readings()
        # Rows the history holds are not sent at all; of the others, only a late
        # one pays for ON CONFLICT.
        self.assertEqual(sent, [self.at(-60)])

    def receive_positions(self, *readings):
        self.Event._receive_readings(
            self.source,
            [
                {"device_id": "DEV-1", "at": self.at(m), "_index": 0} | values
                for m, values in readings
            ],
            [],
        )
        return self.Event.search([("source_id", "=", self.source.id)], limit=1)

    # A new reading at 08:19, then 08:20 again with other values and a counter
    # the first 08:20 lacks (another stamp set: not the same event sent again).
    earlier_hours_and_08_20_again = (
        (19, {"engine_hours": 100.05}),
        (20, {"lat": 47.9, "lon": 8.9, "fuel_level_pct": 20.0, "engine_hours": 100.06}),
    )

    def assert_machine_shows_its_latest_history_row(self, expected):
        latest = self.equipment.telematics_reading_ids.sorted("at")[-1]
        machine = self.equipment
        self.assertEqual(
            (latest.lat, latest.lon, latest.fuel_level_pct),
            (machine.telematics_latitude, machine.telematics_longitude, machine.fuel_level_pct),
        )
        self.assertEqual((latest.lat, latest.lon, latest.fuel_level_pct), expected)
        self.assertEqual(machine.telematics_last_seen_at, latest.at)

    def test_a_reading_sent_again_in_the_same_batch_only_adds_what_it_lacked(self):
        # Two events of one batch hold 08:20, with other values in the second and
        # the engine hours the first lacks.
        first = self.receive_positions((20, {"lat": 47.1, "lon": 8.1, "fuel_level_pct": 50.0}))
        again = self.receive_positions(*self.earlier_hours_and_08_20_again)
        self.assertEqual(self.Event._process_batch(), 2)
        self.assert_machine_shows_its_latest_history_row((47.1, 8.1, 50.0))
        kept = self.equipment.telematics_reading_ids.filtered(lambda r: r.at == self.at(20))
        self.assertEqual((kept.engine_hours, kept.event_id), (100.06, first))
        self.assertEqual(self.equipment.engine_hours, 100.06)
        self.assertEqual(again.result, "1 readings stored, 1 added to readings already known")

    def test_a_suspect_reading_sent_again_in_the_same_batch_stays_the_one_kept(self):
        # 08:20 with 50 engine hours more than at 08:04: stored, suspect, not applied.
        self.receive_positions(
            (20, {"lat": 47.1, "lon": 8.1, "fuel_level_pct": 50.0, "engine_hours": 150.0})
        )
        self.receive_positions(*self.earlier_hours_and_08_20_again)
        again = self.Event.search([("source_id", "=", self.source.id)], limit=1)
        suspect = again.search([("source_id", "=", self.source.id), ("id", "<", again.id)])[0]
        self.assertEqual(self.Event._process_batch(), 2)
        self.assertEqual(suspect.result, "1 readings stored, 1 suspect")
        self.assertEqual(again.result, "1 readings stored, 1 already known")
        kept = self.equipment.telematics_reading_ids.filtered(lambda r: r.at == self.at(20))
        self.assertEqual((kept.lat, kept.engine_hours, kept.suspect), (47.1, 150.0, True))
        # Neither 08:20 moved the machine: the one kept is suspect, the other a repeat.
        self.assertEqual(self.equipment.telematics_latitude, 0.0)
        self.assertEqual(self.equipment.engine_hours, 100.05)

    def test_a_reading_the_history_holds_only_gains_what_it_lacked(self):
        self.receive_positions((20, {"lat": 47.1, "lon": 8.1, "fuel_level_pct": 50.0}))
        self.Event._process_batch()
        again = self.receive_positions(*self.earlier_hours_and_08_20_again)
        self.Event._process_batch()
        self.assertEqual(again.result, "1 readings stored, 1 added to readings already known")
        self.assert_machine_shows_its_latest_history_row((47.1, 8.1, 50.0))
        kept = self.equipment.telematics_reading_ids.filtered(lambda r: r.at == self.at(20))
        self.assertEqual(kept.engine_hours, 100.06)
        self.assertEqual(self.equipment.engine_hours, 100.06)
        self.assertFalse(self.equipment.telematics_reading_ids.filtered("suspect"))
        # Later still: the DEF level it lacks comes in, the engine hours it has do not.
        third = self.receive_positions((20, {"engine_hours": 100.07, "def_level_pct": 80.0}))
        self.Event._process_batch()
        self.assertEqual(third.result, "0 readings stored, 1 added to readings already known")
        self.assertEqual((kept.engine_hours, kept.def_level_pct), (100.06, 80.0))
        fourth = self.receive_positions((20, {"engine_hours": 100.08}))
        self.Event._process_batch()
        self.assertEqual(fourth.result, "0 readings stored, 1 already known")
        self.assertEqual(self.equipment.engine_hours, 100.06)

    def test_a_snapshot_that_completes_an_earlier_one_is_received_and_stored(self):
        # ISO 15143-3 snapshots date each element on its own: a later poll brings the
        # operating hours of a moment whose position came in an earlier one.
        first = {"lat": 47.1, "lon": 8.1, "fuel_level_pct": 50.0}
        answer = self.Event._receive_readings(
            self.source, [{"device_id": "DEV-1", "at": self.at(30), "_index": 0} | first], []
        )
        self.assertEqual((answer["accepted"], answer["duplicates"]), (1, 0))
        process_all(self.Event)
        later = [
            {"device_id": "DEV-1", "at": self.at(30), "_index": 0} | first,
            {"device_id": "DEV-1", "at": self.at(30), "_index": 1, "engine_hours": 100.3},
        ]
        answer = self.Event._receive_readings(self.source, later, [])
        self.assertEqual((answer["accepted"], answer["duplicates"]), (2, 0))
        # The very same batch again is a duplicate.
        answer = self.Event._receive_readings(self.source, later, [])
        self.assertEqual((answer["accepted"], answer["duplicates"]), (0, 2))
        process_all(self.Event)
        kept = self.equipment.telematics_reading_ids.filtered(lambda r: r.at == self.at(30))
        self.assertEqual((kept.lat, kept.engine_hours), (47.1, 100.3))
        self.assertEqual(self.equipment.engine_hours, 100.3)
        self.assertEqual(self.equipment.telematics_reading_count, 6)

    def test_late_values_for_a_suspect_or_implausible_row_are_not_added(self):
        self.receive_positions((20, {"lat": 47.1, "lon": 8.1, "engine_hours": 150.0}))
        self.Event._process_batch()  # 50 hours in 16 minutes: stored, suspect
        self.receive_positions((20, {"fuel_level_pct": 40.0}), (21, {"lat": 47.2, "lon": 8.2}))
        self.Event._process_batch()
        suspect = self.equipment.telematics_reading_ids.filtered(lambda r: r.at == self.at(20))
        self.assertEqual((suspect.fuel_level_pct, suspect.suspect), (0.0, True))
        # Implausible against the machine: the 08:22 row gains no engine hours.
        self.receive_positions((22, {"lat": 47.3, "lon": 8.3}))
        self.Event._process_batch()
        late = self.receive_positions((22, {"engine_hours": 180.0}))
        self.Event._process_batch()
        self.assertEqual(late.result, "0 readings stored, 1 already known")
        self.assertEqual(self.equipment.engine_hours, 100.04)
        # With a plausible fuel level beside it, the fuel level alone comes in.
        later = self.receive_positions((22, {"engine_hours": 181.0, "fuel_level_pct": 40.0}))
        self.Event._process_batch()
        self.assertEqual(later.result, "0 readings stored, 1 added to readings already known")
        row = self.equipment.telematics_reading_ids.filtered(lambda r: r.at == self.at(22))
        self.assertEqual((row.fuel_level_pct, row.engine_hours), (40.0, 0.0))
        self.assertEqual(
            (self.equipment.fuel_level_pct, self.equipment.engine_hours), (40.0, 100.04)
        )

    def test_a_history_row_the_batch_did_not_expect_is_still_stored_once(self):
        # As if the batch had missed the latest rows of the history: every reading
        # is taken for new, the straight COPY meets 08:02 and the whole batch
        # goes through ON CONFLICT.
        Processor = self.registry["construction.telematics.processor"]
        with patch.object(Processor, "_latest_reading_at", lambda _self, _machines: {}):
            sent = self.process_one_batch_of_new_late_and_repeated_readings()
        self.assertEqual(sent, [self.at(m) for m in (-60, 2, 4, 10, 11, 12)])


class TestReadingsHistoryConcurrency(TransactionCase):
    """A machine deleted while processing stores its history leaves no reading behind."""

    def setUp(self):
        super().setUp()
        with committed_env(self.registry) as env:
            source, _key, equipment = make_fleet(env, suffix=f" history {id(self)}")
            Event = env["construction.telematics.event"]
            # The machine is at 200 h at 10:00; the contested batch is late readings,
            # which change nothing the machine shows.
            Event._receive_readings(source, [hours_reading(datetime(2026, 11, 20, 10), 200)], [])
            process_all(Event)
            late = datetime(2026, 11, 20, 8)
            Event._receive_readings(
                source,
                [hours_reading(late + timedelta(minutes=m), 190 + m / 60) for m in range(3)],
                [],
            )
            self.source_id, self.equipment_id = source.id, equipment.id
        self.addCleanup(self._drop)

    def _drop(self):
        with committed_env(self.registry) as env:
            machines = env["maintenance.equipment"].browse(self.equipment_id).exists().ids
            # What a deletion left behind would not be found through the machine.
            env.cr.execute(
                "DELETE FROM construction_telematics_reading WHERE equipment_id = %s",
                [self.equipment_id],
            )
        drop_committed_fleet(self.registry, self.source_id, machines)

    def test_a_deletion_waiting_on_a_batch_is_retried_and_takes_the_batch_history(self):
        processed, snapshot_taken, release = (threading.Event() for _ in range(3))
        deleted_errors = []

        def delete():
            processed.wait(30)
            try:
                with committed_env(self.registry) as env:
                    # Its snapshot: before the batch commits, whenever it reaches the lock.
                    env.cr.execute("SELECT 1")
                    snapshot_taken.set()
                    env["maintenance.equipment"].browse(self.equipment_id).unlink()
            except Exception as exc:
                deleted_errors.append(exc)
            snapshot_taken.set()
            release.set()

        deleter = threading.Thread(target=delete)
        deleter.start()
        with mute_logger("odoo.sql_db"):
            with committed_env(self.registry) as env:
                process_all(env["construction.telematics.event"])
                self.assertEqual(history_of(env.cr, "equipment_id", self.equipment_id), 4)
                processed.set()
                self.assertTrue(snapshot_taken.wait(30))
                # The deletion now waits on this batch's locks.
                self.assertFalse(release.wait(1.0))
            deleter.join(30)
        # It could not serialize and deleted nothing: Odoo retries such a request,
        # which then sees the batch.
        self.assertEqual(len(deleted_errors), 1, deleted_errors)
        self.assertIsInstance(deleted_errors[0], pg_errors.SerializationFailure)
        with committed_env(self.registry) as env:
            self.assertEqual(history_of(env.cr, "equipment_id", self.equipment_id), 4)
            env["maintenance.equipment"].browse(self.equipment_id).unlink()
            self.assertEqual(history_of(env.cr, "equipment_id", self.equipment_id), 0)

    def test_a_row_committed_under_a_batch_without_the_machine_postpones_the_batch(self):
        """A history row that another writer (a script, not processing) commits after
        the batch's snapshot, at the time of a new reading: the straight COPY meets
        it, ON CONFLICT cannot see it and fails to serialize, and the batch waits
        for a fresh snapshot instead of storing the reading twice or losing it."""
        with committed_env(self.registry) as env:
            Event = env["construction.telematics.event"]
            Event._receive_readings(
                env["construction.telematics.source"].browse(self.source_id),
                [hours_reading(datetime(2026, 11, 20, 11), 201)],
                [],
            )
            new = Event.search([("source_id", "=", self.source_id)], limit=1)
        with mute_logger("odoo.sql_db"), committed_env(self.registry) as batch_env:
            Event = batch_env["construction.telematics.event"]
            batch_env.cr.execute("SELECT 1")  # the batch's snapshot
            with committed_env(self.registry) as script_env:
                script_env.cr.execute(
                    """INSERT INTO construction_telematics_reading
                           (equipment_id, event_id, device_id, at, engine_hours, suspect)
                       VALUES (%s, %s, 'DEV-1', '2026-11-20 11:00:00', 201, false)""",
                    [self.equipment_id, new.id],
                )
            Event._process_batch()
            self.assertEqual(Event.browse(new.id).state, "pending")
        with committed_env(self.registry) as env:
            process_all(env["construction.telematics.event"])
            event = env["construction.telematics.event"].browse(new.id)
            self.assertEqual(event.state, "processed")
            self.assertEqual(event.result, "0 readings stored, 1 already known")
            env.cr.execute(
                """SELECT count(*) FROM construction_telematics_reading
                   WHERE equipment_id = %s AND at = '2026-11-20 11:00:00'""",
                [self.equipment_id],
            )
            self.assertEqual(env.cr.fetchone()[0], 1)
            # The late readings queued beside it went in once the batch ran again.
            self.assertEqual(history_of(env.cr, "equipment_id", self.equipment_id), 5)

    def test_a_batch_waiting_on_a_deletion_stores_nothing_and_waits_for_a_mapping(self):
        deleted, batch_started, errors = threading.Event(), threading.Event(), []

        def delete():
            try:
                with committed_env(self.registry) as env:
                    env["maintenance.equipment"].browse(self.equipment_id).unlink()
                    deleted.set()
                    batch_started.wait(30)
                    time.sleep(1.0)  # the batch now waits on the deleted machine's lock
            except Exception as exc:
                errors.append(exc)
                deleted.set()

        deleter = threading.Thread(target=delete)
        deleter.start()
        self.assertTrue(deleted.wait(30))
        with mute_logger("odoo.sql_db"), committed_env(self.registry) as env:
            # This transaction's snapshot still holds the machine and its mapping.
            env.cr.execute("SELECT 1")
            batch_started.set()
            Event = env["construction.telematics.event"]
            Event._process_batch()
            late = Event.search([("source_id", "=", self.source_id), ("state", "=", "pending")])
            self.assertEqual(len(late), 1, "the batch failed to serialize and left it queued")
        deleter.join(30)
        self.assertEqual(errors, [])
        with committed_env(self.registry) as env:
            self.assertEqual(history_of(env.cr, "equipment_id", self.equipment_id), 0)
            Event = env["construction.telematics.event"]
            process_all(Event)
            self.assertEqual(
                Event.search([("source_id", "=", self.source_id)]).mapped("state"),
                ["unmapped", "processed"],
            )
            self.assertEqual(history_of(env.cr, "equipment_id", self.equipment_id), 0)
