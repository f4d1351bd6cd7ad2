"""Sensor threshold rules, fed by real readings through the telematics pipeline."""

from datetime import datetime, timedelta

from odoo.tests import HttpCase, TransactionCase, tagged

from .telematics_common import TelematicsHttpMixin, dumps, make_fleet, process_all

T0 = datetime(2026, 11, 20, 8, 0)


class TestSensorRules(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env, suffix=" sensors")
        cls.category = cls.env["maintenance.equipment.category"].create({"name": "Test loaders"})
        cls.equipment.category_id = cls.category
        cls.coolant_sensor = cls.env["construction.telematics.sensor"].create(
            {
                "code": "coolant_temp_c",
                "name": "Coolant temperature",
                "unit": "°C",
                "min_value": -40,
                "max_value": 150,
            }
        )
        cls.rule = cls.env["construction.sensor.rule"].create(
            {
                "name": "Coolant too hot",
                "sensor_code": "coolant_temp_c",
                "comparison": ">",
                "threshold": 105,
                "duration_minutes": 10,
                "category_ids": [(6, 0, cls.category.ids)],
            }
        )
        cls.Event = cls.env["construction.telematics.event"]

    def send(self, *samples):
        """(minutes after T0, coolant temperature) through receipt and processing."""
        readings = [
            {
                "device_id": "DEV-1",
                "at": T0 + timedelta(minutes=minutes),
                "sensors": {"coolant_temp_c": value},
                "_index": index,
            }
            for index, (minutes, value) in enumerate(samples)
        ]
        self.Event._receive_readings(self.source, readings, [])
        process_all(self.Event)

    def requests(self):
        return self.env["maintenance.request"].search([("equipment_id", "=", self.equipment.id)])

    def test_a_breach_shorter_than_the_duration_opens_nothing(self):
        self.send((0, 110), (5, 111), (8, 100))
        self.assertFalse(self.requests())
        self.send((20, 109), (29, 112))  # 9 minutes: still short
        self.assertFalse(self.requests())

    def test_a_retained_delivery_feeds_no_rule(self):
        """Retained MQTT deliveries never raise alerts (reference, 4.3): their readings,
        kept when newer than the machine's, do not count in a breach."""
        self.Event._receive_readings(
            self.source,
            [
                {
                    "device_id": "DEV-1",
                    "at": T0 + timedelta(minutes=minutes),
                    "sensors": {"coolant_temp_c": value},
                    "_index": index,
                }
                for index, (minutes, value) in enumerate(((0, 110), (15, 112)))
            ],
            [],
        )
        self.Event.search([("source_id", "=", self.source.id)], limit=1).retained = True
        process_all(self.Event)
        self.assertEqual(len(self.equipment.telematics_reading_ids), 2)
        self.assertFalse(self.requests())
        self.send((20, 113), (25, 114))  # live, 5 minutes: short
        self.assertFalse(self.requests())
        self.send((30, 115))  # 10 minutes since the first live breach
        self.assertEqual(len(self.requests()), 1)

    def test_a_breach_that_lasts_opens_one_request_and_its_end_is_noted(self):
        self.send((0, 110), (5, 112))
        self.send((11, 113), (15, 114))
        request = self.requests()
        self.assertEqual(len(request), 1)
        self.assertEqual(
            (request.maintenance_type, request.request_origin, request.to_review),
            ("corrective", "telematics_alert", True),
        )
        self.assertEqual(request.alert_code, self.rule._alert_code())
        self.assertIn("coolant_temp_c 113", request.name)
        self.assertEqual(request.alert_sensor_snapshot["readings"], {"coolant_temp_c": 113.0})
        self.send((20, 96))
        self.assertEqual(self.requests(), request, "one open request per machine and rule")
        self.assertIn("Cleared at 2026-11-20 08:20:00", request.message_ids[0].body)
        # A new breach while the request is open adds a note, not a second request.
        self.send((30, 120), (45, 121))
        self.assertEqual(self.requests(), request)
        self.assertEqual(request.alert_repeat_count, 2)

    def test_the_cached_ranges_follow_a_declaration_changed_in_the_same_transaction(self):
        Sensor = self.env["construction.telematics.sensor"]
        company = self.source.company_id.id
        self.assertEqual(Sensor._ranges(company)["coolant_temp_c"][("company", None)][1], 150)
        self.coolant_sensor.max_value = 170  # not flushed yet
        self.assertEqual(Sensor._ranges(company)["coolant_temp_c"][("company", None)][1], 170)

    def test_samples_out_of_order_late_and_repeated_open_one_request(self):
        # Gateways resend and reorder: a batch in reverse time order, then a late
        # sample from inside the breach, then the whole batch again.
        self.send((11, 113), (5, 112), (0, 110))
        request = self.requests()
        self.assertEqual(len(request), 1, "11 minutes above 105 in time order: one breach")
        self.send((8, 111))
        self.send((11, 113), (5, 112), (0, 110))
        self.assertEqual(self.requests(), request)
        # Nothing new happened: no repeat counted, no note.
        self.assertEqual(request.alert_repeat_count, 1)
        self.assertFalse(request.message_ids)

    def test_out_of_range_and_undeclared_sensors_are_suspect_and_ignored(self):
        self.send((0, 400), (20, 400))
        readings = self.env["construction.telematics.reading"].search(
            [("equipment_id", "=", self.equipment.id)], order="at"
        )
        self.assertEqual(readings.mapped("suspect"), [True, True])
        self.assertIn(
            "sensors.coolant_temp_c 400 is outside -40 to 150 °C", readings[0].suspect_reason
        )
        self.assertEqual(readings[0].sensors, {"coolant_temp_c": 400.0})
        self.assertFalse(self.requests())
        self.Event._receive_readings(
            self.source,
            [
                {
                    "device_id": "DEV-1",
                    "at": T0 + timedelta(hours=1),
                    "sensors": {"mystery": 1.0},
                    "_index": 0,
                }
            ],
            [],
        )
        self.Event._process_batch()
        reading = self.env["construction.telematics.reading"].search(
            [("equipment_id", "=", self.equipment.id), ("at", "=", T0 + timedelta(hours=1))]
        )
        self.assertEqual(reading.suspect_reason, "sensors.mystery is not a declared sensor")

    def test_a_reading_suspect_by_its_sensor_moves_nothing_on_the_machine(self):
        # Suspect as a whole, like a reading with an implausible meter: site following
        # skips it, and so do the machine's position, fuel level and meters.
        self.Event._receive_readings(
            self.source,
            [
                {
                    "device_id": "DEV-1",
                    "at": T0,
                    "lat": 47.5,
                    "lon": 8.5,
                    "engine_hours": 500.0,
                    "sensors": {"coolant_temp_c": 400.0},
                    "_index": 0,
                }
            ],
            [],
        )
        process_all(self.Event)
        machine = self.equipment
        self.assertEqual(machine.telematics_reading_ids.mapped("suspect"), [True])
        self.assertEqual((machine.telematics_latitude, machine.engine_hours), (0.0, 0.0))
        self.assertFalse(machine.telematics_position_at)

    def test_a_machine_without_the_rule_is_not_alerted(self):
        self.equipment.category_id = False
        self.send((0, 110), (30, 112))
        self.assertFalse(self.requests())


