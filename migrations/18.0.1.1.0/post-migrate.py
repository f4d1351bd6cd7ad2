"""After 18.0.1.1.0 loads: every Odyssee id kept so far moves into the binder, then goes.

Ids lived in five columns and a sync-state table; each becomes a binding in the
external system of its Odyssee backend (the company's active backend for
machines, employees and requests), GUIDs in lower case. Nothing is lost: the
old columns are dropped only after their values are bound.
"""

BINDING_COLUMNS = """system_id, system_kind, company_id, res_model, res_id, equipment_id,
                     external_id, fingerprint, synced_at,
                     create_uid, write_uid, create_date, write_date"""

# (table, model, GUID column, how the row finds its backend)
LEGACY_COLUMNS = [
    ("maintenance_equipment", "maintenance.equipment", "odyssee_installation_guid", "company"),
    ("hr_employee", "hr.employee", "odyssee_user_guid", "company"),
    ("maintenance_request", "maintenance.request", "odyssee_job_guid", "company"),
    ("construction_odyssee_approval", "construction.odyssee.approval", "odyssee_guid", "backend"),
    (
        "construction_odyssee_usage_line",
        "construction.odyssee.usage.line",
        "odyssee_guid",
        "backend",
    ),
]


def _column_exists(cr, table, column):
    cr.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
        [table, column],
    )
    return bool(cr.fetchone())


def _table_exists(cr, table):
    cr.execute("SELECT to_regclass(%s)", [table])
    return cr.fetchone()[0] is not None


def bind_legacy_ids(cr):
    """Bind the ids of the old columns and sync states; returns how many bindings were made."""
    made = 0
    for table, model, column, owner in LEGACY_COLUMNS:
        if not _column_exists(cr, table, column):
            continue
        if owner == "company":
            backend_join = """JOIN construction_odyssee_backend b
                                ON b.company_id = r.company_id AND b.active"""
        else:
            backend_join = "JOIN construction_odyssee_backend b ON b.id = r.backend_id"
        machine = "r.id" if model == "maintenance.equipment" else "NULL"
        cr.execute(
            f"""INSERT INTO construction_external_id ({BINDING_COLUMNS})
                SELECT s.id, s.kind, s.company_id, %s, r.id, {machine},
                       lower(trim(r.{column})), NULL, NULL,
                       1, 1, now() at time zone 'UTC', now() at time zone 'UTC'
                FROM {table} r {backend_join}
                JOIN construction_external_system s ON s.id = b.external_system_id
                WHERE coalesce(trim(r.{column}), '') != ''
                ON CONFLICT (system_id, res_model, external_id) DO NOTHING""",
            [model],
        )
        made += cr.rowcount
        cr.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    if _table_exists(cr, "construction_odyssee_sync_state"):
        cr.execute(
            f"""INSERT INTO construction_external_id ({BINDING_COLUMNS})
                SELECT s.id, s.kind, s.company_id, st.res_model, st.res_id,
                       CASE WHEN st.res_model = 'maintenance.equipment' THEN st.res_id END,
                       lower(trim(st.odyssee_guid)), st.fingerprint, st.synced_at,
                       1, 1, now() at time zone 'UTC', now() at time zone 'UTC'
                FROM construction_odyssee_sync_state st
                JOIN construction_odyssee_backend b ON b.id = st.backend_id
                JOIN construction_external_system s ON s.id = b.external_system_id
                ON CONFLICT (system_id, res_model, external_id) DO UPDATE
                SET fingerprint = EXCLUDED.fingerprint, synced_at = EXCLUDED.synced_at"""
        )
        made += cr.rowcount
        # The model is gone; Odoo drops the tables of removed models only on uninstall.
        cr.execute("DROP TABLE construction_odyssee_sync_state")
    return made


def migrate(cr, version):
    if version:
        bind_legacy_ids(cr)
