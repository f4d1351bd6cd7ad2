"""ISO 15143-3 (AEMP 2.0) fleet snapshots in JSON, mapped onto canonical readings.

Each data element carries its own timestamp, so elements that share a
timestamp become one reading and the others their own. Keys are matched
case-insensitively and the Bosch variant (the page wrapped in a one-item
array) is accepted. The machine is named by its PIN, else its serial number,
else its EquipmentID, the identity the sender's external IDs must use.

Every mapped value goes through the bounds of the canonical Reading schema
(the same ones as ``/readings``), and a failure names the ISO field it came
from, e.g. ``Equipment[0].Location.Latitude``.

A unit this mapping does not know (a spelling not in the tables, or an enum a
.NET exporter serialises as a number, reference 1.8) is no failure of the
sender's: its element is left out, never stored unconverted in a canonical km
or litre field, and returned as sent beside the note naming it, to be kept.
"""

import json
import math
import re

from . import telematics_schema
from .telematics_payloads import READING_METRICS, error, parse_timestamp

FLEET = telematics_schema.schema("IsoFleet")
IDENTIFIER = telematics_schema.schema("Identifier")
TIMESTAMP = telematics_schema.schema("Timestamp")
METRIC = {name: telematics_schema.property_schema("Reading", name) for name in READING_METRICS}

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
# An RFC 3339 date-time without its offset: UTC in an ISO 15143-3 document.
_ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$")


def _ci(mapping, *names):
    """Case-insensitive lookup of the first present key."""
    if not isinstance(mapping, dict):
        return None
    lowered = {str(key).lower(): value for key, value in mapping.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _ci_key(mapping, *names):
    """Case-insensitive lookup: ``(key as sent, value)`` of the first present name."""
    if not isinstance(mapping, dict):
        return None, None
    lowered = {str(key).lower(): key for key in mapping}
    for name in names:
        if name.lower() in lowered:
            key = lowered[name.lower()]
            return key, mapping[key]
    return None, None


def parse_hours(value):
    """Decimal hours, an ISO 8601 duration (AEMP 1.2) or ``h:mm``."""
    if isinstance(value, bool):
        raise ValueError("must be hours")
    if isinstance(value, (int, float)):
        return _finite(value)
    if not isinstance(value, str):
        raise ValueError("must be hours")
    text = value.strip()
    match = _DURATION.match(text)
    if match and text != "P":
        parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
        return parts["d"] * 24 + parts["h"] + parts["m"] / 60 + parts["s"] / 3600
    match = _HOURS_MINUTES.match(text)
    if match:
        return int(match.group(1)) + int(match.group(2)) / 60
    return _finite(text)


def _finite(value):
    """``float(value)``, refusing what is not a finite number (``"nan"``, ``"inf"``, 1e400)."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("must be a finite number") from None
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _number(value):
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a number")
    if not isinstance(value, (int, float, str)):
        raise ValueError("must be a number")
    return _finite(value)


def _identity(header):
    """``(header key, device id)`` of the machine, else ``(None, None)``."""
    for name in ("PIN", "SerialNumber", "EquipmentID"):
        key, value = _ci_key(header, name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        if not _placeholder(value):
            return key, str(value).strip()
    return None, None


# canonical field -> the ISO child holding it, to name failures
SOURCE_FIELD = {
    "lat": "Latitude",
    "lon": "Longitude",
    "engine_hours": "Hour",
    "idle_hours": "Hour",
    "odometer_km": "Odometer",
    "fuel_level_pct": "Percent",
    "def_level_pct": "Percent",
    "fuel_used_l": "FuelConsumed",
}


def _placeholder(value):
    """Whether ``value`` stands for no value: null, or a placeholder (reference 1.9)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in PLACEHOLDERS)


# element -> (canonical field, ISO child holding its value); location and units aside
_SINGLE_VALUE_ELEMENTS = {
    "cumulativeoperatinghours": ("engine_hours", "Hour"),
    "cumulativeidlehours": ("idle_hours", "Hour"),
    "distance": ("odometer_km", "Odometer"),
    "fuelremaining": ("fuel_level_pct", "Percent"),
    "defremaining": ("def_level_pct", "Percent"),
    "fuelused": ("fuel_used_l", "FuelConsumed"),
}


class UnknownUnit(ValueError):
    """An element's unit is not in the conversion tables: ``key`` is the unit's key as sent."""

    def __init__(self, key, unit):
        super().__init__(f"unknown {key}")
        self.key = key
        self.unit = unit


def _element_values(name, element):
    """Canonical reading fields of one ISO data element; None when it holds no value.

    Senders fill an element they have no value for with a placeholder ("N/A",
    "missing", "", null): that is an absent value, not a malformed one.
    """
    if name == "location":
        lat, lon = _ci(element, "Latitude"), _ci(element, "Longitude")
        if _placeholder(lat) and _placeholder(lon):
            return None
        if _placeholder(lat) or _placeholder(lon):
            raise ValueError("must hold both Latitude and Longitude")
        return {"lat": _number(lat), "lon": _number(lon)}
    if name not in _SINGLE_VALUE_ELEMENTS:
        return None
    field, child = _SINGLE_VALUE_ELEMENTS[name]
    value = _ci(element, child)
    if _placeholder(value):
        return None
    if child == "Hour":
        return {field: parse_hours(value)}
    if name == "distance":
        return {field: _number(value) * _unit_factor(element, "OdometerUnits", DISTANCE_TO_KM)}
    if name == "fuelused":
        return {field: _number(value) * _unit_factor(element, "FuelUnits", FUEL_TO_LITRE)}
    return {field: _number(value)}


