from odoo.exceptions import AccessError

from .common import ConstructionAssetSyncCase


class TestAccessRights(ConstructionAssetSyncCase):
    def test_groups_form_one_category_with_admin_above_dispatcher(self):
        dispatcher = self.env.ref("construction_asset_sync.group_dispatcher")
        admin = self.env.ref("construction_asset_sync.group_integration_admin")
        self.assertEqual(dispatcher.category_id, admin.category_id)
        self.assertIn(dispatcher, admin.implied_ids)
        self.assertTrue(
            self.integration_admin.has_group("construction_asset_sync.group_dispatcher")
        )
        self.assertTrue(self.dispatcher.has_group("maintenance.group_equipment_manager"))
        self.assertFalse(
            self.dispatcher.has_group("construction_asset_sync.group_integration_admin")
        )

    def test_employee_reads_ids_but_cannot_change_them(self):
        mappings = self.env["construction.external.id"].with_user(self.employee)
        visible = mappings.search([])
        self.assertIn(self.mapping, visible)
        self.assertNotIn(self.other_mapping, visible)
        with self.assertRaises(AccessError):
            mappings.create(
                {
                    "system_id": self.telematics.id,
                    "external_id": "E-1",
                    "equipment_id": self.equipment.id,
                }
            )
        with self.assertRaises(AccessError):
            self.mapping.with_user(self.employee).external_id = "E-2"

    def test_dispatcher_maps_devices(self):
        mapping = (
            self.env["construction.external.id"]
            .with_user(self.dispatcher)
            .create(
                {
                    "system_id": self.telematics.id,
                    "external_id": "D-1",
                    "equipment_id": self.equipment.id,
                }
            )
        )
        mapping.external_id = "D-2"
        mapping.unlink()
        self.assertFalse(mapping.exists())

    def test_dispatcher_cannot_rebind_what_integrations_bound(self):
        from odoo.exceptions import AccessError

        employee = self.env["hr.employee"].create({"name": "Bound technician"})
        binding = self.env["construction.external.id"]._bind(self.telematics, [(employee, "T-1")])
        as_dispatcher = binding.with_user(self.dispatcher)
        self.assertEqual(as_dispatcher.external_id, "T-1", "dispatchers still see it")
        with self.assertRaises(AccessError):
            as_dispatcher.external_id = "T-2"
        binding.with_user(self.integration_admin).external_id = "T-3"
        self.assertEqual(binding.external_id, "T-3")

    def test_dispatcher_cannot_configure_systems(self):
        systems = self.env["construction.external.system"].with_user(self.dispatcher)
        visible = systems.search([])
        self.assertIn(self.telematics, visible)
        self.assertNotIn(self.other_telematics, visible)
        with self.assertRaises(AccessError):
            systems.create({"name": "Rogue", "code": "rogue"})
        with self.assertRaises(AccessError):
            self.telematics.with_user(self.dispatcher).name = "Renamed"

    def test_dispatcher_cannot_read_secrets(self):
        system = self.telematics.with_user(self.dispatcher)
        self.assertEqual(system.name, "Vendor cloud")
        with self.assertRaises(AccessError):
            system.read(["auth_secret"])
        with self.assertRaises(AccessError):
            system.search_read([], ["auth_username"])
        form_fields = system.get_views([(False, "form")])["models"]["construction.external.system"]
        self.assertNotIn("auth_secret", form_fields["fields"])

    def test_employee_cannot_read_secrets(self):
        with self.assertRaises(AccessError):
            self.telematics.with_user(self.employee).read(["auth_secret"])

    def test_integration_admin_manages_systems_and_reads_secrets(self):
        system = self.telematics.with_user(self.integration_admin)
        self.assertEqual(system.read(["auth_secret"])[0]["auth_secret"], "s3cr3t-token")
        system.auth_secret = "rotated"
        created = system.create({"name": "ERP", "kind": "other_erp", "code": "erp"})
        self.assertEqual(created.company_id, self.company)

    def test_integration_menu_follows_the_groups(self):
        menus = self.env["ir.ui.menu"]
        integration = self.env.ref("construction_asset_sync.menu_integration")
        systems_menu = self.env.ref("construction_asset_sync.menu_external_system")
        self.assertNotIn(integration, menus.with_user(self.employee).search([]))
        dispatcher_menus = menus.with_user(self.dispatcher).search([])
        self.assertIn(integration, dispatcher_menus)
        self.assertNotIn(systems_menu, dispatcher_menus)
        self.assertIn(systems_menu, menus.with_user(self.integration_admin).search([]))


class TestMultiCompany(ConstructionAssetSyncCase):
    def test_systems_are_isolated_per_company(self):
        visible = self.env["construction.external.system"].with_user(self.other_company_admin)
        self.assertEqual(visible.search([]), self.other_telematics)
        with self.assertRaises(AccessError):
            self.telematics.with_user(self.other_company_admin).read(["name"])

    def test_mappings_are_isolated_per_company(self):
        visible = self.env["construction.external.id"].with_user(self.other_company_admin)
        self.assertEqual(visible.search([]), self.other_mapping)
        with self.assertRaises(AccessError):
            self.mapping.with_user(self.other_company_admin).read(["external_id"])

    def test_lookup_as_a_user_sees_only_the_user_companies(self):
        lookup = self.env["construction.external.id"].with_user(self.dispatcher)._lookup_equipment
        self.assertEqual(
            lookup(self.telematics.with_user(self.dispatcher), "DEV-1"), self.equipment
        )

    def test_requests_and_equipment_fields_follow_upstream_company_rules(self):
        foreign = self.env["maintenance.request"].create(
            {
                "name": "Foreign alert",
                "equipment_id": self.other_equipment.id,
                "company_id": self.other_company.id,
                "maintenance_team_id": self.env["maintenance.team"]
                .create({"name": "Other team", "company_id": self.other_company.id})
                .id,
                "request_origin": "telematics_alert",
            }
        )
        requests = self.env["maintenance.request"].with_user(self.dispatcher)
        self.assertNotIn(foreign, requests.search([("to_review", "=", True)]))
        equipment = self.env["maintenance.equipment"].with_user(self.dispatcher)
        self.assertNotIn(self.other_equipment, equipment.search([]))
