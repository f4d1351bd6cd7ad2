from odoo.exceptions import UserError, ValidationError

from .common import ConstructionAssetSyncCase, odyssee_backend

GUID = "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d"


class TestEquipment(ConstructionAssetSyncCase):
    def test_new_machine_is_owned_and_has_no_telematics(self):
        self.assertEqual(self.equipment.ownership_type, "owned")
        self.assertFalse(self.equipment.telematics_last_seen_at)
        self.assertFalse(self.equipment.telematics_map_url)

    def test_rented_machine_needs_a_vendor(self):
        with self.assertRaisesRegex(ValidationError, "rental vendor"):
            self.equipment.ownership_type = "rented"
            self.equipment.flush_recordset()

    def test_rental_period_must_be_ordered(self):
        vendor = self.env["res.partner"].create({"name": "Rent-a-digger"})
        with self.assertRaisesRegex(ValidationError, "ends before it starts"):
            self.equipment.write(
                {
                    "ownership_type": "rented",
                    "rental_vendor_id": vendor.id,
                    "rental_rate": 350.0,
                    "rental_start_date": "2026-06-10",
                    "rental_end_date": "2026-06-01",
                }
            )

    def test_rental_terms_are_kept(self):
        vendor = self.env["res.partner"].create({"name": "Rent-a-digger"})
        self.equipment.write(
            {
                "ownership_type": "leased",
                "rental_vendor_id": vendor.id,
                "rental_rate": 5200.0,
                "rental_rate_unit": "month",
            }
        )
        self.assertEqual(self.equipment.rental_vendor_id, vendor)
        self.assertEqual(self.equipment.currency_id, self.company.currency_id)

    def test_odyssee_guid_is_validated(self):
        odyssee_backend(self.env, self.company)
        with self.assertRaisesRegex(ValidationError, "not an Odyssee GUID"):
            self.equipment.odyssee_installation_guid = "not-a-guid"
        self.equipment.odyssee_installation_guid = GUID
        self.assertEqual(self.equipment.odyssee_installation_guid, GUID)

    def test_odyssee_guid_is_one_id_in_either_case(self):
        backend = odyssee_backend(self.env, self.company)
        self.equipment.odyssee_installation_guid = GUID.upper()
        self.equipment.invalidate_recordset()
        self.assertEqual(self.equipment.odyssee_installation_guid, GUID)
        Equipment = self.env["maintenance.equipment"]
        for typed in (GUID, GUID.upper()):
            self.assertEqual(
                Equipment.search([("odyssee_installation_guid", "=", typed)]), self.equipment
            )
        binder = self.env["construction.external.id"]
        found = binder._to_internal(
            backend.external_system_id, "maintenance.equipment", [GUID.upper()]
        )
        self.assertEqual(found, {GUID: self.equipment})

    def test_odyssee_guid_is_unique_per_company(self):
        odyssee_backend(self.env, self.company)
        odyssee_backend(self.env, self.other_company)
        self.equipment.odyssee_installation_guid = GUID
        self.other_equipment.odyssee_installation_guid = GUID  # other company: allowed
        twin = self.env["maintenance.equipment"].create({"name": "Twin"})
        with self.assertRaisesRegex(ValidationError, "already belongs to Excavator under test"):
            twin.odyssee_installation_guid = GUID

    def test_odyssee_guid_needs_a_backend(self):
        with self.assertRaisesRegex(UserError, "without an Odyssee backend"):
            self.other_equipment.odyssee_installation_guid = GUID

    def test_job_site_must_belong_to_the_machine_company(self):
        foreign_site = self.env["project.project"].create(
            {"name": "Foreign site", "company_id": self.other_company.id}
        )
        with self.assertRaisesRegex(UserError, "[Cc]ompan"):
            self.equipment.job_site_project_id = foreign_site

    def test_map_link_points_at_the_last_position(self):
        self.equipment.write(
            {
                "telematics_last_seen_at": "2026-11-20 08:00:00",
                "telematics_latitude": 48.871453,
                "telematics_longitude": 2.350892,
            }
        )
        self.assertIn("mlat=48.871453&mlon=2.350892", self.equipment.telematics_map_url)
