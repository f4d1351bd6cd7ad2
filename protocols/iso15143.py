"""ISO 15143-3 (AEMP 2.0) fleet snapshots in JSON, mapped onto canonical readings.

Each data element carries its own timestamp, so elements that share a
timestamp become one reading and the others their own. Keys are matched
case-insensitively and the Bosch variant (the page wrapped in a one-item
array) is accepted. The machine is named by its PIN, else its serial number,
else its EquipmentID, the identity the sender's external IDs must use.
"""

import re

from .telematics_payloads import error, parse_timestamp

PLACEHOLDERS = {"", "missing", "n/a", "na", "unknown", "none", "null"}

FUEL_TO_LITRE = {"litre": 1.0, "liter": 1.0, "litres": 1.0, "liters": 1.0, "l": 1.0}
FUEL_TO_LITRE.update({"gallon": 3.785411784, "gallons": 3.785411784, "gal": 3.785411784})
DISTANCE_TO_KM = {"kilometre": 1.0, "kilometer": 1.0, "kilometres": 1.0, "kilometers": 1.0}
DISTANCE_TO_KM.update({"km": 1.0, "mile": 1.609344, "miles": 1.609344, "metre": 0.001})
DISTANCE_TO_KM.update({"meter": 0.001, "metres": 0.001, "meters": 0.001, "m": 0.001})

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_HOURS_MINUTES = re.compile(r"^(\d+):([0-5]\d)$")


def _ci(mapping, *names):
    """Case-insensitive lookup of the first present key."""
    if not isinstance(mapping, dict):
        return None
    lowered = {str(key).lower(): value for key, value in mapping.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def parse_hours(value):
    """Decimal hours, an ISO 8601 duration (AEMP 1.2) or ``h:mm``."""
    if isinstance(value, bool):
        raise ValueError("must be hours")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    match = _DURATION.match(text)
    if match and text != "P":
        parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
        return parts["d"] * 24 + parts["h"] + parts["m"] / 60 + parts["s"] / 3600
    match = _HOURS_MINUTES.match(text)
    if match:
        return int(match.group(1)) + int(match.group(2)) / 60
    return float(text)


def _number(value):
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a number")
    return float(value)


def _identity(header):
    for key in ("PIN", "SerialNumber", "EquipmentID"):
        value = _ci(header, key)
        if value is not None and str(value).strip().lower() not in PLACEHOLDERS:
            return str(value).strip()
    return None


def _element_values(name, element):
    """Canonical reading fields of one ISO data element."""
    if name == "location":
        return {"lat": _number(_ci(element, "Latitude")), "lon": _number(_ci(element, "Longitude"))}
    if name == "cumulativeoperatinghours":
        return {"engine_hours": parse_hours(_ci(element, "Hour"))}
    if name == "cumulativeidlehours":
        return {"idle_hours": parse_hours(_ci(element, "Hour"))}
    if name == "distance":
        unit = str(_ci(element, "OdometerUnits") or "kilometre").strip().lower()
        if unit not in DISTANCE_TO_KM:
            raise ValueError(f"unknown OdometerUnits {unit!r}")
        return {"odometer_km": _number(_ci(element, "Odometer")) * DISTANCE_TO_KM[unit]}
    if name == "fuelremaining":
        return {"fuel_level_pct": _number(_ci(element, "Percent"))}
    if name == "defremaining":
        return {"def_level_pct": _number(_ci(element, "Percent"))}
    if name == "fuelused":
        unit = str(_ci(element, "FuelUnits") or "litre").strip().lower()
        if unit not in FUEL_TO_LITRE:
            raise ValueError(f"unknown FuelUnits {unit!r}")
        return {"fuel_used_l": _number(_ci(element, "FuelConsumed")) * FUEL_TO_LITRE[unit]}
    return None


def equipment_list_of(document):
    """The Equipment array of a fleet snapshot, or None when there is none."""
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        return None
    equipment_list = _ci(document, "Equipment")
    if equipment_list is None:
        fleet = _ci(document, "Fleet")
        equipment_list = _ci(fleet, "Equipment") if isinstance(fleet, dict) else None
    return equipment_list if isinstance(equipment_list, list) else None


def fleet_to_readings(document, now=None):
    """Map a fleet snapshot onto canonical readings.

    Returns ``(readings, errors)``; each reading carries ``_index`` (the
    equipment's position in the snapshot) and each error is ``(index, error)``,
    index None for the document itself. Elements this mapping does not know
    (load counts, PTO hours, ...) are ignored.
    """
    equipment_list = equipment_list_of(document)
    if equipment_list is None:
        return [], [(None, error("Equipment", "must be an array of equipment in a Fleet object"))]

    readings, errors = [], []
    for index, equipment in enumerate(equipment_list):
        path = f"Equipment[{index}]"
        if not isinstance(equipment, dict):
            errors.append((index, error(path, "must be an object")))
            continue
        device_id = _identity(_ci(equipment, "EquipmentHeader"))
        if not device_id:
            errors.append(
                (
                    index,
                    error(f"{path}.EquipmentHeader", "needs a PIN, SerialNumber or EquipmentID"),
                )
            )
            continue
        by_time = {}
        for key, element in equipment.items():
            name = str(key).lower()
            if name == "equipmentheader" or not isinstance(element, dict):
                continue
            stamp = _ci(element, "datetime")
            try:
                values = _element_values(name, element)
                if values is None:
                    continue
                at = parse_timestamp(stamp, now)
            except (TypeError, ValueError) as exc:
                errors.append((index, error(f"{path}.{key}", str(exc))))
                continue
            by_time.setdefault(at, {}).update(values)
        for at in sorted(by_time):
            reading = {"device_id": device_id, "at": at, "_index": index}
            reading.update(by_time[at])
            readings.append(reading)
    return readings, errors
