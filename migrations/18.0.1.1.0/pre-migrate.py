"""Before 18.0.1.1.0 loads: the mapping table becomes the binder of every kind of record."""


def migrate(cr, version):
    if not version:
        return
    # Existing mappings are machine bindings; the ORM would leave res_id empty.
    cr.execute(
        """ALTER TABLE construction_external_id
               ADD COLUMN IF NOT EXISTS res_model varchar,
               ADD COLUMN IF NOT EXISTS res_id integer"""
    )
    cr.execute(
        """UPDATE construction_external_id
           SET res_model = 'maintenance.equipment', res_id = equipment_id
           WHERE res_id IS NULL"""
    )
    # Unique per (system, kind, id) now; the old key ignored the kind.
    cr.execute(
        """ALTER TABLE construction_external_id
           DROP CONSTRAINT IF EXISTS construction_external_id_system_external_id_company_uniq"""
    )
    # These GUIDs move into the binder (post-migrate); new rows no longer fill them.
    for table in ("construction_odyssee_approval", "construction_odyssee_usage_line"):
        cr.execute(f"ALTER TABLE {table} ALTER COLUMN odyssee_guid DROP NOT NULL")
        cr.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_backend_guid_uniq")
    cr.execute(
        """ALTER TABLE maintenance_request
           DROP CONSTRAINT IF EXISTS maintenance_request_odyssee_job_guid_company_uniq"""
    )
    cr.execute(
        """ALTER TABLE maintenance_equipment
           DROP CONSTRAINT IF EXISTS maintenance_equipment_odyssee_installation_guid_company_uniq"""
    )
