"""Before 18.0.1.4.0 loads: the readings history loses its two foreign keys.

From 18.0.1.4.0 the machine and the ledger event of a reading are
``HistoryMany2one`` fields: no foreign key, whose per-row checks doubled the
cost of storing history; deleting a machine or an event deletes its readings
in the ORM instead. Odoo never drops a foreign key a field stops declaring,
so this does, with the constraints' reflection in ``ir.model.constraint``.
"""

HISTORY_FOREIGN_KEYS = (
    "construction_telematics_reading_equipment_id_fkey",
    "construction_telematics_reading_event_id_fkey",
)


def drop_history_foreign_keys(cr):
    for name in HISTORY_FOREIGN_KEYS:
        cr.execute(f"ALTER TABLE construction_telematics_reading DROP CONSTRAINT IF EXISTS {name}")
    cr.execute(
        "DELETE FROM ir_model_constraint WHERE type = 'f' AND name IN %s", [HISTORY_FOREIGN_KEYS]
    )


def migrate(cr, version):
    if version:
        drop_history_foreign_keys(cr)
