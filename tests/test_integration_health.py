"""Every failure reaches a person: health rows, one activity per problem, closed on recovery."""

import socket
from datetime import timedelta

from odoo import fields
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from .common import ConstructionAssetSyncCase, OdysseeEmulatorMixin
from .telematics_common import alert, make_fleet, process_all

ADMIN_GROUP = "construction_asset_sync.group_integration_admin"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HealthCase(ConstructionAssetSyncCase):
    def setUp(self):
        super().setUp()
        self.Health = self.env["construction.integration.health"]
        self.Event = self.env["construction.telematics.event"]
        self.source, _key, self.machine = make_fleet(self.env, suffix=" health")

    def row_of(self, record):
        field = "source_id" if record._name == "construction.telematics.source" else "stream_id"
        return self.Health.search([(field, "=", record.id)])

    def open_activities(self, row):
        return self.env["mail.activity"].search(
            [("res_model", "=", row._name), ("res_id", "=", row.id)]
        )

    def open_problems(self, row):
        return row.problem_ids.filtered(lambda problem: not problem.resolved_at)

    def age_events(self, minutes):
        self.env.flush_all()
        self.env.cr.execute(
            """UPDATE construction_telematics_event
               SET received_at = received_at - %s * interval '1 minute'
               WHERE source_id = %s""",
            [minutes, self.source.id],
        )
        self.Event.invalidate_model()

    def chatter(self, record):
        return " | ".join(str(body) for body in record.message_ids.mapped("body"))


