"""What each persona reads: silent machines, readable titles and labels, Map device, money."""

from datetime import timedelta

from lxml import etree
from odoo import SUPERUSER_ID, fields
from odoo.tests import tagged

from .common import ConstructionAssetSyncCase
from .telematics_common import alert, make_fleet, process_all
from .test_odyssee_invoicing import build_job_fixture, import_job


@tagged("post_install", "-at_install")
class TestDispatcherScreens(ConstructionAssetSyncCase):
    def seen(self, equipment, hours_ago):
        equipment.sudo().telematics_last_seen_at = fields.Datetime.now() - timedelta(
            hours=hours_ago
        )

    def test_a_machine_that_stopped_reporting_is_silent_and_listed(self):
        Equipment = self.env["maintenance.equipment"].with_user(self.dispatcher)
        quiet = self.equipment
        talking = Equipment.sudo().create({"name": "Loader still talking"})
        never = Equipment.sudo().create({"name": "Trailer without telematics"})
        self.seen(quiet, 30)
        self.seen(talking, 1)
        self.assertTrue(quiet.telematics_silent)
        self.assertFalse(talking.telematics_silent)
        self.assertFalse(never.telematics_silent)
        self.assertIn("Silent, last seen 30 h ago", quiet.telematics_seen_text)
        self.assertEqual(talking.telematics_seen_text, "Seen 1 h ago")
        silent = Equipment.search([("telematics_silent", "=", True)])
        self.assertIn(quiet, silent)
        self.assertNotIn(talking, silent)
        self.assertNotIn(never, silent)
        self.assertIn(talking, Equipment.search([("telematics_silent", "=", False)]))
        # The silence threshold is a setting.
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_silent_hours", "48"
        )
        quiet.invalidate_recordset(["telematics_silent"])
        self.assertFalse(quiet.telematics_silent)
        self.assertNotIn(quiet, Equipment.search([("telematics_silent", "=", True)]))
        action = self.env.ref("construction_asset_sync.maintenance_equipment_action_silent")
        self.assertIn("search_default_silent", action.context)

    def test_card_counts_open_alerts_only(self):
        Request = self.env["maintenance.request"]
        Request.create(
            {"name": "Hot", "equipment_id": self.equipment.id, "request_origin": "telematics_alert"}
        )
        Request.create({"name": "Manual", "equipment_id": self.equipment.id})
        done = Request.create(
            {"name": "Old", "equipment_id": self.equipment.id, "request_origin": "telematics_alert"}
        )
        done.stage_id = self.env["maintenance.stage"].search([("done", "=", True)], limit=1)
        self.assertEqual(self.equipment.open_alert_count, 1)

    def test_equipment_card_shows_hours_fuel_site_alerts_and_last_seen(self):
        arch = self.env["maintenance.equipment"].get_view(view_type="kanban")["arch"]
        card = etree.fromstring(arch).xpath("//t[@t-name='card']")[0]
        shown = set(card.xpath(".//field/@name"))
        for name in (
            "engine_hours",
            "fuel_level_pct",
            "job_site_project_id",
            "open_alert_count",
            "telematics_seen_text",
        ):
            self.assertIn(name, shown)


