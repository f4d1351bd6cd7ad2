"""Validation of the canonical telematics payloads (alerts and readings).

Every function returns plain values: ``(normalised, errors)`` where errors is a
list of ``{"field": ..., "message": ...}`` naming the failing JSON path, so the
HTTP layer can answer with them and the ledger can keep them.
"""

import math
from datetime import datetime, timedelta, timezone

MAX_READINGS_PER_REQUEST = 5000
MAX_ID_LENGTH = 200
MAX_CODE_LENGTH = 100
MAX_MESSAGE_LENGTH = 2000
FUTURE_TOLERANCE = timedelta(hours=24)

SEVERITIES = ("info", "warning", "critical")
ALERT_STATES = ("active", "cleared")

# metric -> (minimum, maximum); None means unbounded.
READING_METRICS = {
    "engine_hours": (0.0, None),
    "idle_hours": (0.0, None),
    "odometer_km": (0.0, None),
    "fuel_level_pct": (0.0, 100.0),
    "fuel_used_l": (0.0, None),
    "def_level_pct": (0.0, 100.0),
    "lat": (-90.0, 90.0),
    "lon": (-180.0, 180.0),
    "speed_kmh": (0.0, 1000.0),
}
ALERT_READING_METRICS = (
    "engine_hours",
    "idle_hours",
    "odometer_km",
    "fuel_level_pct",
    "def_level_pct",
)


def error(field, message):
    return {"field": field, "message": message}


def parse_timestamp(value, now=None):
    """Parse an RFC 3339 timestamp into a naive UTC datetime, or raise ValueError."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-20T08:15:00Z") from None
    if "T" not in text.upper() or parsed.tzinfo is None:
        raise ValueError(
            "must be an RFC 3339 timestamp with a time zone, e.g. 2026-11-20T08:15:00Z"
        )
    parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if parsed > now + FUTURE_TOLERANCE:
        raise ValueError("lies more than 24 hours in the future")
    return parsed


def _string(obj, key, path, errors, required, max_length):
    value = obj.get(key)
    if value is None:
        if required:
            errors.append(error(f"{path}{key}", "is required"))
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(error(f"{path}{key}", "must be a non-empty string"))
        return None
    if len(value) > max_length:
        errors.append(error(f"{path}{key}", f"must be at most {max_length} characters"))
        return None
    return value


def _number(value, field, errors):
    bounds = READING_METRICS[field.rsplit(".", 1)[-1]]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append(error(field, "must be a number"))
        return None
    value = float(value)
    if not math.isfinite(value):
        errors.append(error(field, "must be a finite number"))
        return None
    low, high = bounds
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            errors.append(error(field, f"must be at least {low:g}"))
        else:
            errors.append(error(field, f"must be between {low:g} and {high:g}"))
        return None
    return value


def _timestamp(obj, key, path, errors, now):
    if obj.get(key) is None:
        errors.append(error(f"{path}{key}", "is required"))
        return None
    try:
        return parse_timestamp(obj[key], now)
    except ValueError as exc:
        errors.append(error(f"{path}{key}", str(exc)))
        return None


def parse_alert(obj, path="", now=None):
    """Validate one canonical alert. Returns ``(alert, errors)``."""
    if not isinstance(obj, dict):
        return None, [error(path.rstrip(".") or "$", "must be a JSON object")]
    errors = []
    alert = {
        "event_id": _string(obj, "event_id", path, errors, True, MAX_ID_LENGTH),
        "device_id": _string(obj, "device_id", path, errors, True, MAX_ID_LENGTH),
        "occurred_at": _timestamp(obj, "occurred_at", path, errors, now),
        "code": _string(obj, "code", path, errors, True, MAX_CODE_LENGTH),
        "message": _string(obj, "message", path, errors, False, MAX_MESSAGE_LENGTH),
    }
    severity = obj.get("severity")
    if severity not in SEVERITIES:
        errors.append(error(f"{path}severity", "must be one of info, warning, critical"))
    alert["severity"] = severity
    state = obj.get("state", "active")
    if state not in ALERT_STATES:
        errors.append(error(f"{path}state", "must be active or cleared"))
    alert["state"] = state

    location = obj.get("location")
    alert["location"] = None
    if location is not None:
        if not isinstance(location, dict):
            errors.append(error(f"{path}location", "must be an object with lat and lon"))
        elif "lat" not in location or "lon" not in location:
            errors.append(error(f"{path}location", "must have both lat and lon"))
        else:
            lat = _number(location["lat"], f"{path}location.lat", errors)
            lon = _number(location["lon"], f"{path}location.lon", errors)
            alert["location"] = {"lat": lat, "lon": lon}

    readings = obj.get("readings")
    alert["readings"] = {}
    if readings is not None:
        if not isinstance(readings, dict):
            errors.append(error(f"{path}readings", "must be an object"))
        else:
            for key, value in readings.items():
                if key not in ALERT_READING_METRICS:
                    errors.append(
                        error(
                            f"{path}readings.{key}",
                            "is not a known reading ({})".format(", ".join(ALERT_READING_METRICS)),
                        )
                    )
                    continue
                alert["readings"][key] = _number(value, f"{path}readings.{key}", errors)
    return (None, errors) if errors else (alert, [])


def parse_reading(obj, path="", now=None):
    """Validate one canonical reading. Returns ``(reading, errors)``."""
    if not isinstance(obj, dict):
        return None, [error(path.rstrip(".") or "$", "must be a JSON object")]
    errors = []
    reading = {
        "device_id": _string(obj, "device_id", path, errors, True, MAX_ID_LENGTH),
        "at": _timestamp(obj, "at", path, errors, now),
    }
    has_value = False
    for key, value in obj.items():
        if key in ("device_id", "at"):
            continue
        if key not in READING_METRICS:
            errors.append(error(f"{path}{key}", "is not a known reading field"))
            continue
        if value is None:
            continue
        reading[key] = _number(value, f"{path}{key}", errors)
        has_value = True
    if ("lat" in obj) != ("lon" in obj):
        errors.append(error(f"{path}lat", "lat and lon come together"))
    if not has_value and not errors:
        errors.append(
            error(
                path.rstrip(".") or "$", "carries no value ({})".format(", ".join(READING_METRICS))
            )
        )
    return (None, errors) if errors else (reading, [])


def split_alerts(document):
    """The alert items of a request body: one object or ``{"alerts": [...]}``.

    Returns ``(items, error)``.
    """
    if isinstance(document, dict) and "alerts" in document:
        items = document["alerts"]
        if not isinstance(items, list) or not items:
            return None, error("alerts", "must be a non-empty array")
        return items, None
    if isinstance(document, dict):
        return [document], None
    return None, error("$", 'must be an alert object or {"alerts": [...]}')


def split_readings(document):
    """The reading items of ``{"readings": [...]}``; returns ``(items, error)``."""
    if not isinstance(document, dict) or "readings" not in document:
        return None, error("readings", 'is required: send {"readings": [...]}')
    items = document["readings"]
    if not isinstance(items, list) or not items:
        return None, error("readings", "must be a non-empty array")
    if len(items) > MAX_READINGS_PER_REQUEST:
        return None, error(
            "readings", f"holds {len(items)} items; at most {MAX_READINGS_PER_REQUEST} per request"
        )
    return items, None