@tagged("post_install", "-at_install")
class TestTelematicsHealth(HealthCase):
    def test_stalled_processing_raises_one_activity_then_closes_it_on_recovery(self):
        self.Event._receive_alerts(self.source, [alert(event_id="stall-1"), alert(event_id="s-2")])
        self.age_events(25)
        self.Health._check_all()
        row = self.row_of(self.source)
        self.assertEqual(row.health, "error")
        self.assertEqual(row.backlog, 2)
        self.assertGreaterEqual(row.lag_minutes, 25)
        self.assertIn("25 min", row.lag_text)
        self.assertIn("Processing is stalled", row.summary)
        activity = self.open_activities(row)
        self.assertEqual(len(activity), 1)
        self.assertTrue(activity.user_id.has_group(ADMIN_GROUP))
        self.assertIn(self.company, activity.user_id.company_ids)
        self.assertIn("stalled", activity.summary)
        self.assertIn("Processing is stalled", self.chatter(self.source))

        # Checked again while nothing changed: still one activity, one problem.
        self.Health._check_all()
        self.assertEqual(len(self.open_activities(row)), 1)
        self.assertEqual(len(self.open_problems(row)), 1)

        process_all(self.Event)
        self.Health._check_all()
        self.assertEqual(row.health, "ok")
        self.assertFalse(row.summary)
        self.assertEqual(row.backlog, 0)
        self.assertTrue(row.last_success_at)
        self.assertFalse(self.open_activities(row))
        self.assertFalse(self.open_problems(row))
        done = row.problem_ids.activity_id.with_context(active_test=False)
        self.assertFalse(done.active, "the activity is marked done, not left open")
        self.assertIn("problem resolved", self.chatter(self.source))

    def test_switching_processing_off_is_a_problem_at_the_next_check(self):
        cron = self.env.ref("construction_asset_sync.ir_cron_process_telematics_events")
        cron.active = False
        self.Event._receive_alerts(self.source, [alert(event_id="off-1")])
        self.Health._cron_check()
        row = self.row_of(self.source)
        self.assertEqual(row.health, "error")
        self.assertIn("switched off", row.summary)
        self.assertEqual(len(self.open_activities(row)), 1)
        cron.active = True
        process_all(self.Event)
        self.Health._cron_check()
        self.assertEqual(row.health, "ok")
        self.assertFalse(self.open_activities(row))

    def test_fresh_events_waiting_are_no_problem(self):
        self.Event._receive_alerts(self.source, [alert(event_id="fresh")])
        self.Health._check_all()
        row = self.row_of(self.source)
        self.assertEqual((row.health, row.backlog), ("ok", 1))
        self.assertFalse(self.open_activities(row))

    def test_dead_and_unmapped_events_are_two_problems_each_with_its_activity(self):
        self.Event._receive_alerts(self.source, [alert(event_id="lost-1", device_id="NEW-9")])
        process_all(self.Event)
        self.Event._receive_alerts(self.source, [alert(event_id="dies")])
        dead = self.Event.search([("dedupe_key", "=", "alert:dies")])
        dead._set_state([(dead.id, "dead", {"attempts": 5, "last_error": "boom"})])
        self.Health._check_all()
        row = self.row_of(self.source)
        self.assertEqual((row.dead_count, row.attention_count), (1, 1))
        self.assertEqual(set(self.open_problems(row).mapped("code")), {"dead", "unmapped"})
        self.assertEqual(len(self.open_activities(row)), 2)

        # Mapping the device processes its event: that problem closes, the other stays.
        self.env["construction.external.id"].create(
            {
                "system_id": self.source.external_system_id.id,
                "external_id": "NEW-9",
                "equipment_id": self.equipment.id,
            }
        )
        process_all(self.Event)
        self.Health._check_all()
        self.assertEqual(self.open_problems(row).mapped("code"), ["dead"])
        self.assertEqual(len(self.open_activities(row)), 1)
        self.assertEqual(row.health, "error")

    def test_the_activity_goes_to_an_administrator_of_the_source_company(self):
        other_source = self.env["construction.telematics.source"].create(
            {"name": "Other vendor", "company_id": self.other_company.id}
        )
        self.Event._receive_alerts(other_source, [alert(event_id="x-1", device_id="NOPE")])
        process_all(self.Event)
        self.Health._check_all()
        activity = self.open_activities(self.row_of(other_source))
        self.assertEqual(len(activity), 1)
        self.assertIn(self.other_company, activity.user_id.company_ids)
        self.assertTrue(activity.user_id.has_group(ADMIN_GROUP))
        # The other company's rows are not visible to this company's administrator.
        rows = self.Health.with_user(self.integration_admin).search([])
        self.assertNotIn(self.row_of(other_source), rows)
        self.assertIn(self.row_of(self.source), rows)

    def test_an_archived_source_leaves_the_screen_and_its_problems_close(self):
        self.Event._receive_alerts(self.source, [alert(event_id="arch", device_id="NOPE")])
        process_all(self.Event)
        self.Health._check_all()
        row = self.row_of(self.source)
        self.assertTrue(self.open_activities(row))
        self.source.active = False
        self.Health._check_all()
        self.assertFalse(row.active)
        self.assertFalse(self.open_activities(row))

    def test_an_mqtt_source_whose_consumers_are_gone_is_a_problem_until_one_reports(self):
        self.source.mqtt_enabled = True
        Consumer = self.env["construction.telematics.mqtt.consumer"]
        consumer = Consumer._report(
            self.source.id, "site-gateway-1", "cas-test-1", {"connected": True, "waiting": 0}
        )
        self.Health._check_all()
        row = self.row_of(self.source)
        self.assertFalse(self.open_activities(row), "a connected consumer is no problem")
        # The consumer process died: it stopped reporting two minutes ago.
        long_ago = fields.Datetime.now() - timedelta(minutes=2)
        consumer.write({"heartbeat_at": long_ago, "last_connected_at": long_ago})
        self.env.cr.execute(
            "UPDATE construction_telematics_mqtt_consumer SET create_date = %s WHERE id = %s",
            [long_ago, consumer.id],
        )
        consumer.invalidate_recordset()
        self.Health._check_all()
        self.assertEqual(row.health, "error")
        self.assertIn("No MQTT consumer is connected", row.summary)
        activity = self.open_activities(row)
        self.assertEqual(len(activity), 1)
        self.assertTrue(activity.user_id.has_group(ADMIN_GROUP))
        Consumer._report(
            self.source.id, "site-gateway-1", "cas-test-1", {"connected": True, "waiting": 3}
        )
        self.Health._check_all()
        self.assertNotEqual(row.health, "error")
        self.assertFalse(self.open_activities(row), "closed by itself on recovery")


