"""After 18.0.1.6.0 loads: idle hours, position and fuel level get their own stamps.

Before, idle hours shared the engine hours' stamp, and the position and fuel
level moved only with the machine's newest element (the position's stamp was
kept by the site following alone, for machines with a followed position). Each
now keeps the time it was reported at; a machine upgraded from before starts
from the stamps its plausible history gives, so that an older position or fuel
level arriving later cannot replace a newer one.

The shared stamp was the time of whichever counter came last. Where that was
the idle hours, ahead of the engine hours, it is the engine hours' own time
again: left as it was, it would keep flagging the next engine hours as rising
too fast, the very freeze this version ends. Elsewhere it stays (an alert's
meters move a machine without a history row).
"""


def stamp_idle_hours_position_and_fuel(cr):
    """Give upgraded machines the stamps of their history; returns how many."""
    cr.execute(
        """WITH history AS (
               SELECT equipment_id,
                      max(at) FILTER (WHERE engine_hours IS NOT NULL) AS engine_at,
                      max(at) FILTER (WHERE idle_hours IS NOT NULL) AS idle_at,
                      max(at) FILTER (WHERE lat IS NOT NULL AND lon IS NOT NULL) AS position_at,
                      max(at) FILTER (WHERE fuel_level_pct IS NOT NULL) AS fuel_at
               FROM construction_telematics_reading
               WHERE NOT COALESCE(suspect, false)
               GROUP BY equipment_id)
           UPDATE maintenance_equipment e
           SET engine_hours_at = CASE
                   WHEN h.idle_at = e.engine_hours_at AND h.engine_at < h.idle_at
                   THEN h.engine_at ELSE e.engine_hours_at END,
               idle_hours_at = CASE
                   WHEN e.idle_hours IS NOT NULL
                   THEN COALESCE(h.idle_at, e.engine_hours_at) END,
               telematics_position_at = COALESCE(
                   e.telematics_position_at, h.position_at, CASE
                   WHEN e.telematics_latitude IS NOT NULL OR e.telematics_longitude IS NOT NULL
                   THEN e.telematics_last_seen_at END),
               fuel_level_at = CASE
                   WHEN e.fuel_level_pct IS NOT NULL
                   THEN COALESCE(h.fuel_at, e.telematics_last_seen_at) END
           FROM maintenance_equipment m
           LEFT JOIN history h ON h.equipment_id = m.id
           WHERE e.id = m.id
             AND (e.telematics_last_seen_at IS NOT NULL OR e.engine_hours_at IS NOT NULL)"""
    )
    return cr.rowcount


def migrate(cr, version):
    if version:
        stamp_idle_hours_position_and_fuel(cr)