@tagged("post_install", "-at_install")
class TestIntegrationAdminScreens(ConstructionAssetSyncCase):
    def setUp(self):
        super().setUp()
        self.source, _key, self.machine = make_fleet(self.env, suffix=" screens")
        self.Event = self.env["construction.telematics.event"]

    def test_ledger_events_have_titles_a_person_reads(self):
        self.Event._receive_alerts(self.source, [alert(event_id="t-1")])
        self.Event._receive_readings(
            self.source,
            [
                {"device_id": "DEV-1", "at": fields.Datetime.now() - timedelta(minutes=m)}
                | {"engine_hours": 10.0 + m, "_index": m}
                for m in range(3)
            ],
            [],
        )
        self.Event._receive_alerts(self.source, [{"event_id": "broken"}])
        events = self.Event.search([("source_id", "=", self.source.id)])
        titles = set(events.mapped("display_name"))
        self.assertIn("Alert SPN110-FMI0 from DEV-1", titles)
        self.assertIn("3 reading(s) from DEV-1", titles)
        self.assertIn("Rejected: Alert from unknown device", titles)
        for event in events:
            self.assertNotIn(event.payload_sha256[:12], event.display_name)

    def test_map_device_opens_a_prefilled_mapping_that_releases_the_event(self):
        self.Event._receive_alerts(self.source, [alert(event_id="m-1", device_id="NEW-7")])
        process_all(self.Event)
        event = self.Event.search([("dedupe_key", "=", "alert:m-1")])
        self.assertEqual(event.state, "unmapped")
        action = event.with_user(self.dispatcher).action_map_device()
        self.assertEqual(
            (action["res_model"], action["target"]), ("construction.external.id", "new")
        )
        context = action["context"]
        self.assertEqual(context["default_system_id"], self.source.external_system_id.id)
        self.assertEqual(context["default_external_id"], "NEW-7")
        mapping = (
            self.env["construction.external.id"]
            .with_user(self.dispatcher)
            .with_context(**context)
            .create({"equipment_id": self.machine.id})
        )
        self.assertEqual(mapping.external_id, "NEW-7")
        self.assertEqual(event.state, "pending")
        process_all(self.Event)
        self.assertEqual((event.state, event.equipment_id), ("processed", self.machine))

    def test_labels_say_what_they_are_with_units(self):
        def label(model, field):
            return self.env[model]._fields[field].string

        self.assertEqual(label("construction.telematics.key.wizard", "api_key"), "API key")
        self.assertIn("SHA-256", label("construction.telematics.source", "api_key_hash"))
        self.assertEqual(label("construction.telematics.event", "device_id"), "Device ID")
        self.assertEqual(label("construction.telematics.event", "dedupe_key"), "Deduplication key")
        settings = self.env.ref("construction_asset_sync.res_config_settings_view_form").arch
        self.assertIn("Largest request", settings)
        self.assertRegex(settings, r'name="telematics_max_body_mb"[^>]*/> MB')

    def test_watermarks_read_as_datetimes(self):
        from .common import odyssee_backend

        stream = odyssee_backend(self.env, self.company)._stream("approvals")
        stream.watermark = "2026-11-20T08:15:30.123Z"
        self.assertEqual(stream.watermark_at, fields.Datetime.to_datetime("2026-11-20 08:15:30"))
        stream.watermark = "1980-01-01T00:00:00.000Z"
        self.assertFalse(stream.watermark_at)


@tagged("post_install", "-at_install")
class TestMaintenanceManagerScreens(ConstructionAssetSyncCase):
    def test_requests_opened_by_telematics_are_not_odoobots(self):
        source, _key, machine = make_fleet(self.env, suffix=" bot")
        category = self.env["maintenance.equipment.category"].create(
            {"name": "Made at install", "technician_user_id": SUPERUSER_ID}
        )
        machine.category_id = category
        Event = self.env["construction.telematics.event"]
        Event._receive_alerts(source, [alert(event_id="bot-1")])
        process_all(Event)
        request = Event.search([("dedupe_key", "=", "alert:bot-1")]).request_id
        self.assertTrue(request)
        self.assertNotEqual(request.user_id.id, SUPERUSER_ID)
        self.assertNotEqual(request.owner_user_id.id, SUPERUSER_ID)

    def test_review_list_shows_machine_priority_severity_code_time_and_site(self):
        action = self.env.ref("construction_asset_sync.maintenance_request_action_to_review")
        arch = self.env["maintenance.request"].get_view(action.view_id.id, "list")["arch"]
        shown = etree.fromstring(arch).xpath("//field/@name")
        for name in (
            "equipment_id",
            "priority",
            "alert_severity",
            "alert_code",
            "alert_occurred_at",
            "job_site_project_id",
        ):
            self.assertIn(name, shown)


