"""After 18.0.1.6.0 loads: idle hours, position and fuel level get their own stamps.

Before, idle hours shared the engine hours' stamp, and the position and fuel
level moved only with the machine's newest element (the position's stamp was
kept by the site following alone, for machines with a followed position). Each
now keeps the time it was reported at; a machine upgraded from before starts
from the stamps it had, so that an older position or fuel level arriving later
cannot replace a newer one.
"""


def stamp_idle_hours_position_and_fuel(cr):
    """Give upgraded machines the stamps they implicitly had; returns how many."""
    cr.execute(
        """UPDATE maintenance_equipment
           SET idle_hours_at = CASE WHEN idle_hours IS NOT NULL THEN engine_hours_at END,
               telematics_position_at = COALESCE(telematics_position_at, CASE
                   WHEN telematics_latitude IS NOT NULL OR telematics_longitude IS NOT NULL
                   THEN telematics_last_seen_at END),
               fuel_level_at = CASE
                   WHEN fuel_level_pct IS NOT NULL THEN telematics_last_seen_at END
           WHERE telematics_last_seen_at IS NOT NULL OR engine_hours_at IS NOT NULL"""
    )
    return cr.rowcount


def migrate(cr, version):
    if version:
        stamp_idle_hours_position_and_fuel(cr)