@tagged("post_install", "-at_install")
class TestOdysseeHealth(OdysseeEmulatorMixin, HealthCase):
    def setUp(self):
        super().setUp()
        self.backend = self._new_backend(url=f"http://127.0.0.1:{closed_port()}/api", max_retries=0)

    def test_a_broken_url_reaches_the_administrators_within_one_sync_and_recovers(self):
        with mute_logger("odoo.addons.construction_asset_sync.models.construction_odyssee_stream"):
            self.backend._sync()
        approvals = self.backend._stream("approvals")
        self.assertEqual(approvals.state, "error")
        # No health cron in between: the end of the run raised it.
        row = self.row_of(approvals)
        self.assertEqual(row.health, "error")
        self.assertIn("unreachable", row.summary)
        activity = self.open_activities(row)
        self.assertEqual(len(activity), 1)
        self.assertTrue(activity.user_id.has_group(ADMIN_GROUP))
        self.assertIn("Integration problem", self.chatter(self.backend))
        # Another failing run: still one activity per problem.
        with mute_logger("odoo.addons.construction_asset_sync.models.construction_odyssee_stream"):
            self.backend._sync()
        self.assertEqual(len(self.open_activities(row)), 1)

        self.backend.url = self.url
        self.backend._sync()
        self.assertEqual(approvals.state, "ok")
        self.assertEqual(row.health, "ok")
        self.assertFalse(self.open_activities(row))
        self.assertTrue(row.last_success_at)
        self.assertIn("problem resolved", self.chatter(self.backend))

    def test_every_stream_has_a_row_with_its_figures(self):
        self.backend.url = self.url
        self.backend._sync()
        self.Health._check_all()
        rows = self.Health.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(rows), len(self.backend.stream_ids))
        self.assertEqual(len(rows), 4)
        self.assertEqual(set(rows.mapped("health")), {"ok"})
        jobs = self.row_of(self.backend._stream("jobs"))
        self.assertIn("Job statuses in", jobs.name)
        pdfs = self.row_of(self.backend._stream("pdfs"))
        self.assertIn("Approval PDFs in", pdfs.name)
        self.assertEqual(pdfs.waiting_pdf_count, 0)

    def test_a_request_that_fails_to_send_is_a_problem_of_the_push_stream(self):
        request = self.env["maintenance.request"].create({"name": "Pump"})
        request._set_odyssee_push_state("pending")
        request._set_odyssee_push_state("error", error="Odyssee said no")
        self.Health._check_all()
        row = self.row_of(self.backend._stream("push"))
        self.assertEqual(row.attention_count, 1)
        self.assertEqual(self.open_problems(row).mapped("code"), ["push_failed"])


@tagged("post_install", "-at_install")
class TestTestConnection(OdysseeEmulatorMixin, TransactionCase):
    """*Test connection* names what went wrong, in words a person acts on."""

    def setUp(self):
        super().setUp()
        self.backend = self._new_backend()

    def answer(self):
        params = self.backend.action_test_connection()["params"]
        return params["type"], params["message"]

    def test_connected(self):
        self.assertEqual(self.answer(), ("success", "Connected to Odyssee."))

    def test_unreachable(self):
        self.backend.url = f"http://127.0.0.1:{closed_port()}/api"
        kind, message = self.answer()
        self.assertEqual(kind, "danger")
        self.assertIn("could not be reached", message)
        self.assertNotIn("refused the", message)

    def test_timeout(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        self.addCleanup(listener.close)
        self.backend.write(
            {"url": f"http://127.0.0.1:{listener.getsockname()[1]}/api", "timeout": 1}
        )
        kind, message = self.answer()
        self.assertIn("did not answer within 1 s (timeout)", message)

    def test_tls(self):
        self.backend.url = self.url.replace("http://", "https://")
        kind, message = self.answer()
        self.assertIn("(TLS)", message)

    def test_refused_credentials(self):
        self.backend.password = "wrong"
        kind, message = self.answer()
        self.assertIn("refused the credentials (HTTP 401)", message)
        self.assertNotIn("wrong", message)

    def test_not_an_odyssee_api(self):
        self.backend.url = self.url.rsplit("/api", 1)[0] + "/nothing-here"
        kind, message = self.answer()
        self.assertEqual(kind, "danger")
        self.assertIn("not the Odyssee API", message)


@tagged("post_install", "-at_install")
class TestHealthCronData(TransactionCase):
    def test_the_check_runs_every_few_minutes(self):
        cron = self.env.ref("construction_asset_sync.ir_cron_integration_health")
        self.assertTrue(cron.active)
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        self.assertLessEqual(cron.nextcall, fields.Datetime.now() + timedelta(minutes=5))
