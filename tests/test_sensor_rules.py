"""Sensor threshold rules, fed by real readings through the telematics pipeline."""

from datetime import datetime, timedelta

from odoo.tests import TransactionCase

from .telematics_common import make_fleet

T0 = datetime(2026, 11, 20, 8, 0)


class TestSensorRules(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env, suffix=" sensors")
        cls.category = cls.env["maintenance.equipment.category"].create({"name": "Test loaders"})
        cls.equipment.category_id = cls.category
        cls.env["construction.telematics.sensor"].create(
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
        while self.Event._process_batch():
            pass

    def requests(self):
        return self.env["maintenance.request"].search([("equipment_id", "=", self.equipment.id)])

    def test_a_breach_shorter_than_the_duration_opens_nothing(self):
        self.send((0, 110), (5, 111), (8, 100))
        self.assertFalse(self.requests())
        self.send((20, 109), (29, 112))  # 9 minutes: still short
        self.assertFalse(self.requests())

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

    def test_a_machine_without_the_rule_is_not_alerted(self):
        self.equipment.category_id = False
        self.send((0, 110), (30, 112))
        self.assertFalse(self.requests())
