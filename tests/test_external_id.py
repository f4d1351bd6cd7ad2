from odoo.addons.construction_asset_sync.exceptions import UnknownExternalIdError
from odoo.exceptions import UserError, ValidationError
from odoo.tools import mute_logger
from psycopg2 import IntegrityError

from .common import ConstructionAssetSyncCase


class TestExternalId(ConstructionAssetSyncCase):
    def test_lookup_finds_the_mapped_machine(self):
        found = self.env["construction.external.id"]._lookup_equipment(self.telematics, "DEV-1")
        self.assertEqual(found, self.equipment)

    def test_same_device_id_in_two_systems_resolves_separately(self):
        erp = self.env["construction.external.system"].create(
            {"name": "Former ERP", "kind": "other_erp", "code": "erp-under-test"}
        )
        second = self.env["maintenance.equipment"].create({"name": "Second machine"})
        self.env["construction.external.id"].create(
            {"system_id": erp.id, "external_id": "DEV-1", "equipment_id": second.id}
        )
        lookup = self.env["construction.external.id"]._lookup_equipment
        self.assertEqual(lookup(self.telematics, "DEV-1"), self.equipment)
        self.assertEqual(lookup(erp, "DEV-1"), second)

    def test_unknown_id_raises_a_typed_error_naming_it(self):
        with self.assertRaises(UnknownExternalIdError) as caught:
            self.env["construction.external.id"]._lookup_equipment(self.telematics, "NOPE-9")
        self.assertIsInstance(caught.exception, UserError)
        self.assertEqual(caught.exception.external_id, "NOPE-9")
        self.assertEqual(caught.exception.system, self.telematics)
        self.assertIn("NOPE-9", str(caught.exception))
        self.assertIn("Vendor cloud", str(caught.exception))

    def test_lookup_is_exact(self):
        with self.assertRaises(UnknownExternalIdError):
            self.env["construction.external.id"]._lookup_equipment(self.telematics, "dev-1")

    def test_lookup_does_not_cross_companies(self):
        found = self.env["construction.external.id"]._lookup_equipment(
            self.other_telematics, "DEV-1"
        )
        self.assertEqual(found, self.other_equipment)

    @mute_logger("odoo.sql_db")
    def test_external_id_is_unique_per_system(self):
        second = self.env["maintenance.equipment"].create({"name": "Second machine"})
        with self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.env["construction.external.id"].create(
                {"system_id": self.telematics.id, "external_id": "DEV-1", "equipment_id": second.id}
            )

    @mute_logger("odoo.sql_db")
    def test_system_code_is_unique_per_company(self):
        with self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.env["construction.external.system"].create(
                {"name": "Duplicate", "code": "vendor-cloud", "company_id": self.company.id}
            )

    def test_padded_external_id_is_refused(self):
        with self.assertRaises(ValidationError):
            self.env["construction.external.id"].create(
                {
                    "system_id": self.telematics.id,
                    "external_id": " DEV-2",
                    "equipment_id": self.equipment.id,
                }
            )

    def test_mapping_takes_the_company_of_its_system(self):
        self.assertEqual(self.mapping.company_id, self.company)
        self.assertEqual(self.other_mapping.company_id, self.other_company)
        self.assertEqual(self.mapping.display_name, "Vendor cloud: DEV-1")

    def test_mapping_to_a_machine_of_another_company_is_refused(self):
        with self.assertRaises(UserError):
            self.env["construction.external.id"].create(
                {
                    "system_id": self.telematics.id,
                    "external_id": "X-1",
                    "equipment_id": self.other_equipment.id,
                }
            )

    def test_equipment_lists_its_ids(self):
        self.assertEqual(self.equipment.external_id_ids, self.mapping)
        self.assertEqual(self.telematics.external_id_count, 1)

    def test_deleting_the_machine_removes_its_mappings(self):
        self.equipment.unlink()
        self.assertFalse(self.mapping.exists())

    def test_a_system_with_mappings_cannot_be_deleted(self):
        with self.assertRaises(UserError), mute_logger("odoo.sql_db"):
            self.telematics.unlink()
