"""Property-based requests against the telematics API, drawn from its OpenAPI document.

Shared by the suite's bounded fuzz test (``tests/test_telematics_fuzz.py``) and
the long run against a live server (``bench/telematics_fuzz.py``). Needs the
development requirements (hypothesis, hypothesis-jsonschema); the addon itself
never imports this module.

A request is ``(path, body bytes, headers)``. Bodies mix: documents valid by
the request schemas (hypothesis-jsonschema), valid documents with one value
replaced by a hostile one, documents with hostile JSON text spliced in (NaN,
1e400, 400-digit integers, NUL, lone surrogates, deep nesting, timestamps at
the calendar edges), arbitrary JSON, and arbitrary bytes.
"""

import functools
import json
from datetime import datetime

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from . import telematics_schema

PATHS = ("alerts", "readings", "iso15143/fleet")
MAPPED_DEVICE = "DEV-1"
_SKIPPED = ("description", "example", "examples", "default")
_DECODER = json.JSONDecoder()

# Valid-looking JSON text that the rest of the chain must not see unchecked.
HOSTILE_TEXT = (
    "NaN",
    "-Infinity",
    "1e400",
    "-1e400",
    "1" * 400,
    "-" + "9" * 120,
    "1" + "0" * 99,
    "1e308",
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"\\udfff x"',
    '"\\ud83d\\ude00"',
    '"0001-01-01T00:00:00+01:00"',
    '"9999-12-31T23:59:59-01:00"',
    '"0001-01-01T00:00:00Z"',
    '"9999-12-31T23:59:59Z"',
    '"1969-12-31T23:59:59Z"',
    '"2026-11-20T08:00:00+24:00"',
    '"2026-02-30T08:00:00Z"',
    '"' + "x" * 5000 + '"',
    "[" * 40 + "]" * 40,
    '{"a":' * 40 + "1" + "}" * 40,
    "[" * 2000 + "]" * 2000,
    "true",
    "null",
    "-0",
    "0.0000000000000000000000000000001",
)
HOSTILE_VALUES = (
    999,
    -50,
    500,
    -0.0,
    1e308,
    10**300,
    -(10**30),
    "",
    " ",
    "x" * 5000,
    "\u202e",
    "😀",
    None,
    True,
    [],
    {},
    "2026-11-20T08:00:00",
    "2099-01-01T00:00:00Z",
    "P99999999999D",
    "12:99",
)

# What a machine may show after any input: the fuzzers check every machine against it.
BOUNDS = {
    "telematics_latitude": (-90, 90),
    "telematics_longitude": (-180, 180),
    "fuel_level_pct": (0, 100),
    "engine_hours": (0, 1_000_000),
    "idle_hours": (0, 1_000_000),
    "odometer_km": (0, 100_000_000),
}


def _inline(node, max_items):
    """A schema with its references inlined and annotations dropped, for the generator."""
    if isinstance(node, list):
        return [_inline(item, max_items) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(telematics_schema.resolve(node["$ref"]), max_items)
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return {"allOf": [target, _inline(rest, max_items)]} if rest else target
    out = {}
    for key, value in node.items():
        if key.startswith("x-") or key in _SKIPPED:
            continue
        if key == "maxItems":
            value = min(value, max_items)
        if key in ("properties", "dependentRequired"):
            out[key] = {name: _inline(sub, max_items) for name, sub in value.items()}
        else:
            out[key] = _inline(value, max_items)
    return out


def schema_strategy(name, max_items=3):
    return from_schema(
        _inline(telematics_schema.resolve(f"#/components/schemas/{name}"), max_items)
    )


RECENT = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 11, 1)).map(
    lambda moment: moment.replace(microsecond=0).isoformat() + "Z"
)


def _plausible(document, draw, mapped):
    """Recent timestamps (generated ones span years 1 to 9999, mostly refused), and
    optionally the machine the run maps, so that values reach it when valid."""
    if not isinstance(document, dict):
        return document
    items = document.get("readings") or document.get("alerts") or [document]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        for key in ("at", "occurred_at"):
            if key in item:
                item[key] = draw(RECENT)
        if mapped and "device_id" in item:
            item["device_id"] = MAPPED_DEVICE
    return document


