"""Plain-Python tests of the telematics protocol modules (no database)."""

import unittest
from datetime import datetime

from protocols import (
    iso15143,
    telematics_auth,
    telematics_payloads,
)

NOW = datetime(2026, 11, 20, 12, 0, 0)
ALERT = {
    "event_id": "evt-1",
    "device_id": "DEV-1",
    "occurred_at": "2026-11-20T09:15:00+01:00",
    "severity": "critical",
    "code": "SPN110-FMI0",
    "message": "Coolant hot",
}


class TestAuth(unittest.TestCase):
    def test_key_round_trip(self):
        key, prefix, key_hash = telematics_auth.generate_api_key()
        self.assertEqual(telematics_auth.key_prefix(key), prefix)
        self.assertTrue(telematics_auth.key_matches(key, key_hash))
        self.assertFalse(telematics_auth.key_matches(key + "x", key_hash))
        self.assertNotIn(key.split("_", 2)[2], key_hash)

    def test_malformed_keys_have_no_prefix(self):
        for key in ("", "cas_", "cas_abc_x", "other_12345678_x", "cas_12345678_"):
            self.assertIsNone(telematics_auth.key_prefix(key), key)

    def test_bearer_header(self):
        self.assertEqual(telematics_auth.bearer_token("Bearer abc"), "abc")
        self.assertEqual(telematics_auth.bearer_token("bearer  abc "), "abc")
        self.assertIsNone(telematics_auth.bearer_token("Basic abc"))
        self.assertIsNone(telematics_auth.bearer_token(None))

    def test_signature_accepts_either_active_secret(self):
        body = b'{"a": 1}'
        for secret in ("old", "new"):
            signature = telematics_auth.sign(secret, 1000, body)
            telematics_auth.verify_signature(["old", "new"], "1000", signature, body, now=1100)

    def test_signature_refusals_say_why(self):
        body = b"{}"
        good = telematics_auth.sign("s", 1000, body)
        cases = [
            ((None, good), "Timestamp header is missing"),
            (("1000", None), "Signature header is missing"),
            (("soon", good), "unix seconds"),
            (("1000", telematics_auth.sign("other", 1000, body)), "does not match"),
            (("1000", telematics_auth.sign("s", 1000, b"{ }")), "does not match"),
        ]
        for (stamp, signature), reason in cases:
            with self.assertRaisesRegex(telematics_auth.SignatureError, reason):
                telematics_auth.verify_signature(["s"], stamp, signature, body, now=1000)
        with self.assertRaisesRegex(telematics_auth.SignatureError, "300 s away"):
            telematics_auth.verify_signature(["s"], "1000", good, body, now=1301)


