import hashlib
import json
from pathlib import Path

from odoo.tests import HttpCase, tagged

from .telematics_common import (
    TelematicsHttpMixin,
    alert,
    dumps,
    iso_snapshot,
    make_fleet,
    process_all,
    signed_headers,
)


@tagged("post_install", "-at_install")
class TestTelematicsHttp(TelematicsHttpMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]

    def events(self, **domain):
        return self.Event.with_context(active_test=False).search(
            [("source_id", "=", self.source.id)] + [(k, "=", v) for k, v in domain.items()]
        )

    # -- statuses -------------------------------------------------------
    def test_the_ledger_keeps_each_item_as_sent_whatever_its_characters(self):
        item = alert(
            message='Überhitzung 105 °C ✓ "quoted" \\ back\tslash', extra={"a": [1.5, None]}
        )
        readings = {
            "readings": [
                {"device_id": "DEV-1", "at": "2026-11-20T08:00:00Z", "engine_hours": 1e-3},
                {
                    "device_id": "DEV-1",
                    "at": "2026-11-20T08:01:00+01:00",
                    "lat": -33.8688197,
                    "lon": 151.2092955,
                },
            ]
        }
        self.assertEqual(self.post("alerts", dumps(item)).status_code, 202)
        self.assertEqual(self.post("readings", dumps(readings)).status_code, 202)
        kept = self.events(kind="alert")
        self.assertEqual(kept.payload, item)
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))
        self.assertEqual(kept.payload_sha256, hashlib.sha256(canonical.encode()).hexdigest())
        self.assertEqual(
            self.events(kind="readings").payload,
            {
                "device_id": "DEV-1",
                "readings": [
                    {"at": "2026-11-20T07:01:00", "lat": -33.8688197, "lon": 151.2092955},
                    {"at": "2026-11-20T08:00:00", "engine_hours": 0.001},
                ],
            },
        )

    def test_alert_is_accepted_stored_and_becomes_a_request(self):
        response = self.post("alerts", dumps(alert()))
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(response.json(), {"accepted": 1, "duplicates": 0, "rejected": []})
        event = self.events(kind="alert")
        self.assertEqual(event.state, "pending")
        self.assertEqual(event.payload["event_id"], "evt-1")
        self.assertEqual(event.channel, "http")
        self.Event._process_batch()
        self.assertEqual(event.state, "processed")
        request = event.request_id
        self.assertEqual(request.equipment_id, self.equipment)
        self.assertEqual(request.priority, "3")
        self.assertTrue(request.to_review)
        self.assertEqual(self.equipment.last_fault_code, "SPN110-FMI0")

    def test_list_of_alerts_reports_each_invalid_item(self):
        body = {
            "alerts": [
                alert(event_id="a"),
                alert(event_id="b", severity="bad"),
                alert(event_id="c"),
            ]
        }
        response = self.post("alerts", dumps(body))
        self.assertEqual(response.status_code, 202)
        answer = response.json()
        self.assertEqual(answer["accepted"], 2)
        self.assertEqual(
            answer["rejected"],
            [
                {
                    "index": 1,
                    "errors": [
                        {"field": "severity", "message": "must be one of info, warning, critical"}
                    ],
                }
            ],
        )
        rejected = self.events(state="rejected")
        self.assertEqual(rejected.payload["event_id"], "b")
        self.assertEqual(rejected.validation_errors[0]["field"], "severity")

    def test_malformed_json_is_400_and_kept(self):
        body = self.assertProblem(self.post("alerts", b'{"event_id": '), 400, "$")
        self.assertIn("not valid JSON", body["detail"])
        kept = self.events(state="rejected")
        self.assertEqual(kept.payload, {"raw_body": '{"event_id": '})

    def test_bad_or_missing_key_is_401_and_writes_nothing(self):
        for key in ("", "cas_00000000_nope", self.key + "x", "Basic"):
            self.assertProblem(self.post("alerts", dumps(alert()), key=key), 401)
        self.assertFalse(self.events())

    def test_archived_source_key_stops_working(self):
        self.source.active = False
        self.assertProblem(self.post("alerts", dumps(alert())), 401)

    def test_body_over_the_limit_is_413(self):
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_max_body_mb", "0.001"
        )
        big = dumps({"alerts": [alert(event_id=f"e{i}") for i in range(20)]})
        self.assertGreater(len(big), 1049)
        self.assertProblem(self.post("alerts", big), 413, "$")
        self.assertFalse(self.events())

    def test_wrong_content_type_is_415(self):
        self.assertProblem(
            self.post("alerts", dumps(alert()), content_type="text/plain"), 415, "Content-Type"
        )

    def test_every_item_invalid_is_422_naming_fields(self):
        body = self.assertProblem(
            self.post("alerts", dumps({"alerts": [alert(occurred_at="soon"), {"x": 1}]})), 422
        )
        fields = {error["field"] for error in body["errors"]}
        self.assertIn("[0].occurred_at", fields)
        self.assertIn("[1].event_id", fields)
        self.assertEqual(len(self.events(state="rejected")), 2)

    def test_structurally_wrong_readings_are_422(self):
        self.assertProblem(self.post("readings", dumps({"reading": []})), 422, "readings")
        over = {
            "readings": [{"device_id": "DEV-1", "at": "2026-11-20T08:00:00Z", "engine_hours": 1}]
            * 5001
        }
        self.assertProblem(self.post("readings", dumps(over)), 422, "readings")

    # -- idempotency ----------------------------------------------------
    def test_resent_event_id_is_a_duplicate_with_nothing_created_twice(self):
        self.post("alerts", dumps(alert()))
        self.Event._process_batch()
        again = self.post("alerts", dumps(alert(message="resent")))
        self.assertEqual(again.status_code, 202)
        self.assertEqual(again.json(), {"accepted": 0, "duplicates": 1, "rejected": []})
        self.Event._process_batch()
        self.assertEqual(len(self.events(kind="alert")), 1)
        requests = self.env["maintenance.request"].search(
            [("equipment_id", "=", self.equipment.id)]
        )
        self.assertEqual(len(requests), 1)
        self.assertEqual(requests.alert_repeat_count, 1)

    def test_idempotency_key_replays_the_first_answer(self):
        headers = {"Idempotency-Key": '"req-42"'}
        body = dumps({"alerts": [alert(event_id="x1"), alert(event_id="x2", code="")]})
        first = self.post("alerts", body, headers=headers)
        second = self.post("alerts", body, headers=headers)
        self.assertEqual(first.status_code, 202)
        self.assertEqual(second.status_code, 202)
        self.assertEqual(first.json(), second.json())
        self.assertEqual(first.json()["accepted"], 1)
        other = self.post("alerts", dumps(alert(event_id="x3")), headers=headers)
        self.assertProblem(other, 422, "Idempotency-Key")
        self.assertFalse(self.events(dedupe_key="alert:x3"))

    # -- signatures -----------------------------------------------------
    def test_signatures_valid_wrong_stale_and_rotated(self):
        self.source.hmac_secret = "current-secret"
        body = dumps(alert(event_id="signed-1"))
        ok = self.post("alerts", body, headers=signed_headers("current-secret", body))
        self.assertEqual(ok.status_code, 202, ok.text)

        wrong = self.post("alerts", body, headers=signed_headers("guess", body))
        self.assertIn("does not match", self.assertProblem(wrong, 401)["detail"])
        missing = self.post("alerts", dumps(alert(event_id="unsigned")))
        self.assertIn("missing", self.assertProblem(missing, 401)["detail"])
        import time

        stale_headers = signed_headers("current-secret", body, timestamp=int(time.time()) - 301)
        self.assertIn(
            "300 s",
            self.assertProblem(self.post("alerts", body, headers=stale_headers), 401)["detail"],
        )

        # Rotation: both secrets work, then only the new one.
        self.source.hmac_secret_next = "next-secret"
        body2 = dumps(alert(event_id="signed-2"))
        self.assertEqual(
            self.post("alerts", body2, headers=signed_headers("next-secret", body2)).status_code,
            202,
        )
        body3 = dumps(alert(event_id="signed-3"))
        self.assertEqual(
            self.post("alerts", body3, headers=signed_headers("current-secret", body3)).status_code,
            202,
        )
        self.source.action_promote_next_secret()
        body4 = dumps(alert(event_id="signed-4"))
        self.assertProblem(
            self.post("alerts", body4, headers=signed_headers("current-secret", body4)), 401
        )
        self.assertEqual(
            self.post("alerts", body4, headers=signed_headers("next-secret", body4)).status_code,
            202,
        )
        self.assertEqual(len(self.events(kind="alert")), 4)

    # -- unmapped devices -------------------------------------------------
    def test_unmapped_device_waits_then_processes_once_mapped(self):
        response = self.post("alerts", dumps(alert(device_id="NEW-7", event_id="u1")))
        self.assertEqual(response.status_code, 202)
        self.Event._process_batch()
        event = self.events(dedupe_key="alert:u1")
        self.assertEqual(event.state, "unmapped")
        self.assertFalse(event.request_id)
        machine = self.env["maintenance.equipment"].create({"name": "Dozer"})
        self.env["construction.external.id"].create(
            {
                "system_id": self.source.external_system_id.id,
                "external_id": "NEW-7",
                "equipment_id": machine.id,
            }
        )
        self.assertEqual(event.state, "pending")
        self.Event._process_batch()
        self.assertEqual(event.state, "processed")
        self.assertEqual(event.request_id.equipment_id, machine)

    # -- readings and ISO ---------------------------------------------------
    def test_readings_batch_is_stored_deduplicated_and_applied(self):
        readings = [
            {
                "device_id": "DEV-1",
                "at": f"2026-11-20T0{hour}:00:00Z",
                "engine_hours": 1000 + hour,
                "fuel_level_pct": 80 - hour,
            }
            for hour in range(5)
        ]
        readings.append(dict(readings[0]))  # same device and timestamp
        readings.append({"device_id": "DEV-1", "at": "2026-11-20T09:00:00Z", "fuel_level_pct": 101})
        answer = self.post("readings", dumps({"readings": readings})).json()
        self.assertEqual(answer["accepted"], 5)
        self.assertEqual(answer["duplicates"], 1)
        self.assertEqual(answer["rejected"][0]["index"], 6)
        again = self.post("readings", dumps({"readings": readings[:5]})).json()
        self.assertEqual((again["accepted"], again["duplicates"]), (0, 5))
        self.Event._process_batch()
        self.assertEqual(self.equipment.engine_hours, 1004)
        self.assertEqual(self.equipment.fuel_level_pct, 76)
        self.assertEqual(self.equipment.telematics_reading_count, 5)
        event = self.events(kind="readings", state="processed")
        self.assertEqual(event.reading_ids.mapped("event_id"), event)

    def test_iso15143_fleet_snapshot_maps_onto_readings(self):
        snapshot = {
            "version": "1",
            "snapshotTime": "2026-11-20T09:00:00Z",
            "Equipment": [
                {
                    "EquipmentHeader": {"OEMName": "CAT", "PIN": "DEV-1"},
                    "CumulativeOperatingHours": {
                        "datetime": "2026-11-20T08:59:00Z",
                        "Hour": 1500.25,
                    },
                    "Location": {
                        "datetime": "2026-11-20T08:59:00Z",
                        "Latitude": 48.8,
                        "Longitude": 2.3,
                    },
                    "Distance": {
                        "datetime": "2026-11-20T07:00:00Z",
                        "OdometerUnits": "kilometre",
                        "Odometer": 321,
                    },
                },
                {"EquipmentHeader": {}},
            ],
        }
        response = self.post("iso15143/fleet", dumps(snapshot))
        self.assertEqual(response.status_code, 202, response.text)
        answer = response.json()
        self.assertEqual(answer["accepted"], 2)
        self.assertEqual(answer["rejected"][0]["index"], 1)
        self.Event._process_batch()
        self.assertEqual(self.equipment.engine_hours, 1500.25)
        self.assertEqual(self.equipment.odometer_km, 321)
        self.assertAlmostEqual(self.equipment.telematics_latitude, 48.8)

    def attention_count(self):
        Health = self.env["construction.integration.health"]
        Health._check_all()
        return Health.search([("source_id", "=", self.source.id)]).attention_count

    def test_an_empty_iso15143_page_is_a_valid_result_that_keeps_nothing(self):
        """An out-of-range page (an empty Equipment list, Bosch's [] around no page),
        and machines carrying only elements the mapping ignores, answer 202 with
        nothing accepted: no rejected event, nothing for the health to count."""
        empty_pages = [
            {"version": "1", "Links": [], "Equipment": []},
            [{"Equipment": [], "links": []}],
            [],
            iso_snapshot(EngineStatus={"Running": True, "EngineNumber": "1"}),
            iso_snapshot(),  # a header and no data element yet
        ]
        for page in empty_pages:
            with self.subTest(page=page):
                response = self.post("iso15143/fleet", dumps(page))
                self.assertEqual(response.status_code, 202, response.text)
                self.assertEqual(response.headers["Content-Type"], "application/json")
                self.assertEqual(response.json(), {"accepted": 0, "duplicates": 0, "rejected": []})
        self.assertFalse(self.events())
        self.assertEqual(self.attention_count(), 0)

        # Bad input stays refused when no reading comes of the page: every machine
        # invalid, or an invalid one beside machines with nothing to map.
        nameless = {"EquipmentHeader": {"PIN": "N/A"}}
        engine_only = iso_snapshot(fleet=False, EngineStatus={"Running": False})["Equipment"][0]
        refused = [
            {"Links": [], "Equipment": [nameless]},
            {"Links": [], "Equipment": [engine_only, nameless]},
        ]
        for page in refused:
            with self.subTest(page=page):
                body = self.assertProblem(self.post("iso15143/fleet", dumps(page)), 422)
                self.assertEqual(
                    body["errors"][0]["message"], "needs a PIN, SerialNumber or EquipmentID"
                )
        self.assertCountEqual(self.events(state="rejected").mapped("payload"), refused)
        self.assertEqual(self.attention_count(), 2)

    def test_iso15143_placeholders_are_absent_values_and_zoneless_times_utc(self):
        """Reference 1.9: "N/A", "missing" and nulls stand for no value; ISO times are
        UTC even where a sender leaves the Z out. The hours come in, nothing is refused."""
        page = iso_snapshot(
            at="2026-11-20T08:59:00",
            CumulativeOperatingHours={"Hour": 1234.5},
            FuelRemaining={"Percent": "N/A"},
            DEFRemaining={"Percent": None},
            Location={"Latitude": "missing", "Longitude": "missing"},
        )
        response = self.post("iso15143/fleet", dumps(page))
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(response.json(), {"accepted": 1, "duplicates": 0, "rejected": []})
        self.assertFalse(self.events(state="rejected"))
        process_all(self.Event)
        self.assertEqual(self.equipment.engine_hours, 1234.5)
        self.assertEqual(str(self.equipment.engine_hours_at), "2026-11-20 08:59:00")
        self.assertFalse(self.equipment.telematics_position_at)

    def test_iso15143_links_may_be_one_object_or_null(self):
        """A gateway converting XML (a repeated <Links>) makes a lone link an object."""
        next_page = {"rel": "next", "href": "/Fleet/2"}

        def page(hour):
            return iso_snapshot(
                at=f"2026-11-20T{hour:02}:00:00Z",
                fleet=False,
                CumulativeOperatingHours={"Hour": 1500 + hour},
            )

        pages = [
            dict(page(8), Links=next_page),
            dict(page(9), Links=None),
            [dict(page(10), links=next_page)],  # Bosch: lower-case, in an outer array
        ]
        for document in pages:
            with self.subTest(document=document):
                response = self.post("iso15143/fleet", dumps(document))
                self.assertEqual(response.status_code, 202, response.text)
                self.assertEqual(response.json(), {"accepted": 1, "duplicates": 0, "rejected": []})
        process_all(self.Event)
        self.assertEqual(self.equipment.engine_hours, 1510)

    def test_iso15143_numbers_a_lone_machine_and_a_null_fleet_are_accepted(self):
        """Exporters send version and snapshotTime as numbers; a gateway converting XML
        makes a lone <Equipment> an object and <Fleet/> null, an empty result."""

        def page(hour):
            return iso_snapshot(
                at=f"2026-11-20T{hour:02}:00:00Z", CumulativeOperatingHours={"Hour": 1600 + hour}
            )

        numbers = page(8)
        numbers["Fleet"].update(version=2, snapshotTime=1795680000)
        top_numbers = dict(page(9)["Fleet"], version=2.0, snapshotTime=1795683600)
        lone = page(10)
        lone["Fleet"]["Equipment"] = lone["Fleet"]["Equipment"][0]
        top_lone = dict(page(11)["Fleet"])
        top_lone["Equipment"] = top_lone["Equipment"][0]
        for document in (numbers, top_numbers, lone, top_lone):
            with self.subTest(document=document):
                response = self.post("iso15143/fleet", dumps(document))
                self.assertEqual(response.status_code, 202, response.text)
                self.assertEqual(response.json(), {"accepted": 1, "duplicates": 0, "rejected": []})
        for document in ({"Fleet": None}, {"Fleet": {"version": 2, "snapshotTime": 1}}):
            with self.subTest(document=document):
                response = self.post("iso15143/fleet", dumps(document))
                self.assertEqual(response.status_code, 202, response.text)
                self.assertEqual(response.json(), {"accepted": 0, "duplicates": 0, "rejected": []})
        self.assertFalse(self.events(state="rejected"))
        process_all(self.Event)
        self.assertEqual(self.equipment.engine_hours, 1611)
        # Still refused: a version that is no string nor number (the page as a whole).
        self.assertProblem(
            self.post("iso15143/fleet", dumps(dict(top_numbers, version=[2]))), 422, "$"
        )

    def test_iso15143_an_unknown_unit_leaves_out_its_element_only(self):
        """Reference 1.8: a .NET exporter serialises unit enums as numbers; "unknown unit
        -> store raw, don't convert". The machine's other elements become its reading,
        the element is kept as sent in the ledger, and the event's result names it."""
        page = iso_snapshot(
            CumulativeOperatingHours={"Hour": 1500},
            Location={"Latitude": 48.8, "Longitude": 2.3},
            Distance={"OdometerUnits": 3, "Odometer": 98765},
        )
        response = self.post("iso15143/fleet", dumps(page))
        self.assertEqual(response.status_code, 202, response.text)
        field = "Equipment[0].Distance.OdometerUnits"
        message = "is 3, an unknown unit: the Distance value was left out, not converted"
        self.assertEqual(
            response.json(),
            {
                "accepted": 1,
                "duplicates": 0,
                "rejected": [],
                "left_out": [{"index": 0, "field": field, "message": message}],
            },
        )
        self.assertFalse(self.events(state="rejected"))
        process_all(self.Event)
        self.assertEqual(self.equipment.engine_hours, 1500)
        self.assertAlmostEqual(self.equipment.telematics_latitude, 48.8)
        self.assertFalse(self.equipment.odometer_km)  # never 98765 "km"
        event = self.events(kind="readings")
        self.assertEqual(event.state, "processed")
        self.assertEqual(event.result, f"1 readings stored; {field} {message}")
        self.assertEqual(
            event.payload["left_out"][0]["element"], page["Fleet"]["Equipment"][0]["Distance"]
        )
        self.assertFalse(event.reading_ids.odometer_km)
        # Polled again, its left-out element moved on: the same readings, a duplicate.
        page["Fleet"]["Equipment"][0]["Distance"]["Odometer"] = 98790
        response = self.post("iso15143/fleet", dumps(page))
        self.assertEqual((response.json()["accepted"], response.json()["duplicates"]), (0, 1))
        self.assertEqual(self.events(kind="readings"), event)

        # A machine sending nothing else: no reading, no refusal, the element kept.
        only = iso_snapshot(
            at="2026-11-20T10:00:00Z", FuelUsed={"FuelUnits": "imp. pint", "FuelConsumed": 9}
        )
        response = self.post("iso15143/fleet", dumps(only))
        self.assertEqual(response.status_code, 202, response.text)
        answer = response.json()
        self.assertEqual((answer["accepted"], answer["rejected"]), (0, []))
        self.assertEqual(answer["left_out"][0]["field"], "Equipment[0].FuelUsed.FuelUnits")
        process_all(self.Event)
        event = self.events(kind="readings") - event
        self.assertEqual(event.state, "processed")
        self.assertEqual(
            event.result,
            '0 readings stored; Equipment[0].FuelUsed.FuelUnits is "imp. pint", an unknown '
            "unit: the FuelUsed value was left out, not converted",
        )
        self.assertFalse(event.reading_ids)
        self.assertEqual(self.attention_count(), 0)

        # Beside a machine refused, the page is no failure: something was kept.
        nameless = {"EquipmentHeader": {"PIN": "N/A"}}
        kept = iso_snapshot(at="2026-11-20T11:00:00Z", Distance={"OdometerUnits": 3, "Odometer": 1})
        kept["Fleet"]["Equipment"].append(nameless)
        response = self.post("iso15143/fleet", dumps(kept))
        self.assertEqual(response.status_code, 202, response.text)
        answer = response.json()
        self.assertEqual([item["index"] for item in answer["rejected"]], [1])
        self.assertEqual([item["index"] for item in answer["left_out"]], [0])
        self.assertEqual(self.events(state="rejected").payload, nameless)

    # -- unauthenticated endpoints -----------------------------------------
    def test_health_and_openapi(self):
        health = self.url_open("/telematics/v1/health")
        self.assertEqual(health.json(), {"status": "ok"})
        document = self.url_open("/telematics/v1/openapi.json").json()
        repo_copy = (
            Path(__file__).resolve().parent.parent / "docs" / "openapi" / "telematics-v1.json"
        )
        self.assertEqual(document, json.loads(repo_copy.read_text()))
        self.assertEqual(document["openapi"], "3.1.0")
        self.assertEqual(
            set(document["paths"]),
            {
                "/telematics/v1/alerts",
                "/telematics/v1/readings",
                "/telematics/v1/iso15143/fleet",
                "/telematics/v1/health",
                "/telematics/v1/openapi.json",
            },
        )

    def test_openapi_examples_are_accepted(self):
        document = self.url_open("/telematics/v1/openapi.json").json()
        for path in ("alerts", "readings", "iso15143/fleet"):
            example = document["paths"][f"/telematics/v1/{path}"]["post"]["requestBody"]["content"][
                "application/json"
            ]["example"]
            response = self.post(path, dumps(example))
            self.assertEqual(response.status_code, 202, f"{path}: {response.text}")
            self.assertEqual(response.json()["rejected"], [], path)