@tagged("post_install", "-at_install")
class TestSensorValuesAtReceipt(TelematicsHttpMixin, HttpCase):
    """Named sensor values are refused at the door like an out-of-range fixed metric."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env, suffix=" receipt")
        cls.category = cls.env["maintenance.equipment.category"].create({"name": "Test cranes"})
        cls.equipment.category_id = cls.category
        Sensor = cls.env["construction.telematics.sensor"]
        cls.coolant = Sensor.create(
            {
                "code": "coolant_temp_c",
                "name": "Coolant",
                "unit": "°C",
                "min_value": -40,
                "max_value": 150,
            }
        )
        Sensor.create(
            {
                "code": "hydraulic_oil_temp_c",
                "name": "Hydraulic oil",
                "unit": "°C",
                "min_value": -30,
                "max_value": 120,
                "category_id": cls.category.id,
            }
        )
        cls.Event = cls.env["construction.telematics.event"]

    def post_readings(self, readings):
        return self.post("readings", dumps({"readings": readings}))

    def reading(self, minute, device="DEV-1", **sensors):
        return {"device_id": device, "at": f"2026-11-20T08:{minute:02d}:00Z", "sensors": sensors}

    def rejected(self):
        return self.Event.search(
            [("source_id", "=", self.source.id), ("state", "=", "rejected")], order="id"
        )

    def test_out_of_range_and_undeclared_values_are_rejected_naming_the_field(self):
        response = self.post_readings(
            [
                self.reading(0, coolant_temp_c=90, hydraulic_oil_temp_c=60),
                self.reading(1, coolant_temp_c=400),
                self.reading(2, mystery=1),
                self.reading(3, hydraulic_oil_temp_c=130),
            ]
        )
        self.assertEqual(response.status_code, 202, response.text)
        answer = response.json()
        self.assertEqual(answer["accepted"], 1)
        self.assertEqual(
            answer["rejected"],
            [
                {
                    "index": 1,
                    "errors": [
                        {
                            "field": "sensors.coolant_temp_c",
                            "message": "must be between -40 and 150 °C",
                        }
                    ],
                },
                {
                    "index": 2,
                    "errors": [{"field": "sensors.mystery", "message": "is not a declared sensor"}],
                },
                {
                    "index": 3,
                    "errors": [
                        {
                            "field": "sensors.hydraulic_oil_temp_c",
                            "message": "must be between -30 and 120 °C",
                        }
                    ],
                },
            ],
        )
        kept = self.rejected()
        self.assertEqual(len(kept), 3, "each refused reading is kept for inspection")
        self.assertEqual(kept[0].payload["sensors"], {"coolant_temp_c": 400})
        self.assertEqual(kept[0].validation_errors[0]["field"], "sensors.coolant_temp_c")

    def test_every_reading_refused_is_422_naming_the_fields(self):
        response = self.post_readings(
            [self.reading(0, coolant_temp_c=-50), self.reading(1, mystery=2)]
        )
        fields = [error["field"] for error in self.assertProblem(response, 422)["errors"]]
        self.assertEqual(fields, ["[0].sensors.coolant_temp_c", "[1].sensors.mystery"])

    def test_a_changed_declaration_applies_to_the_next_request(self):
        self.assertEqual(self.post_readings([self.reading(0, coolant_temp_c=160)]).status_code, 422)
        self.coolant.max_value = 170  # the cached ranges follow the declaration
        response = self.post_readings([self.reading(1, coolant_temp_c=160)])
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(response.json()["accepted"], 1)

    def test_an_unmapped_device_is_refused_only_outside_every_range_that_could_apply(self):
        response = self.post_readings(
            [
                self.reading(0, device="DEV-NEW", hydraulic_oil_temp_c=100),
                self.reading(1, device="DEV-NEW", hydraulic_oil_temp_c=500),
            ]
        )
        self.assertEqual(response.status_code, 202, response.text)
        answer = response.json()
        self.assertEqual(answer["accepted"], 1)
        self.assertEqual(answer["rejected"][0]["index"], 1)

    def test_mqtt_receipt_rejects_the_same_way(self):
        body = dumps({"readings": [self.reading(0, coolant_temp_c=999)]})
        answer = self.Event._receive_body(
            self.source, "readings", body, channel="mqtt", device="DEV-1"
        )
        self.assertEqual((answer["accepted"], answer["rejected"][0]["index"]), (0, 0))
        kept = self.rejected()
        self.assertEqual(
            (kept.channel, kept.validation_errors[0]["field"]), ("mqtt", "sensors.coolant_temp_c")
        )