class TestPayloads(unittest.TestCase):
    def test_alert_is_normalised_to_utc(self):
        alert, errors = telematics_payloads.parse_alert(ALERT, now=NOW)
        self.assertEqual(errors, [])
        self.assertEqual(alert["occurred_at"], datetime(2026, 11, 20, 8, 15))
        self.assertEqual(alert["state"], "active")

    def test_alert_errors_name_each_field(self):
        bad = dict(ALERT, severity="fatal", occurred_at="yesterday", location={"lat": 91, "lon": 0})
        del bad["event_id"]
        _alert, errors = telematics_payloads.parse_alert(bad, now=NOW)
        fields = {error["field"] for error in errors}
        self.assertEqual(fields, {"event_id", "severity", "occurred_at", "location.lat"})

    def test_naive_and_future_timestamps_are_refused(self):
        for stamp, message in (
            ("2026-11-20T08:00:00", "time zone"),
            ("2026-11-22T08:00:00Z", "future"),
            ("2026-11-20", "time zone"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                telematics_payloads.parse_timestamp(stamp, NOW)

    def test_timestamps_are_converted_to_utc_across_days_and_calendar_ends(self):
        cases = {
            "2026-11-20T08:00:00Z": datetime(2026, 11, 20, 8, 0),
            "2026-11-20t08:00:00z": datetime(2026, 11, 20, 8, 0),
            "2026-11-20T08:00:00.250+00:00": datetime(2026, 11, 20, 8, 0, 0, 250000),
            "2026-01-01T00:30:00+05:30": datetime(2025, 12, 31, 19, 0),
            "2024-02-28T23:30:00-01:00": datetime(2024, 2, 29, 0, 30),
            "2025-12-31T14:00:00-12:00": datetime(2026, 1, 1, 2, 0),
            "2026-11-20T23:59:59.999999+14:00": datetime(2026, 11, 20, 9, 59, 59, 999999),
        }
        for stamp, expected in cases.items():
            self.assertEqual(telematics_payloads.parse_timestamp(stamp, NOW), expected, stamp)
        for stamp, message in (
            ("0001-01-01T00:00:00+01:00", "outside the calendar"),
            ("9999-12-31T23:59:59-01:00", "outside the calendar"),
            ("1970-01-01T00:30:00+01:00", "before 1970"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                telematics_payloads.parse_timestamp(stamp, NOW)

    def test_a_utc_timestamp_reads_the_same_written_with_z_or_with_its_offset(self):
        for stamp in (
            "2026-11-20T08:15:00Z",
            "2026-11-20t08:15:00z",
            "2024-02-29T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2026-11-20T08:15:00.5Z",
            "2026-11-20T08:15:00.123456Z",
        ):
            with_offset = stamp[:-1] + "+00:00"
            self.assertEqual(
                telematics_payloads.parse_timestamp(stamp, NOW),
                telematics_payloads.parse_timestamp(with_offset, NOW),
                stamp,
            )
        for stamp, message in (
            ("2026-11-20T08:15+01Z", "RFC 3339 timestamp"),
            ("2026-11-20 08:15:00Z", "with a time zone"),
            ("2026-11-20T25:15:00Z", "RFC 3339 timestamp"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("2026-11-22T08:15:00Z", "future"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                telematics_payloads.parse_timestamp(stamp, NOW)

    def test_reading_needs_a_value_and_known_fields(self):
        _r, errors = telematics_payloads.parse_reading(
            {"device_id": "D", "at": "2026-11-20T08:00:00Z"}
        )
        self.assertEqual(errors[0]["field"], "$")
        _r, errors = telematics_payloads.parse_reading(
            {"device_id": "D", "at": "2026-11-20T08:00:00Z", "rpm": 3, "fuel_level_pct": 120}
        )
        self.assertEqual({e["field"] for e in errors}, {"rpm", "fuel_level_pct"})
        _r, errors = telematics_payloads.parse_reading(
            {"device_id": "D", "at": "2026-11-20T08:00:00Z", "engine_hours": True}
        )
        self.assertEqual(errors, [{"field": "engine_hours", "message": "must be a number"}])

    def test_half_a_position_is_refused_even_with_the_other_half_null(self):
        reading = {"device_id": "D", "at": "2026-11-20T08:00:00Z", "engine_hours": 5}
        for lat, lon, field in ((47.0, None, "[0].lon"), (None, 9.0, "[0].lat")):
            with self.subTest(lat=lat, lon=lon):
                parsed, errors = telematics_payloads.parse_reading(
                    dict(reading, lat=lat, lon=lon), "[0]."
                )
                self.assertIsNone(parsed)
                self.assertEqual(errors[0]["field"], field)
        parsed, errors = telematics_payloads.parse_reading(dict(reading, lat=None, lon=None))
        self.assertEqual((errors, "lat" in parsed), ([], False))

    def test_readings_batch_is_capped(self):
        items, error = telematics_payloads.split_readings({"readings": [{}] * 5001})
        self.assertIsNone(items)
        self.assertIn("at most 5000", error["message"])


class TestIso15143(unittest.TestCase):
    def test_elements_group_by_their_own_timestamp(self):
        snapshot = [
            {
                "version": "1",
                "Equipment": [
                    {
                        "EquipmentHeader": {"PIN": "missing", "SerialNumber": "SN-1"},
                        "Location": {
                            "datetime": "2026-11-20T08:00:00Z",
                            "Latitude": 48.1,
                            "Longitude": 2.2,
                        },
                        "cumulativeOperatingHours": {
                            "datetime": "2026-11-20T08:00:00Z",
                            "hour": "PT13H30M",
                        },
                        "Distance": {
                            "datetime": "2026-11-19T18:00:00Z",
                            "OdometerUnits": "miles",
                            "Odometer": 100,
                        },
                        "FuelUsed": {
                            "datetime": "2026-11-19T18:00:00Z",
                            "FuelUnits": "gallon",
                            "FuelConsumed": 10,
                        },
                        "CumulativeLoadCount": {"datetime": "2026-11-19T18:00:00Z", "Count": 9},
                    },
                    {"EquipmentHeader": {"PIN": "N/A"}},
                ],
            }
        ]
        readings, errors, _left_out = iso15143.fleet_to_readings(snapshot, now=NOW)
        self.assertEqual([index for index, _e in errors], [1])
        self.assertEqual(len(readings), 2)
        older, newer = readings
        self.assertEqual(older["device_id"], "SN-1")
        self.assertAlmostEqual(older["odometer_km"], 160.9344)
        self.assertAlmostEqual(older["fuel_used_l"], 37.85411784)
        self.assertEqual(newer["engine_hours"], 13.5)
        self.assertEqual((newer["lat"], newer["lon"]), (48.1, 2.2))

    def test_an_element_holding_a_placeholder_is_absent_not_an_error(self):
        # The reference (1.9): "missing", "N/A", empty strings and nulls stand for no value.
        at = "2026-11-20T08:00:00Z"
        machine = {
            "EquipmentHeader": {"SerialNumber": "SN-1"},
            "CumulativeOperatingHours": {"datetime": at, "Hour": 120.5},
            "DEFRemaining": {"datetime": at, "Percent": None},
            "Distance": {"datetime": at, "OdometerUnits": "kilometre", "Odometer": "N/A"},
            "FuelRemaining": {"datetime": at, "Percent": "missing"},
            "FuelUsed": {"datetime": at, "FuelUnits": "litre", "FuelConsumed": ""},
            "Location": {"datetime": at, "Latitude": "N/A", "Longitude": "N/A"},
            "CumulativeIdleHours": {"datetime": at, "Hour": None},
        }
        readings, errors, _left_out = iso15143.fleet_to_readings({"Equipment": [machine]}, now=NOW)
        self.assertEqual(errors, [])
        expected = {"device_id": "SN-1", "at": datetime(2026, 11, 20, 8), "_index": 0}
        self.assertEqual(readings, [expected | {"engine_hours": 120.5}])
        # A machine holding nothing but placeholders gives no reading, and no error.
        only = {
            "EquipmentHeader": {"PIN": "P1"},
            "FuelRemaining": {"datetime": at, "Percent": None},
        }
        self.assertEqual(iso15143.fleet_to_readings({"Equipment": [only]}, now=NOW), ([], [], []))
        # Half a position is no position, and a word is still an error.
        half = {
            "EquipmentHeader": {"PIN": "P2"},
            "Location": {"datetime": at, "Latitude": 48.1, "Longitude": "N/A"},
            "FuelRemaining": {"datetime": at, "Percent": "lots"},
        }
        readings, errors, _left_out = iso15143.fleet_to_readings({"Equipment": [half]}, now=NOW)
        self.assertEqual(readings, [])
        self.assertEqual(
            sorted(e["field"] for _i, e in errors),
            ["Equipment[0].FuelRemaining", "Equipment[0].Location"],
        )

    def test_an_iso_time_without_a_zone_is_utc(self):
        # ISO 15143-3 times are UTC by definition; Bell's time series omit the Z in
        # some samples (reference 1.8). The canonical API still requires a zone.
        machine = {
            "EquipmentHeader": {"PIN": "P"},
            "CumulativeOperatingHours": {"datetime": "2026-11-20T08:00:00", "Hour": 5},
            "FuelRemaining": {"datetime": "2026-11-20T08:00:00.250", "Percent": 40},
        }
        readings, errors, _left_out = iso15143.fleet_to_readings({"Equipment": [machine]}, now=NOW)
        self.assertEqual(errors, [])
        self.assertEqual(
            [(r["at"], sorted(set(r) - {"device_id", "at", "_index"})) for r in readings],
            [
                (datetime(2026, 11, 20, 8), ["engine_hours"]),
                (datetime(2026, 11, 20, 8, 0, 0, 250000), ["fuel_level_pct"]),
            ],
        )

    def test_hours_formats(self):
        self.assertEqual(iso15143.parse_hours("P1DT2H"), 26.0)
        self.assertEqual(iso15143.parse_hours("12:30"), 12.5)
        self.assertEqual(iso15143.parse_hours("4218.5"), 4218.5)
        with self.assertRaises(ValueError):
            iso15143.parse_hours("lots")

    def test_an_unknown_unit_leaves_its_element_out_and_the_rest_comes_in(self):
        # Reference 1.8: spellings vary and a .NET exporter serialises unit enums as
        # numbers; "unknown unit -> store raw, don't convert". The value is never a km
        # or litre figure it is not: it is left out, named with its unit, kept as sent.
        at = "2026-11-20T08:00:00Z"
        distance = {"datetime": at, "OdometerUnits": "furlong", "Odometer": 8}
        fuel = {"datetime": at, "fuelUnits": 3, "FuelConsumed": 1200}
        machine = {
            "EquipmentHeader": {"PIN": "P"},
            "CumulativeOperatingHours": {"datetime": at, "Hour": 120},
            "Distance": distance,
            "FuelUsed": fuel,
            "FuelRemaining": {"datetime": at, "Percent": 40},
            "Location": {"datetime": at, "Latitude": 48.1, "Longitude": 2.2},
        }
        readings, errors, left_out = iso15143.fleet_to_readings({"Equipment": [machine]}, now=NOW)
        self.assertEqual(errors, [])
        self.assertEqual(
            readings,
            [
                {
                    "device_id": "P",
                    "at": datetime(2026, 11, 20, 8),
                    "_index": 0,
                    "engine_hours": 120.0,
                    "fuel_level_pct": 40.0,
                    "lat": 48.1,
                    "lon": 2.2,
                }
            ],
        )
        self.assertEqual(
            left_out,
            [
                (
                    0,
                    "P",
                    {
                        "field": "Equipment[0].Distance.OdometerUnits",
                        "message": 'is "furlong", an unknown unit: the Distance value was '
                        "left out, not converted",
                        "element": distance,
                    },
                ),
                (
                    0,
                    "P",
                    {
                        "field": "Equipment[0].FuelUsed.fuelUnits",
                        "message": "is 3, an unknown unit: the FuelUsed value was left out, "
                        "not converted",
                        "element": fuel,
                    },
                ),
            ],
        )
        # A machine with nothing else still has its element kept, and no error.
        only = {"EquipmentHeader": {"PIN": "Q"}, "Distance": dict(distance, OdometerUnits=7)}
        readings, errors, left_out = iso15143.fleet_to_readings({"Equipment": [only]}, now=NOW)
        self.assertEqual((readings, errors), ([], []))
        self.assertEqual(
            [(i, device, note["field"]) for i, device, note in left_out],
            [(0, "Q", "Equipment[0].Distance.OdometerUnits")],
        )
        # Known spellings still convert, and a placeholder value leaves nothing out.
        known = {
            "EquipmentHeader": {"PIN": "R"},
            "Distance": {"datetime": at, "OdometerUnits": " MILES ", "Odometer": 10},
            "FuelUsed": {"datetime": at, "FuelUnits": 9, "FuelConsumed": "N/A"},
        }
        readings, errors, left_out = iso15143.fleet_to_readings({"Equipment": [known]}, now=NOW)
        self.assertEqual((errors, left_out), ([], []))
        self.assertAlmostEqual(readings[0]["odometer_km"], 16.09344)

    def test_an_empty_page_is_a_valid_result_without_readings_or_errors(self):
        # The reference: an out-of-range page is an empty Equipment list, or [] (Bosch).
        empty_pages = [
            {"version": "1", "Links": [], "Equipment": []},
            [{"Equipment": [], "links": []}],
            [],
            {"Fleet": {"Equipment": []}},
        ]
        for page in empty_pages:
            with self.subTest(page=page):
                self.assertEqual(iso15143.fleet_to_readings(page, now=NOW), ([], [], []))
                self.assertEqual(iso15143.equipment_list_of(page), [])

    def test_numbers_for_version_and_time_a_lone_machine_and_a_null_fleet(self):
        # Senders serialise the header attributes as numbers, an XML-to-JSON gateway
        # makes a lone repeated <Equipment> an object and <Fleet/> null (reference 1.9:
        # an empty result is valid, not an error).
        machine = {
            "EquipmentHeader": {"PIN": "P1"},
            "CumulativeOperatingHours": {"datetime": "2026-11-20T08:00:00Z", "Hour": 12},
        }
        pages = [
            {"version": 2, "snapshotTime": 1795680000, "Equipment": [machine]},
            {"version": 2.0, "snapshotTime": "2026-11-20T09:00:00Z", "Equipment": machine},
            {"Fleet": {"version": 1, "Equipment": machine}},
            [{"Equipment": machine, "links": []}],
        ]
        for page in pages:
            with self.subTest(page=page):
                readings, errors, _left_out = iso15143.fleet_to_readings(page, now=NOW)
                self.assertEqual(errors, [])
                self.assertEqual([r["engine_hours"] for r in readings], [12])
                self.assertEqual(iso15143.equipment_list_of(page), [machine])
        for page in (
            {"Fleet": None},
            {"fleet": None},
            {"Fleet": ""},
            {"Fleet": {"version": "1"}},
            {"version": "1", "snapshotTime": "2026-11-20T09:00:00Z", "Links": []},
        ):
            with self.subTest(page=page):
                self.assertEqual(iso15143.fleet_to_readings(page, now=NOW), ([], [], []))
                self.assertEqual(iso15143.equipment_list_of(page), [])
        # What is no fleet page at all stays refused, naming the field.
        for page in ({}, {"readings": []}, {"Fleet": "x"}, {"Equipment": "x"}, {"version": [1]}):
            with self.subTest(page=page):
                readings, errors, _left_out = iso15143.fleet_to_readings(page, now=NOW)
                self.assertEqual(readings, [])
                self.assertTrue(errors)
                self.assertTrue(all(index is None and error["field"] for index, error in errors))

    def test_a_page_of_invalid_machines_still_names_each_of_them(self):
        page = {"Links": [], "Equipment": [{"EquipmentHeader": {"PIN": "N/A"}}, "machine"]}
        readings, errors, _left_out = iso15143.fleet_to_readings(page, now=NOW)
        self.assertEqual(readings, [])
        self.assertEqual([index for index, _error in errors], [0, 1])

    def test_links_are_never_checked_whatever_their_shape_or_key_case(self):
        # XML to JSON makes a lone repeated <Links> an object, and <Links/> null or "".
        machine = {
            "EquipmentHeader": {"PIN": "P1"},
            "CumulativeOperatingHours": {"datetime": "2026-11-20T08:00:00Z", "Hour": 12},
        }
        next_page = {"rel": "next", "href": "/Fleet/2"}
        for key in ("Links", "links", "LINKS"):
            for links in ([next_page], [], next_page, None, ""):
                page = {"version": "1", key: links, "Equipment": [machine]}
                for document in (page, [page], {"Fleet": page}):
                    with self.subTest(document=document):
                        readings, errors, _left_out = iso15143.fleet_to_readings(document, now=NOW)
                        self.assertEqual(errors, [])
                        self.assertEqual([r["engine_hours"] for r in readings], [12])
        readings, errors, _left_out = iso15143.fleet_to_readings({"Equipment": [machine]}, now=NOW)
        self.assertEqual((len(readings), errors), (1, []))