@st.composite
def iso_fleet(draw):
    """ISO 15143-3 snapshots: plausible shapes, any values."""
    value = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(),
        st.sampled_from(HOSTILE_VALUES),
        st.text(max_size=10),
    )
    stamp = st.one_of(
        st.sampled_from(
            ["2026-11-20T08:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
        ),
        st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
        st.text(max_size=8),
    )
    elements = {
        "Location": ("Latitude", "Longitude"),
        "CumulativeOperatingHours": ("Hour",),
        "CumulativeIdleHours": ("Hour",),
        "Distance": ("Odometer", "OdometerUnits"),
        "FuelRemaining": ("Percent",),
        "DEFRemaining": ("Percent",),
        "FuelUsed": ("FuelConsumed", "FuelUnits"),
    }
    equipment = []
    for _ in range(draw(st.integers(0, 3))):
        machine = {
            "EquipmentHeader": {
                draw(st.sampled_from(["PIN", "SerialNumber", "EquipmentID", "pin"])): draw(
                    st.one_of(st.just(MAPPED_DEVICE), st.text(max_size=5), st.just("x" * 5000))
                )
            }
        }
        for name in draw(st.lists(st.sampled_from(sorted(elements)), max_size=4, unique=True)):
            element = {"datetime": draw(stamp)}
            for child in elements[name]:
                element[child] = draw(value)
            machine[name] = element
        equipment.append(machine)
    page = {"version": "1", "snapshotTime": "2026-11-20T09:00:00Z", "Equipment": equipment}
    return [page] if draw(st.booleans()) else page


def _json(max_leaves=10):
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=max_leaves,
    )


@functools.cache
def valid_documents(path):
    if path == "alerts":
        return st.one_of(schema_strategy("Alert"), schema_strategy("AlertBatch"))
    if path == "readings":
        return st.lists(schema_strategy("Reading"), min_size=1, max_size=3).map(
            lambda items: {"readings": items}
        )
    return iso_fleet()


def _replace_one_leaf(document, draw):
    """``document`` with one value (or key's value) replaced by a hostile value."""
    containers = []
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            containers.extend((value, key) for key in value)
            stack.extend(value.values())
        elif isinstance(value, list):
            containers.extend((value, index) for index in range(len(value)))
            stack.extend(value)
    if containers:
        container, key = draw(st.sampled_from(containers))
        container[key] = draw(st.sampled_from(HOSTILE_VALUES))
    return document


@st.composite
def bodies(draw, path):
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "recent",
                "mapped",
                "mapped",
                "hostile value",
                "hostile text",
                "json",
                "bytes",
            ]
        )
    )
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(_json())).encode()
    document = draw(valid_documents(path))
    if kind in ("recent", "mapped", "hostile value", "hostile text"):
        document = _plausible(document, draw, mapped=kind != "recent")
    if kind == "hostile value":
        document = _replace_one_leaf(document, draw)
    text = json.dumps(document)
    if kind == "hostile text":
        # Replace one value of the JSON text (after a ": ") by a hostile literal.
        spots = [index + 2 for index in range(len(text) - 1) if text[index : index + 2] == ": "]
        if spots:
            spot = draw(st.sampled_from(spots))
            _value, end = _DECODER.raw_decode(text, spot)
            text = text[:spot] + draw(st.sampled_from(HOSTILE_TEXT)) + text[end:]
    return text.encode("utf-8", "surrogatepass")


@st.composite
def requests(draw, paths=PATHS):
    """``(path, body, headers)`` of one request, authorisation left to the caller."""
    path = draw(st.sampled_from(paths))
    body = draw(bodies(path))
    headers = {
        "Content-Type": draw(
            st.sampled_from(["application/json"] * 8 + ["application/vnd.x+json", "text/plain", ""])
        )
    }
    if draw(st.integers(0, 9)) == 0:
        headers["Idempotency-Key"] = draw(
            st.one_of(
                st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=20),
                st.just("k" * 300),
            )
        )
    return path, body, headers
