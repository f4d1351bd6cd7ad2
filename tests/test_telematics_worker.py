"""The processing worker end to end: a real ``odoo-bin telematics_worker`` process.

Events received in committed transactions wake it through PostgreSQL's
LISTEN/NOTIFY; while it is connected, receipt leaves the scheduled action
alone. The data the process sees is committed (``committed_env``) and removed
afterwards.
"""

import json
import os
import uuid

import psycopg2
from odoo import sql_db
from odoo.addons.construction_asset_sync.cli.telematics_worker import (
    DEFAULT_NICENESS,
    PAUSE_BEFORE_COMMIT_ENV,
)
from odoo.addons.construction_asset_sync.models import construction_telematics_event
from odoo.addons.construction_asset_sync.models.construction_telematics_event import (
    WORKER_APPLICATION_NAME,
)
from odoo.tests import TransactionCase, tagged

from .common import OdooCommandMixin, committed_env
from .telematics_common import devices_by_shard, drop_committed_fleet, make_fleet

CRON_XMLID = "construction_asset_sync.ir_cron_process_telematics_events"


@tagged("post_install", "-at_install")
class TestTelematicsWorker(OdooCommandMixin, TransactionCase):
    def setUp(self):
        super().setUp()
        self.tag = uuid.uuid4().hex[:8]
        with committed_env(self.registry) as env:
            source, _key, machine = make_fleet(env, f" worker {self.tag}")
            self.source_id, self.machine_id = source.id, machine.id
            self.machine_ids = [machine.id]
            env.cr.execute("SELECT coalesce(max(id), 0) FROM ir_cron_trigger")
            self.last_trigger_id = env.cr.fetchone()[0]
        # The machines a test adds to the fleet go with it.
        self.addCleanup(
            lambda: drop_committed_fleet(self.registry, self.source_id, self.machine_ids)
        )
        self.addCleanup(construction_telematics_event._WORKER_SEEN.clear)
        construction_telematics_event._WORKER_SEEN.clear()

    # ------------------------------------------------------------------
    def _start_worker(self, name, pause_before_commit=None, shard=None):
        environ = dict(os.environ)
        environ.pop(PAUSE_BEFORE_COMMIT_ENV, None)
        if pause_before_commit:
            environ[PAUSE_BEFORE_COMMIT_ENV] = str(pause_before_commit)
        name = f"{name}-{self.tag}"
        arguments = ["--name", name, "--poll", "600"]
        if shard:
            arguments += ["--shard", shard]
        process = self._odoo_command(name, "telematics_worker", *arguments, environ=environ)
        connected_as = f"{shard.replace('/', 'of')}-{name}" if shard else name
        self._wait(
            lambda: self._worker_connected(connected_as),
            f"worker {name} did not connect (log: {self.logs})",
            timeout=180,
            process=process,
        )
        return process

    def _worker_connected(self, name):
        """The worker's listening connection exists and has run its LISTEN."""
        with committed_env(self.registry) as env:
            env.cr.execute(
                """SELECT count(*) FROM pg_stat_activity
                    WHERE application_name = %s AND query LIKE 'LISTEN%%'""",
                [f"{WORKER_APPLICATION_NAME}-{name}"],
            )
            return env.cr.fetchone()[0] == 1

    def _receive(self, first_minute, count, device="DEV-1"):
        """Readings received and committed the way the HTTP API does it."""
        readings = [
            {
                "device_id": device,
                "at": f"2026-11-20T09:{minute:02d}:00Z",
                "engine_hours": 500 + minute / 60,
            }
            for minute in range(first_minute, first_minute + count)
        ]
        with committed_env(self.registry) as env:
            source = env["construction.telematics.source"].browse(self.source_id)
            env["construction.telematics.event"]._receive_body(
                source, "readings", json.dumps({"readings": readings}).encode()
            )

    def _state(self):
        with committed_env(self.registry) as env:
            events = env["construction.telematics.event"].search(
                [("source_id", "=", self.source_id)]
            )
            machine = env["maintenance.equipment"].browse(self.machine_id)
            env.cr.execute(
                "SELECT count(*) FROM ir_cron_trigger WHERE id > %s AND cron_id = %s",
                [self.last_trigger_id, env.ref(CRON_XMLID).id],
            )
            cron_triggers = env.cr.fetchone()[0]
            return {
                "events": sorted(events.mapped("state")),
                "readings": len(machine.telematics_reading_ids),
                "engine_hours": machine.engine_hours,
                "cron_triggers": cron_triggers,
            }

    def _in_transaction(self, process):
        """Whether the worker ``process`` has a database transaction open.

        Read from pg_stat_activity (Odoo names its connections odoo-<pid>), so the
        probe itself locks nothing: probing with FOR UPDATE SKIP LOCKED would take
        the events for a moment, and a worker looking then would find none.
        """
        with committed_env(self.registry) as env:
            env.cr.execute(
                """SELECT count(*) FROM pg_stat_activity
                    WHERE application_name = %s AND state = 'idle in transaction'""",
                [f"odoo-{process.pid}"],
            )
            return env.cr.fetchone()[0] > 0

    # ------------------------------------------------------------------
    def test_without_a_worker_receipt_wakes_the_scheduled_action(self):
        self._receive(0, 2)
        state = self._state()
        self.assertEqual(state["events"], ["pending"])
        self.assertEqual(state["cron_triggers"], 1)

    def test_the_worker_processes_on_notification_and_the_scheduled_action_stays_idle(self):
        worker = self._start_worker("main")
        # Below receipt's priority, which must answer first on a busy machine.
        self.assertEqual(
            os.getpriority(os.PRIO_PROCESS, worker.pid),
            max(DEFAULT_NICENESS, os.getpriority(os.PRIO_PROCESS, 0)),
        )
        self._receive(0, 3)
        self._wait(lambda: self._state()["events"] == ["processed"], f"{self._state()}")
        # Its first look at the queue is behind it and its poll is 10 minutes away:
        # only the notification of this receipt can wake it now.
        self._receive(3, 2)
        self._wait(lambda: self._state()["events"] == ["processed"] * 2, f"{self._state()}")
        state = self._state()
        self.assertEqual(state["readings"], 5)
        self.assertAlmostEqual(state["engine_hours"], 500 + 4 / 60, places=6)
        self.assertEqual(state["cron_triggers"], 0, "the scheduled action was woken too")

    def test_a_lost_listening_connection_is_opened_again(self):
        self._start_worker("reconnecting")
        name = f"{WORKER_APPLICATION_NAME}-reconnecting-{self.tag}"
        with committed_env(self.registry) as env:
            env.cr.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE application_name = %s""",
                [name],
            )
        self._wait(
            lambda: self._worker_connected(f"reconnecting-{self.tag}"),
            f"the worker did not listen again (log: {self.logs})",
        )
        self._receive(0, 2)
        self._wait(lambda: self._state()["events"] == ["processed"], f"{self._state()}")

    def test_kill_9_mid_batch_loses_and_doubles_nothing(self):
        worker = self._start_worker("crashing", pause_before_commit=60)
        self._receive(0, 4)
        # The worker has processed the batch and holds it, uncommitted.
        self._wait(lambda: self._in_transaction(worker), "the worker did not take the batch")
        self.assertEqual(self._state()["events"], ["pending"])
        worker.kill()
        self._wait(lambda: not self._in_transaction(worker), "the transaction outlived the worker")
        state = self._state()
        self.assertEqual((state["events"], state["readings"]), (["pending"], 0))
        # A new worker finds the batch queued at its start and processes it once.
        self._start_worker("second")
        self._wait(lambda: self._state()["events"] == ["processed"], f"{self._state()}")
        self.assertEqual(self._state()["readings"], 4)

    def test_the_scheduled_action_leaves_the_queue_to_a_connected_worker(self):
        worker = self._start_worker("holding", pause_before_commit=60)
        self._receive(0, 2)
        self._wait(lambda: self._in_transaction(worker), "the worker did not take the batch")
        self._receive(2, 2)  # free to take: the worker sleeps on the first batch
        with committed_env(self.registry) as env:
            self.assertEqual(env["construction.telematics.event"]._cron_process(), 0)
        self.assertEqual(self._state()["events"], ["pending", "pending"])
        # The worker gone, the action processes again.
        worker.kill()
        self._wait(
            lambda: not self._worker_connected(f"holding-{self.tag}"), "the worker stayed connected"
        )
        construction_telematics_event._WORKER_SEEN.clear()
        with committed_env(self.registry) as env:
            self.assertEqual(env["construction.telematics.event"]._cron_process(), 2)
        self.assertEqual(self._state()["events"], ["processed", "processed"])

    def test_a_connected_worker_that_does_not_process_is_taken_over_once_the_queue_stalls(self):
        # A hung worker: its connection is there (named and listening), nothing more.
        hung = psycopg2.connect(
            **dict(
                sql_db.connection_info_for(self.registry.db_name)[1],
                application_name=f"{WORKER_APPLICATION_NAME}-hung-{self.tag}",
            )
        )
        self.addCleanup(hung.close)
        hung.autocommit = True
        hung.cursor().execute(f'LISTEN "{construction_telematics_event.WORKER_CHANNEL}"')
        self._receive(0, 2)
        with committed_env(self.registry) as env:
            Event = env["construction.telematics.event"]
            self.assertTrue(Event._processing_worker_connected())
            # Within the stall threshold (10 minutes), the queue is left to the worker.
            self.assertEqual(Event._cron_process(), 0)
            env.cr.execute(
                """UPDATE construction_telematics_event
                   SET received_at = received_at - interval '11 minutes'
                   WHERE source_id = %s""",
                [self.source_id],
            )
        with (
            committed_env(self.registry) as env,
            self.assertLogs(
                "odoo.addons.construction_asset_sync.models.construction_telematics_event",
                "WARNING",
            ) as logs,
        ):
            self.assertEqual(env["construction.telematics.event"]._cron_process(), 1)
        self.assertIn("a processing worker is connected but events have waited", logs.output[0])
        self.assertEqual(self._state()["events"], ["processed"])
        self.assertEqual(self._state()["readings"], 2)

    def test_sharded_workers_keep_to_their_devices_and_take_over_a_stopped_ones(self):
        with committed_env(self.registry) as env:
            devices = devices_by_shard(env.cr, 2)
            source = env["construction.telematics.source"].browse(self.source_id)
            machines = {}
            for shard, device in devices.items():
                machine = env["maintenance.equipment"].create({"name": f"Loader {device}"})
                env["construction.external.id"].create(
                    {
                        "system_id": source.external_system_id.id,
                        "external_id": device,
                        "equipment_id": machine.id,
                    }
                )
                machines[shard] = machine.id
        self.machine_ids += machines.values()  # dropped with the test's fleet

        def readings_of(shard):
            with committed_env(self.registry) as env:
                return env["construction.telematics.reading"].search_count(
                    [("equipment_id", "=", machines[shard])]
                )

        def pending():
            return self._state()["events"].count("pending")

        first = self._start_worker("shard-1", pause_before_commit=60, shard="1/2")
        self._start_worker("shard-2", shard="2/2")
        self._receive(0, 2, device=devices[0])
        self._wait(lambda: self._in_transaction(first), "the first worker did not take its batch")
        self._receive(2, 2, device=devices[0])  # the first worker's, though it is busy
        self._receive(0, 3, device=devices[1])
        self._wait(lambda: readings_of(1) == 3, f"the second shard waited: {self._state()}")
        # One more round trip: a batch of the first shard the second worker took
        # after its own would have committed by the time this one's has.
        self._receive(3, 1, device=devices[1])
        self._wait(lambda: readings_of(1) == 4, f"the second shard waited: {self._state()}")
        # The second worker looked at the queue after both receipts of the first
        # shard: it left them to the worker holding that shard.
        self.assertEqual((pending(), readings_of(0)), (2, 0))
        first.kill()
        self._wait(lambda: not self._in_transaction(first), "the transaction outlived the worker")
        self._wait(
            lambda: not self._worker_connected(f"1of2-shard-1-{self.tag}"),
            "the first worker stayed connected",
        )
        # The next notification: the second worker takes the shard no one holds.
        self._receive(4, 1, device=devices[1])
        self._wait(lambda: pending() == 0, f"the stopped worker's shard waited: {self._state()}")
        self.assertEqual((readings_of(0), readings_of(1)), (4, 5))
