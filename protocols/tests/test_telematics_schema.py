"""The OpenAPI document as validator: compiled predicate, jsonschema and the door agree."""

import json
import unittest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import iso15143, safe_json, telematics_fuzz, telematics_payloads, telematics_schema

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
COMPONENTS = (
    "Reading",
    "Alert",
    "AlertRequest",
    "ReadingBatch",
    "IsoFleet",
    "Timestamp",
    "Identifier",
)


def _mutated(name):
    """Schema-valid values of ``name`` with one value replaced by a hostile one, or not."""

    @st.composite
    def build(draw):
        document = draw(telematics_fuzz.schema_strategy(name))
        if draw(st.booleans()):
            document = telematics_fuzz._replace_one_leaf(document, draw)
        return document

    return build()


class TestCompiledSchemas(unittest.TestCase):
    def test_every_request_schema_is_compiled(self):
        for name in COMPONENTS:
            self.assertTrue(telematics_schema.schema(name).compiled, name)

    def assertAgree(self, name):
        schema = telematics_schema.schema(name)

        @SETTINGS
        @given(st.one_of(_mutated(name), telematics_fuzz._json()))
        def agree(value):
            expected = schema.validator.is_valid(value)
            self.assertEqual(schema.is_valid(value), expected, json.dumps(value)[:300])
            self.assertEqual(bool(schema.errors(value)), not expected)

        agree()

    def test_compiled_and_jsonschema_agree_on_generated_values(self):
        self.assertAgree("Reading")
        self.assertAgree("Alert")

    def test_the_document_states_every_bound(self):
        reading = telematics_schema.resolve("#/components/schemas/Reading")
        for name in telematics_payloads.READING_METRICS:
            bounds = reading["properties"][name]
            self.assertIn("minimum", bounds, name)
            self.assertIn("maximum", bounds, name)
        self.assertIn(
            "24 hours", telematics_schema.resolve("#/components/schemas/Timestamp")["description"]
        )
        self.assertIn("At least one value", reading["description"])
        for name in ("Identifier", "Timestamp"):
            self.assertIn("maxLength", telematics_schema.resolve(f"#/components/schemas/{name}"))


class TestDoor(unittest.TestCase):
    def test_what_json_parsers_disagree_on_is_malformed(self):
        for body in (
            b'{"a": NaN}',
            b"[Infinity]",
            b"[-Infinity]",
            b"[" * 100000,
            b"\xff",
            b'{"a": 1',
        ):
            with self.assertRaises(safe_json.MalformedJSON, msg=body[:20]):
                safe_json.loads(body)

    def test_hostile_values_are_named(self):
        cases = [
            (b'{"a": [1e400]}', "a[0]", "out of range"),
            (b'{"a": {"b": ' + b"1" * 101 + b"}}", "a.b", "100 digits"),
            (b'{"a": "x\\u0000"}', "a", "U+0000"),
            (b'{"a": ["\\ud800"]}', "a[0]", "surrogate"),
            (b'{"\\udc00": 1}', "\\udc00", "surrogate"),
            (b"[" * 33 + b"]" * 33, "[0]" * 32, "deeper than 32"),
        ]
        for body, field, message in cases:
            hostile = safe_json.find_hostile(body, safe_json.loads(body))
            self.assertEqual(hostile[0], field, body[:40])
            self.assertIn(message, hostile[1])
        for body in (
            b'{"a": "\\\\u0000", "b": "\\ud83d\\ude00", "c": 1e300}',
            b"[" * 32 + b"]" * 32,
        ):
            self.assertIsNone(safe_json.find_hostile(body, safe_json.loads(body)), body[:40])

    def test_raw_bodies_are_stored_safely(self):
        self.assertEqual(safe_json.storable_raw_body(b'{"a": '), {"raw_body": '{"a": '})
        stored = safe_json.storable_raw_body(b'{"a": \x00\xff')
        self.assertNotIn("\x00", stored["raw_body"])
        self.assertEqual(stored["raw_body_base64"], "eyJhIjogAP8=")


class TestSemanticChecks(unittest.TestCase):
    def test_calendar_edges_are_refused_not_raised(self):
        for stamp in (
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "1969-12-31T23:59:59Z",
        ):
            with self.assertRaises(ValueError):
                telematics_payloads.parse_timestamp(stamp)

    def test_iso_values_take_the_reading_bounds(self):
        snapshot = {
            "Equipment": [
                {
                    "EquipmentHeader": {"PIN": "P" * 5000},
                    "Location": {"datetime": "2026-11-20T08:00:00Z", "Latitude": 1, "Longitude": 1},
                },
                {
                    "EquipmentHeader": {"PIN": "P1"},
                    "Location": {
                        "datetime": "2026-11-20T08:00:00Z",
                        "Latitude": 999,
                        "Longitude": 1,
                    },
                    "CumulativeOperatingHours": {"datetime": "2026-11-20T08:00:00Z", "Hour": -50},
                    "FuelRemaining": {"datetime": "2026-11-20T08:00:00Z", "Percent": 500},
                    "DEFRemaining": {"datetime": "2026-11-20T08:00:00Z", "Percent": 50},
                },
            ]
        }
        readings, errors, _left_out = iso15143.fleet_to_readings(snapshot)
        self.assertEqual([reading["def_level_pct"] for reading in readings], [50])
        self.assertEqual(
            {error["field"] for _index, error in errors},
            {
                "Equipment[0].EquipmentHeader.PIN",
                "Equipment[1].Location.Latitude",
                "Equipment[1].CumulativeOperatingHours.Hour",
                "Equipment[1].FuelRemaining.Percent",
            },
        )