def _unit_factor(element, child, factors):
    """The factor of ``element``'s unit (``child``) to the canonical one; absent is canonical.

    Raises ``UnknownUnit`` for any other unit, a number included.
    """
    key, unit = _ci_key(element, child)
    if _placeholder(unit):
        return 1.0
    factor = factors.get(unit.strip().lower()) if isinstance(unit, str) else None
    if factor is None:
        raise UnknownUnit(key, unit)
    return factor


def _left_out(path, element_key, element, exc):
    """The note of an element left out for its unknown unit, with the element as sent."""
    unit = json.dumps(exc.unit, ensure_ascii=False, default=str)
    if len(unit) > 40:
        unit = unit[:39] + "…"
    return {
        "field": f"{path}.{element_key}.{exc.key}",
        "message": f"is {unit}, an unknown unit: the {element_key} value was left out, "
        "not converted",
        "element": element,
    }


def equipment_list_of(document):
    """The Equipment array of a fleet snapshot, or None when there is none.

    What an XML-to-JSON gateway makes of a snapshot is accepted too: a lone
    (repeated) Equipment element as the object itself, and an empty ``<Fleet/>``
    as ``{"Fleet": null}`` or a Fleet object without Equipment, an empty result
    (reference 1.9). A document naming no Fleet and no Equipment is no snapshot.
    """
    if document == []:
        return []  # Bosch's array around no page: past the last page, an empty result
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        return None
    equipment_key, equipment_list = _ci_key(document, "Equipment")
    if equipment_key is None and _ci_key(document, "Fleet")[0] is None:
        # A page's own attributes and no machine: the unwrapped <Fleet/>.
        header = ("version", "snapshotTime", "Links")
        return [] if any(_ci_key(document, name)[0] for name in header) else None
    if equipment_list is None:
        fleet_key, fleet = _ci_key(document, "Fleet")
        if fleet_key is not None and fleet in (None, ""):
            return []  # <Fleet/> through an XML-to-JSON gateway
        if not isinstance(fleet, dict):
            return None
        equipment_key, equipment_list = _ci_key(fleet, "Equipment")
        if equipment_key is None:
            return []
    if isinstance(equipment_list, dict):
        return [equipment_list]
    return equipment_list if isinstance(equipment_list, list) else None


def fleet_to_readings(document, now=None):
    """Map a fleet snapshot onto canonical readings.

    Returns ``(readings, errors, left_out)``; each reading carries ``_index``
    (the equipment's position in the snapshot) and each error is ``(index,
    error)``, index None for the document itself. ``left_out`` are the elements
    of a unit this mapping does not know, ``(index, device id, note)`` with note
    ``{field, message, element}`` (the element as sent): no error, since the
    sender did nothing wrong, and no reading. Elements this mapping does not
    know (load counts, PTO hours, ...) are ignored. A page without equipment is
    a valid empty result (an out-of-range page), so it gives none of them.
    """
    if not FLEET.is_valid(document):
        return [], [(None, failure) for failure in FLEET.errors(document)], []
    equipment_list = equipment_list_of(document)
    if equipment_list is None:
        failure = error("Equipment", "must be an array of equipment in a Fleet object")
        return [], [(None, failure)], []

    readings, errors, left_out = [], [], []
    for index, equipment in enumerate(equipment_list):
        path = f"Equipment[{index}]"
        if not isinstance(equipment, dict):
            errors.append((index, error(path, "must be an object")))
            continue
        header_key, header = _ci_key(equipment, "EquipmentHeader")
        id_key, device_id = _identity(header)
        if not device_id:
            errors.append(
                (
                    index,
                    error(f"{path}.EquipmentHeader", "needs a PIN, SerialNumber or EquipmentID"),
                )
            )
            continue
        if not IDENTIFIER.is_valid(device_id):
            for failure in IDENTIFIER.errors(device_id, f"{path}.{header_key}.{id_key}"):
                errors.append((index, failure))
            continue
        by_time = {}
        for key, element in equipment.items():
            name = str(key).lower()
            if name == "equipmentheader" or not isinstance(element, dict):
                continue
            stamp_key, stamp = _ci_key(element, "datetime")
            if isinstance(stamp, str) and _ZONELESS.match(stamp):
                stamp += "Z"  # ISO 15143-3 times are UTC; some senders leave the Z out
            try:
                values = _element_values(name, element)
                if values is None:
                    continue
            except UnknownUnit as exc:
                left_out.append((index, device_id, _left_out(path, key, element, exc)))
                continue
            except (TypeError, ValueError) as exc:
                errors.append((index, error(f"{path}.{key}", str(exc))))
                continue
            failures = [
                failure
                for field, value in values.items()
                if not METRIC[field].is_valid(value)
                for failure in METRIC[field].errors(
                    value, f"{path}.{key}.{_ci_key(element, SOURCE_FIELD[field])[0]}"
                )
            ]
            stamp_field = f"{path}.{key}.{stamp_key or 'datetime'}"
            if stamp is None:
                failures.append(error(stamp_field, "is required"))
            elif not TIMESTAMP.is_valid(stamp):
                failures.extend(TIMESTAMP.errors(stamp, stamp_field))
            else:
                try:
                    at = parse_timestamp(stamp, now)
                except ValueError as exc:
                    failures.append(error(stamp_field, str(exc)))
            if failures:
                errors.extend((index, failure) for failure in failures)
                continue
            by_time.setdefault(at, {}).update(values)
        for at in sorted(by_time):
            reading = {"device_id": device_id, "at": at, "_index": index}
            reading.update(by_time[at])
            readings.append(reading)
    return readings, errors, left_out
