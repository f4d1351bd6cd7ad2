from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestInstall(TransactionCase):
    def test_module_is_installed(self):
        module = self.env["ir.module.module"].search([("name", "=", "construction_asset_sync")])
        self.assertEqual(module.state, "installed")
        self.assertEqual(module.installed_version, "18.0.1.4.0")

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