@tagged("post_install", "-at_install")
class TestAccountantScreens(ConstructionAssetSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fixture = build_job_fixture(cls.env, suffix=" money")
        cls.request, cls.approval, cls.lines = import_job(
            cls.fixture, "Boom cylinder", "bbbb2222-0000-4000-8000-000000000002"
        )
        cls.accountant = cls.env["res.users"].create(
            {
                "name": "Accountant",
                "login": "cas_money_accountant",
                "groups_id": [
                    (6, 0, [cls.env.ref("base.group_user").id]),
                    (4, cls.env.ref("account.group_account_invoice").id),
                ],
            }
        )

    def wizard(self, lines, **values):
        return (
            self.env["construction.odyssee.invoice.wizard"]
            .with_user(self.accountant)
            .with_context(active_model=lines._name, active_ids=lines.ids)
            .create(values)
        )

    def test_amounts_are_quantity_times_price_and_units_are_named(self):
        by_name = {(line.name, line.quantity): line for line in self.lines}
        self.assertEqual(by_name[("Oil filter", 2)].amount, 76.0)
        self.assertEqual(by_name[("Seal kit", 1)].amount, 0.0)  # under warranty
        self.assertEqual(by_name[("Labour", 2.5)].amount, 162.5)
        self.assertEqual(by_name[("Labour", 2.5)].unit, "h")
        self.assertEqual(by_name[("Oil filter", 2)].unit, self.fixture["filter"].uom_id.name)
        # Grouped by customer: the amounts add up, quantities and unit prices do not.
        Line = self.env["construction.odyssee.usage.line"].with_user(self.accountant)
        [group] = Line.read_group(
            [("id", "in", self.lines.ids)], ["amount", "quantity", "price"], ["customer_id"]
        )
        self.assertAlmostEqual(group["amount"], 76.0 + 162.5 + 97.5 + 33.75)
        self.assertNotIn("quantity", group)
        self.assertNotIn("price", group)

    def test_wizard_shows_each_invoice_total_before_creating_anything(self):
        moves_before = self.env["account.move"].search_count([])
        wizard = self.wizard(self.lines)
        html = str(wizard.preview_html)
        self.assertIn(self.fixture["customer"].name.replace("&", "&amp;"), html)
        # Odyssee's prices: 2 x 38 + 0 (warranty) + 4 h x 65 + 0.75 h x 45 = 369.75
        self.assertIn("369.75", html)
        self.assertIn("1 draft invoice(s)", html)
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)
        wizard.split_by = "job"
        self.assertIn(self.request.display_name, str(wizard.preview_html))
        invoice = self.env["account.move"].search(wizard.action_create_invoices()["domain"])
        self.assertAlmostEqual(invoice.amount_untaxed, 369.75)

    def test_lines_left_out_are_marked_with_their_reason(self):
        orphan_request = self.env["maintenance.request"].create({"name": "Job without machine"})
        orphan = self.lines[0].copy({"request_id": orphan_request.id, "name": "Orphan filter"})
        nameless = self.lines[0].copy({"product_id": False, "code": "ZZZ", "name": "Unknown"})
        wizard = self.wizard(self.lines | orphan | nameless)
        self.assertEqual(wizard.billable_count, len(self.lines))
        self.assertEqual(wizard.skipped_count, 2)
        self.assertIn("unknown machine", orphan.invoice_block_reason)
        self.assertIn("unknown article ZZZ", nameless.invoice_block_reason)
        self.assertFalse(self.lines[0].invoice_block_reason)
        invoice = self.env["account.move"].search(wizard.action_create_invoices()["domain"])
        billed = invoice.invoice_line_ids.mapped("name")
        self.assertFalse([name for name in billed if "Orphan" in name or "Unknown" in name])
        self.assertEqual(orphan.invoice_status, "to_invoice")

    def test_a_line_whose_machine_is_unknown_is_never_billed_to_the_default_project(self):
        site = self.fixture["site"]
        self.fixture["backend"].default_project_id = site
        orphan_request = self.env["maintenance.request"].create({"name": "No machine"})
        orphan = self.lines[2].copy({"request_id": orphan_request.id})
        self.assertEqual(orphan.customer_id, self.fixture["customer"])
        wizard = self.wizard(orphan)
        self.assertEqual(wizard.billable_count, 0)
        self.assertFalse(wizard.preview_html)
