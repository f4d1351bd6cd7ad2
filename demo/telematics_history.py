"""A week of telematics for the demo fleet, as a sender would post it (no ``odoo`` import).

Three machines report every hour: engine and idle hours that rise on working
days (the excavator crosses its 4,250 h service), a fuel level that falls and
is refilled, a position jittering on its job site. One hour meter jumps 500 h
in an hour (stored, flagged suspect); a fourth device is not mapped to any
machine (it waits as *unmapped*).
"""

import random
from datetime import timedelta

FLEET = {
    # device: (engine hours a week ago, latitude, longitude, engine hours per working hour)
    "CAT-320-0001": (4215.0, 48.871453, 2.350892, 0.9),
    "VOL-L90H-0002": (1700.0, 43.295100, 5.362200, 0.8),
    "BELL-B30E-0003": (8080.0, 48.869000, 2.354100, 0.85),
}


def readings(now):
    """Canonical readings (``parse_reading`` output) of the week before ``now`` (naive UTC)."""
    rng = random.Random(42)
    start = now - timedelta(days=7)
    result = []
    for device, (hours, lat, lon, rate) in FLEET.items():
        fuel = 90.0
        for step in range(7 * 24):
            at = start + timedelta(hours=step)
            if at.weekday() < 5 and 7 <= at.hour < 17:
                hours += rate
                fuel -= rng.uniform(3, 6)
                if fuel < 15:
                    fuel = 95.0
            result.append(
                {
                    "device_id": device,
                    "at": at,
                    "engine_hours": round(hours, 2),
                    "idle_hours": round(hours * 0.22, 2),
                    "fuel_level_pct": round(fuel, 1),
                    "lat": round(lat + rng.uniform(-0.001, 0.001), 6),
                    "lon": round(lon + rng.uniform(-0.001, 0.001), 6),
                }
            )
    # An hour meter that jumps 500 h in an hour: stored, flagged suspect, ignored.
    result.append(
        {"device_id": "CAT-320-0001", "at": now - timedelta(minutes=30), "engine_hours": 9999.0}
    )
    for index, reading in enumerate(result):
        reading["_index"] = index
    return result


def alerts(now):
    """Alerts of the last hours: repeats, a cleared one, an info, an unmapped device."""

    def alert(event_id, device, minutes_ago, severity, code, message, state="active"):
        return {
            "event_id": event_id,
            "device_id": device,
            "occurred_at": (now - timedelta(minutes=minutes_ago)).isoformat() + "Z",
            "severity": severity,
            "code": code,
            "message": message,
            "state": state,
        }

    coolant = "Engine coolant temperature high"
    return [
        alert("demo-1", "CAT-320-0001", 95, "critical", "SPN110-FMI0", coolant),
        alert("demo-2", "CAT-320-0001", 40, "critical", "SPN110-FMI0", coolant),
        alert("demo-3", "VOL-L90H-0002", 70, "warning", "SPN96-FMI18", "Fuel level low"),
        alert("demo-4", "BELL-B30E-0003", 200, "warning", "SPN100-FMI1", "Engine oil pressure low"),
        alert(
            "demo-5",
            "BELL-B30E-0003",
            180,
            "warning",
            "SPN100-FMI1",
            "Engine oil pressure back to normal",
            state="cleared",
        ),
        alert("demo-6", "BELL-B30E-0003", 20, "info", "GEOFENCE-ENTER", "Entered job site"),
        alert("demo-7", "KOM-PC210-0099", 15, "critical", "SPN3031-FMI9", "DEF tank sensor fault"),
    ]
