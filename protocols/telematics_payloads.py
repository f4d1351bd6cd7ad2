"""Validation of the canonical telematics payloads (alerts and readings).

What a payload may hold is stated once, by the schemas of the OpenAPI document
(``docs/openapi/telematics-v1.json``, see ``telematics_schema``); this module
adds what a schema cannot state (a timestamp's range against the clock) and
normalises. Every function returns plain values: ``(normalised, errors)`` where
errors is a list of ``{"field": ..., "message": ...}`` naming the failing JSON
path, so the HTTP layer can answer with them and the ledger can keep them.
"""

from datetime import datetime, timedelta, timezone

from . import telematics_schema

READING = telematics_schema.schema("Reading")
ALERT = telematics_schema.schema("Alert")
TIMESTAMP = telematics_schema.schema("Timestamp")
READING_BATCH_ENVELOPE = telematics_schema.envelope("ReadingBatch", "readings")
ALERT_BATCH_ENVELOPE = telematics_schema.envelope("AlertBatch", "alerts")
# The condition of the alerts request body: an object with "alerts" is a batch.
ALERT_BATCH_CONDITION = telematics_schema.Schema(
    "#/components/schemas/AlertRequest/if",
    telematics_schema.resolve("#/components/schemas/AlertRequest")["if"],
)

_READING_PROPERTIES = telematics_schema.resolve("#/components/schemas/Reading")["properties"]
_ALERT_READINGS = telematics_schema.resolve("#/components/schemas/Alert")["properties"]["readings"]
MAX_READINGS_PER_REQUEST = telematics_schema.resolve("#/components/schemas/ReadingBatch")[
    "properties"
]["readings"]["maxItems"]
FUTURE_TOLERANCE = timedelta(hours=24)
EARLIEST = datetime(1970, 1, 1)

# Canonical metrics (every reading property but the device, the time and the
# named sensor values, which are ``{name: number}``), and those an alert may carry.
READING_METRICS = tuple(
    key for key in _READING_PROPERTIES if key not in ("device_id", "at", "sensors")
)
ALERT_READING_METRICS = tuple(_ALERT_READINGS["properties"])


def error(field, message):
    return {"field": field, "message": message}


def parse_timestamp(value, now=None):
    """Parse an RFC 3339 timestamp into a naive UTC datetime, or raise ValueError.

    Beyond the schema's pattern: the time zone is applied, and the moment must
    lie between 1970-01-01 and 24 hours ahead of ``now`` (UTC, default: the clock).
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    if len(value) == 20 and value[19] in "Zz" and value[10] in "Tt":
        # The usual shape, 2026-11-20T08:15:00Z: read without its zone it is the
        # naive UTC moment already (a third of the time of the general path).
        try:
            parsed = datetime.fromisoformat(value[:19])
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            return _in_range(parsed, now)
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
    try:
        offset = parsed.utcoffset()
        if offset:
            parsed -= offset
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 or 9999-12-31T23:59:59-01:00: outside the calendar in UTC.
        raise ValueError("lies outside the calendar once converted to UTC") from None
    # Naive by combining the date and the (naive) time: replace(tzinfo=None) and
    # astimezone() cost four times as much, a tenth of receipt's CPU.
    return _in_range(datetime.combine(parsed.date(), parsed.time()), now)


def _in_range(parsed, now):
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if parsed < EARLIEST:
        raise ValueError("lies before 1970-01-01")
    if parsed > now + FUTURE_TOLERANCE:
        raise ValueError("lies more than 24 hours in the future")
    return parsed


def _timestamp(value, field, errors, now):
    try:
        return parse_timestamp(value, now)
    except ValueError as exc:
        errors.append(error(field, str(exc)))
        return None


def _prefix(path):
    return path.rstrip(".")


def parse_alert(obj, path="", now=None):
    """Validate one canonical alert. Returns ``(alert, errors)``."""
    if not ALERT.is_valid(obj):
        return None, ALERT.errors(obj, _prefix(path))
    errors = []
    occurred_at = _timestamp(obj["occurred_at"], f"{path}occurred_at", errors, now)
    if errors:
        return None, errors
    location = obj.get("location")
    readings = obj.get("readings") or {}
    alert = {
        "event_id": obj["event_id"],
        "device_id": obj["device_id"],
        "occurred_at": occurred_at,
        "code": obj["code"],
        "message": obj.get("message") or None,
        "severity": obj["severity"],
        "state": obj.get("state", "active"),
        "location": (
            {"lat": float(location["lat"]), "lon": float(location["lon"])} if location else None
        ),
        "readings": {key: float(value) for key, value in readings.items() if value is not None},
    }
    return alert, []


def parse_reading(obj, path="", now=None):
    """Validate one canonical reading. Returns ``(reading, errors)``."""
    if not READING.is_valid(obj):
        return None, READING.errors(obj, _prefix(path))
    errors = []
    at = _timestamp(obj["at"], f"{path}at", errors, now)
    if errors:
        return None, errors
    reading = {
        key: float(value)
        for key, value in obj.items()
        if value is not None and key != "device_id" and key != "at" and key != "sensors"
    }
    if ("lat" in reading) != ("lon" in reading):
        # Both keys are there (the schema's dependentRequired), one of them null:
        # half a position, which a later item of the same moment must not complete.
        missing = "lon" if "lat" in reading else "lat"
        return None, [error(f"{path}{missing}", "is null: lat and lon come together")]
    sensors = obj.get("sensors")
    if sensors:
        sensors = {name: float(value) for name, value in sensors.items() if value is not None}
        if sensors:
            reading["sensors"] = sensors
    reading["device_id"], reading["at"] = obj["device_id"], at
    return reading, []


def split_alerts(document):
    """The alert items of a request body: one object or ``{"alerts": [...]}``.

    Returns ``(items, error)``; items are not validated yet.
    """
    if ALERT_BATCH_CONDITION.is_valid(document):
        if not ALERT_BATCH_ENVELOPE.is_valid(document):
            return None, ALERT_BATCH_ENVELOPE.errors(document)[0]
        return document["alerts"], None
    if isinstance(document, dict):
        return [document], None
    return None, error("$", 'must be an alert object or {"alerts": [...]}')


def split_readings(document):
    """The reading items of ``{"readings": [...]}``; returns ``(items, error)``.

    Items are not validated yet: each is refused or accepted alone.
    """
    if not READING_BATCH_ENVELOPE.is_valid(document):
        found = READING_BATCH_ENVELOPE.errors(document)
        if found[0]["field"] == "$":
            return None, error("readings", 'is required: send {"readings": [...]}')
        return None, found[0]
    return document["readings"], None
