from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestInstall(TransactionCase):
    def test_module_is_installed(self):
        module = self.env["ir.module.module"].search([("name", "=", "construction_asset_sync")])
        self.assertEqual(module.state, "installed")
        self.assertEqual(module.installed_version, "18.0.1.7.0")

    def test_the_ledger_finds_a_sources_newest_events_by_index(self):
        # The health check's last success per source and the ledger list of one
        # source read its newest events: a (source, id) index, not a backward scan
        # of every newer event of the other sources.
        self.env.cr.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'construction_telematics_event'"
        )
        definitions = [definition for (definition,) in self.env.cr.fetchall()]
        self.assertTrue(
            any(definition.endswith("btree (source_id, id)") for definition in definitions),
            definitions,
        )

    def test_equipment_form_has_the_telematics_tab(self):
        arch = self.env["maintenance.equipment"].get_view(view_type="form")["arch"]
        self.assertIn('name="telematics_ids"', arch)
        self.assertIn('name="external_id_ids"', arch)
        self.assertIn('name="job_site_project_id"', arch)

    def test_request_form_has_the_field_service_tab_and_review_button(self):
        arch = self.env["maintenance.request"].get_view(view_type="form")["arch"]
        self.assertIn('name="field_service"', arch)
        self.assertIn('name="action_mark_reviewed"', arch)

    def test_request_search_offers_to_review_filter(self):
        arch = self.env["maintenance.request"].get_view(view_type="search")["arch"]
        self.assertIn('name="to_review"', arch)

    def test_integration_menu_sits_under_maintenance(self):
        menu = self.env.ref("construction_asset_sync.menu_integration")
        self.assertEqual(menu.parent_id, self.env.ref("maintenance.menu_maintenance_title"))
        self.assertEqual(
            menu.child_id.mapped("name"),
            [
                "Integration health",
                "Silent machines",
                "External IDs",
                "Telematics ledger",
                "Telematics readings",
                "Telematics sensors",
                "Odyssee approvals",
                "Imported work",
                "Telematics sources",
                "Odyssee backends",
                "Odyssee API calls",
                "External systems",
            ],
        )


@tagged("post_install", "-at_install")
class TestSettings(TransactionCase):
    def test_zero_saved_in_the_settings_stays_zero(self):
        """0 means something for these settings (keep everything, normal priority),
        but Odoo stores a number 0 as no parameter, which reads back as the default."""
        setting = self.env["res.config.settings"]._construction_setting
        self.assertEqual(setting("odyssee_sync_niceness"), 10)
        self.assertEqual(setting("telematics_retention_days"), 30)
        self.env["res.config.settings"].create(
            {
                "odyssee_sync_niceness": 0,
                "telematics_retention_days": 0,
                "telematics_reading_retention_days": 0,
            }
        ).execute()
        self.assertEqual(setting("odyssee_sync_niceness"), 0)
        self.assertEqual(setting("telematics_retention_days"), 0)
        self.assertEqual(setting("telematics_reading_retention_days"), 0)
        form = self.env["res.config.settings"].create({})
        self.assertEqual(form.odyssee_sync_niceness, 0)
        self.assertEqual(form.telematics_retention_days, 0)
        # And back to a number.
        self.env["res.config.settings"].create({"odyssee_sync_niceness": 12}).execute()
        self.assertEqual(setting("odyssee_sync_niceness"), 12)
