"""After 18.0.1.2.0 loads: machines with readings are rolled up from their first one.

The daily utilisation is new; marking each machine dirty from its earliest
reading lets the scheduled rollup compute every past day, in chunks.
"""


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        """UPDATE maintenance_equipment e
           SET usage_dirty_from = r.first_at
           FROM (SELECT equipment_id, min(at) AS first_at
                 FROM construction_telematics_reading GROUP BY equipment_id) r
           WHERE e.id = r.equipment_id AND e.usage_dirty_from IS NULL"""
    )
