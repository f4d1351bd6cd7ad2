"""One browser tour per persona, in headless Chromium; each saves a screenshot of its screen.

The tours (``static/tests/tours/``) walk each persona's main flow and fail when
a screen raises an error or a step's element never appears. Chromium missing,
or a browser that cannot be driven, fails these tests instead of skipping
them: a skipped tour is not a passing one.

The last screen of each tour is saved as ``<persona>.png`` in
``$CAS_SCREENSHOTS_DIR`` (``docs/screenshots`` to refresh the README's
images), else in Odoo's screenshots folder.
"""

import base64
import os
import pathlib
import unittest
import uuid
from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import ChromeBrowser, _find_executable
from odoo.tools import config

from .telematics_common import alert, process_all
from .test_odyssee_invoicing import build_job_fixture, import_job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Where each persona starts: their main screen. A /web#action= address, which
# every Odoo 18 web client resolves (whatever its own URL prefix).
START = {
    "dispatcher": "maintenance.hr_equipment_action",
    "maintenance_manager": "construction_asset_sync.maintenance_request_action_to_review",
    "integration_admin": "construction_asset_sync.construction_integration_health_action",
    "accountant": "construction_asset_sync.construction_odyssee_usage_line_to_invoice_action",
}


def screenshots_dir():
    folder = os.environ.get("CAS_SCREENSHOTS_DIR") or os.path.join(
        config["screenshots"], "construction_asset_sync"
    )
    path = pathlib.Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


