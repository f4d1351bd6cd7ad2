"""After 18.0.1.3.0 loads: machines are rolled up again from their first kept reading.

18.0.1.3.0 adds the hours per job site (``construction.telematics.usage.site``)
to the daily rollup. Marking each machine dirty from its earliest raw reading
makes the scheduled rollup compute them for every day whose readings are still
kept; the rollup never recomputes a day before a machine's purge horizon, so
days whose readings are gone keep their totals and get no per-site rows.
"""


def mark_machines_for_rollup(cr):
    """Mark every machine with readings dirty from its first one; returns how many."""
    cr.execute(
        """UPDATE maintenance_equipment e
           SET usage_dirty_from = LEAST(e.usage_dirty_from, r.first_at)  -- LEAST skips a NULL
           FROM (SELECT equipment_id, min(at) AS first_at
                 FROM construction_telematics_reading GROUP BY equipment_id) r
           WHERE e.id = r.equipment_id"""
    )
    return cr.rowcount


def migrate(cr, version):
    if version:
        mark_machines_for_rollup(cr)
