import uuid

from odoo.exceptions import ValidationError

from .common import ConstructionAssetSyncCase, load_migration, odyssee_backend

GUID = "5a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"


class TestBinder(ConstructionAssetSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Binder = cls.env["construction.external.id"]
        cls.backend = odyssee_backend(cls.env, cls.company)
        cls.system = cls.backend.external_system_id
        cls.employee = cls.env["hr.employee"].create({"name": "Technician under test"})

    def test_bind_then_translate_both_ways_in_batches(self):
        other = self.env["hr.employee"].create({"name": "Second technician"})
        guids = [str(uuid.uuid4()) for _ in range(2)]
        self.Binder._bind(self.system, [(self.employee, guids[0]), (other, guids[1].upper())])
        self.assertEqual(
            self.Binder._to_internal(self.system, "hr.employee", [g.upper() for g in guids]),
            {guids[0]: self.employee, guids[1]: other},
        )
        self.assertEqual(
            self.Binder._to_external(self.system, self.employee | other),
            {self.employee.id: guids[0], other.id: guids[1]},
        )
        # The same GUID names another kind of record independently.
        self.Binder._bind(self.system, [(self.equipment, guids[0])])
        self.assertEqual(
            self.Binder._to_internal(self.system, "maintenance.equipment", [guids[0]]),
            {guids[0]: self.equipment},
        )

    def test_binding_again_is_harmless_and_another_record_is_refused(self):
        self.Binder._bind(self.system, [(self.employee, GUID)])
        self.Binder._bind(self.system, [(self.employee, GUID.upper())])
        self.assertEqual(self.Binder._to_bindings(self.system, self.employee).external_id, GUID)
        other = self.env["hr.employee"].create({"name": "Impostor"})
        with self.assertRaisesRegex(ValidationError, "already belongs to Technician under test"):
            self.Binder._bind(self.system, [(other, GUID)])

    def test_deleted_records_are_not_returned(self):
        self.Binder._bind(self.system, [(self.employee, GUID)])
        self.employee.unlink()
        self.assertEqual(self.Binder._to_internal(self.system, "hr.employee", [GUID]), {})

    def test_odyssee_ids_must_be_guids(self):
        with self.assertRaisesRegex(ValidationError, "not an Odyssee GUID"):
            self.Binder._bind(self.system, [(self.employee, "TECH-1")])

    def test_bind_new_stores_what_bind_stores_in_one_insert(self):
        Line = self.env["construction.odyssee.usage.line"]
        lines = Line.create(
            [
                {"backend_id": self.backend.id, "kind": "time", "name": name}
                for name in ("by the ORM", "by one INSERT")
            ]
        )
        guids = [str(uuid.uuid4()) for _ in lines]
        by_orm = self.Binder._bind(self.system, [(lines[0], guids[0])])
        by_insert = self.Binder._bind_new(self.system, [(lines[1], guids[1].upper())])
        self.assertEqual(len(by_insert), 1)
        compared = [
            "system_id",
            "system_kind",
            "company_id",
            "res_model",
            "equipment_id",
            "pending",
            "create_uid",
            "write_uid",
        ]
        self.assertEqual(
            by_insert.read(compared)[0] | {"id": 0}, by_orm.read(compared)[0] | {"id": 0}
        )
        self.assertEqual((by_insert.res_id, by_insert.external_id), (lines[1].id, guids[1]))
        self.assertTrue(by_insert.create_date)
        self.assertEqual(
            self.Binder._to_internal(self.system, Line._name, guids),
            {guids[0]: lines[0], guids[1]: lines[1]},
        )
        self.assertIn(by_insert, self.system.external_id_ids)

    def test_bind_new_refuses_what_bind_refuses(self):
        with self.assertRaisesRegex(ValidationError, "not an Odyssee GUID"):
            self.Binder._bind_new(self.system, [(self.employee, "TECH-1")])
        self.Binder._bind(self.system, [(self.employee, GUID)])
        other = self.env["hr.employee"].create({"name": "Impostor"})
        with self.assertRaisesRegex(ValidationError, "already belongs to Technician under test"):
            self.Binder._bind_new(self.system, [(other, GUID)])

    def test_batch_lookup_across_systems(self):
        pairs = [(self.telematics.id, "DEV-1"), (self.other_telematics.id, "DEV-1")]
        self.assertEqual(
            self.Binder._to_internal_ids(
                "maintenance.equipment", [*pairs, (self.telematics.id, "X")]
            ),
            {
                (self.telematics.id, "DEV-1"): self.equipment.id,
                (self.other_telematics.id, "DEV-1"): self.other_equipment.id,
            },
        )

    def test_views_of_the_binder_read_write_and_search(self):
        self.employee.odyssee_user_guid = GUID.upper()
        self.assertEqual(
            self.Binder._to_external(self.system, self.employee), {self.employee.id: GUID}
        )
        Employee = self.env["hr.employee"]
        self.assertEqual(Employee.search([("odyssee_user_guid", "=", GUID.upper())]), self.employee)
        self.assertIn(self.employee, Employee.search([("odyssee_user_guid", "!=", False)]))
        self.employee.odyssee_user_guid = False
        self.assertFalse(self.Binder._to_bindings(self.system, self.employee))
        self.assertNotIn(self.employee, Employee.search([("odyssee_user_guid", "!=", False)]))

    def test_upgrade_moves_the_old_guid_columns_into_the_binder(self):
        """The 18.0.1.1.0 migration binds what the old columns and sync states held."""
        migration = load_migration("18.0.1.1.0", "post-migrate")
        cr = self.env.cr
        self.env.flush_all()
        # The columns and the table as 18.0.1.0.0 left them (rolled back with the test).
        cr.execute("ALTER TABLE hr_employee ADD COLUMN odyssee_user_guid varchar")
        cr.execute(
            "UPDATE hr_employee SET odyssee_user_guid = %s WHERE id = %s",
            [GUID.upper(), self.employee.id],
        )
        cr.execute(
            """CREATE TABLE construction_odyssee_sync_state (
                   backend_id int, res_model varchar, res_id int, odyssee_guid varchar,
                   fingerprint varchar, synced_at timestamp)"""
        )
        job_guid = str(uuid.uuid4())
        cr.execute(
            """INSERT INTO construction_odyssee_sync_state
               VALUES (%s, 'maintenance.equipment', %s, %s, 'f1', now())""",
            [self.backend.id, self.equipment.id, job_guid.upper()],
        )
        self.assertEqual(migration.bind_legacy_ids(cr), 2)
        self.env.invalidate_all()
        self.assertEqual(
            self.Binder._to_external(self.system, self.employee), {self.employee.id: GUID}
        )
        binding = self.Binder._to_bindings(self.system, self.equipment)
        self.assertEqual((binding.external_id, binding.fingerprint), (job_guid, "f1"))
        self.assertEqual(binding.equipment_id, self.equipment)
        cr.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'hr_employee' AND column_name = 'odyssee_user_guid'"
        )
        self.assertFalse(cr.fetchone(), "the old column is dropped once its ids are bound")
        cr.execute("SELECT to_regclass('construction_odyssee_sync_state')")
        self.assertIsNone(cr.fetchone()[0])