@tagged("post_install", "-at_install")
class TestPersonaTours(HttpCase):
    browser_size = "1440x900"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        now = fields.Datetime.now()
        cls.fixture = build_job_fixture(env, suffix=" tour")
        machine = cls.fixture["machine"]  # "Excavator tour", on "Site A tour"
        machine.write(
            {
                "engine_hours": 1234.5,
                "fuel_level_pct": 42.0,
                "telematics_last_seen_at": now - timedelta(hours=30),
            }
        )
        cls.loader = env["maintenance.equipment"].create(
            {"name": "Loader tour", "telematics_last_seen_at": now - timedelta(minutes=65)}
        )
        Request = env["maintenance.request"]
        for name, severity, code, priority in (
            ("Tour DEF sensor fault", "critical", "SPN3031-FMI9", "3"),
            ("Tour coolant warning", "warning", "SPN110-FMI15", "2"),
        ):
            Request.create(
                {
                    "name": name,
                    "equipment_id": machine.id,
                    "request_origin": "telematics_alert",
                    "alert_severity": severity,
                    "alert_code": code,
                    "alert_occurred_at": "2026-11-27 10:00:00",
                    "priority": priority,
                    "alert_sensor_snapshot": {
                        "readings": {"fuel_level_pct": 42, "engine_hours": 1234.5},
                        "location": {"lat": 50.85, "lon": 4.35},
                        "device_id": "VOL-TOUR-1",
                    },
                }
            )
        # Accountant: a job's imported work, and a line whose job has no machine.
        cls.fixture["backend"].default_project_id = cls.fixture["site"]
        _request, _approval, lines = import_job(
            cls.fixture, "Tour hydraulic leak", str(uuid.uuid4())
        )
        orphan_job = Request.create(
            {"name": "Tour job without machine", "request_origin": "odyssee"}
        )
        lines[0].copy({"request_id": orphan_job.id, "name": "Orphan filter"})
        # Integration administrator: a source with an unmapped device, one that stalls.
        Source, Event = env["construction.telematics.source"], env["construction.telematics.event"]
        gateway = Source.create({"name": "Tour gateway"})
        Event._receive_alerts(
            gateway, [alert(event_id="tour-1", device_id="TOUR-NEW", code="SPN-TOUR")]
        )
        process_all(Event)
        stalled = Source.create({"name": "Tour stalled gateway"})
        Event._receive_alerts(stalled, [alert(event_id="tour-2", device_id="TOUR-OLD")])
        env.flush_all()
        env.cr.execute(
            """UPDATE construction_telematics_event
               SET received_at = received_at - interval '40 minutes' WHERE source_id = %s""",
            [stalled.id],
        )
        Event.invalidate_model()
        env["construction.integration.health"]._check_all()

        def user(login, groups):
            return new_test_user(env, login=login, groups=groups, tz="UTC")

        cls.logins = {
            "dispatcher": user(
                "tour_dispatcher", "base.group_user,construction_asset_sync.group_dispatcher"
            ).login,
            "maintenance_manager": user(
                "tour_manager", "base.group_user,maintenance.group_equipment_manager"
            ).login,
            "integration_admin": user(
                "tour_admin", "base.group_user,construction_asset_sync.group_integration_admin"
            ).login,
            "accountant": user(
                "tour_accountant", "base.group_user,account.group_account_invoice"
            ).login,
        }

    def run_tour(self, persona):
        """Run the persona's tour in Chromium and keep its last screen as a PNG.

        A step may also log ``cas-screenshot:<name>`` to keep the screen of that
        moment as ``<name>.png`` (it waits a moment for the capture).
        """
        shots = {}
        original_stop = ChromeBrowser.stop
        original_console = ChromeBrowser._handle_console

        def capture(browser, name):
            future = browser._websocket_send(
                "Page.captureScreenshot", params={"format": "png"}, with_future=True
            )
            future.add_done_callback(
                lambda done: shots.setdefault(name, base64.b64decode(done.result()["data"]))
            )
            return future

        def console_with_screenshots(browser, type, args=None, **kw):
            text = str((args or [{}])[0].get("value") or "")
            if type == "log" and text.startswith("cas-screenshot:"):
                capture(browser, text.split(":", 1)[1])
            return original_console(browser, type, args, **kw)

        def stop_after_screenshot(browser):
            if getattr(browser, "ws", None) is not None and persona not in shots:
                capture(browser, persona).result(timeout=30)
            return original_stop(browser)

        self.patch(ChromeBrowser, "stop", stop_after_screenshot)
        self.patch(ChromeBrowser, "_handle_console", console_with_screenshots)
        try:
            self.start_tour(
                f"/web#action={START[persona]}",
                f"construction_asset_sync_{persona}",
                login=self.logins[persona],
                timeout=240,
            )
        except unittest.SkipTest as skipped:
            self.fail(f"the {persona} tour did not run: {skipped}")
        self.assertIn(persona, shots, "no screenshot of the last screen")
        for name, png in shots.items():
            self.assertTrue(png.startswith(PNG_SIGNATURE), name)
            self.assertGreater(len(png), 10_000, f"the screenshot {name} is blank")
            (screenshots_dir() / f"{name}.png").write_bytes(png)
        return shots

    def test_chromium_is_found(self):
        try:
            executable = _find_executable()
        except unittest.SkipTest as missing:
            self.fail(f"Odoo finds no Chromium: {missing} (apt-get install chromium)")
        self.assertTrue(os.access(executable, os.X_OK), executable)

    def test_dispatcher(self):
        self.run_tour("dispatcher")

    def test_maintenance_manager(self):
        self.run_tour("maintenance_manager")
        request = self.env["maintenance.request"].search([("name", "=", "Tour DEF sensor fault")])
        self.assertTrue(request.reviewed_at)

    def test_integration_admin(self):
        self.run_tour("integration_admin")
        event = self.env["construction.telematics.event"].search(
            [("dedupe_key", "=", "alert:tour-1")]
        )
        self.assertEqual(event.state, "pending")
        self.assertEqual(
            self.env["construction.external.id"]
            .search([("external_id", "=", "TOUR-NEW")])
            .equipment_id,
            self.loader,
        )

    def test_accountant(self):
        shots = self.run_tour("accountant")
        self.assertIn("accountant_invoice_preview", shots)
        invoice = self.env["account.move"].search(
            [("partner_id", "=", self.fixture["customer"].id), ("move_type", "=", "out_invoice")]
        )
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "draft")
        self.assertAlmostEqual(invoice.amount_untaxed, 369.75)
