"""Meter lifecycle: replacement, rollover, correction and void, and the plans that follow."""

from datetime import timedelta

from freezegun import freeze_time
from odoo.exceptions import UserError

from .telematics_common import alert, process_all
from .test_maintenance_plans import NOW, PlanCase


@freeze_time(NOW)
class TestMeterEvents(PlanCase):
    def meter_event(self, **values):
        return self.env["construction.meter.event"].create(
            dict({"equipment_id": self.equipment.id, "reason": "test"}, **values)
        )

    def test_replacement_keeps_the_life_to_date_total_and_the_plans_right(self):
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.send((20, 100.0))
        self.send((10, 220.0))
        self.meter_event(
            kind="replacement", old_value=220.0, new_value=0.0, at=NOW - timedelta(days=9)
        )
        self.send((5, 10.0))  # the new unit shows 10 h: 230 h life-to-date
        self.assertEqual(self.equipment.engine_hours, 230.0)
        self.assertEqual(self.schedule(item).due_status, "soon")
        self.send((1, 31.0))
        self.assertEqual(self.equipment.engine_hours, 251.0)
        self.assertEqual(self.schedule(item).due_status, "overdue")
        readings = self.env["construction.telematics.reading"].search(
            [("equipment_id", "=", self.equipment.id)], order="at"
        )
        self.assertEqual(readings.mapped("engine_hours"), [100.0, 220.0, 230.0, 251.0])
        self.assertFalse(any(readings.mapped("suspect")))
        self.assertIn("Meter replaced", self.equipment.message_ids[-0].body)

    def test_an_alert_after_a_replacement_carries_life_to_date_meters(self):
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.send((10, 220.0))
        self.meter_event(
            kind="replacement", old_value=220.0, new_value=0.0, at=NOW - timedelta(days=9)
        )
        # The new unit shows 32 h in an alert: 252 h life-to-date, past the 250 h service.
        self.Event._receive_alerts(
            self.source,
            [
                alert(
                    occurred_at=(NOW - timedelta(days=1)).isoformat() + "Z",
                    readings={"engine_hours": 32.0},
                )
            ],
        )
        process_all(self.Event)
        self.assertEqual(self.equipment.engine_hours, 252.0)
        request = self.env["maintenance.request"].search(
            [("equipment_id", "=", self.equipment.id), ("alert_code", "=", "SPN110-FMI0")]
        )
        self.assertEqual(request.alert_sensor_snapshot["readings"], {"engine_hours": 252.0})
        self.assertIn("252 h", request.alert_sensor_snapshot_html)
        self.assertEqual(self.schedule(item).due_status, "overdue")
        self.assertEqual(len(self.plan_requests()), 1)
        # Without the offset the alert's 32 h would have gone backwards from 220 h.
        self.send((0, 40.0))
        self.assertEqual(self.equipment.engine_hours, 260.0)

    def test_rollover_continues_the_total(self):
        self.send((3, 99990.0, 0))
        self.meter_event(
            kind="rollover",
            meter="engine_hours",
            old_value=99999.9,
            new_value=0.0,
            at=NOW - timedelta(days=2),
        )
        self.send((1, 5.0))
        self.assertAlmostEqual(self.equipment.engine_hours, 100004.9, places=2)

    def test_without_the_event_a_new_meter_is_suspect(self):
        self.send((10, 220.0))
        self.send((5, 10.0))
        self.assertEqual(self.equipment.engine_hours, 220.0)

    def test_correcting_and_voiding_a_reading_restates_the_machine_and_plans(self):
        item = self.plan({"name": "250 h", "interval_hours": 250})
        self.send((20, 100.0))
        self.send((10, 240.0))
        self.assertEqual(self.schedule(item).due_status, "soon")
        bad = self.env["construction.telematics.reading"].search(
            [("equipment_id", "=", self.equipment.id), ("at", "=", NOW - timedelta(days=10))]
        )
        event = self.meter_event(kind="correction", reading_id=bad.id, new_value=140.0)
        self.assertEqual((event.old_value, event.user_id), (240.0, self.env.user))
        self.assertEqual((bad.engine_hours, self.equipment.engine_hours), (140.0, 140.0))
        self.assertEqual(self.schedule(item).due_status, "ok")
        self.meter_event(kind="void", reading_id=bad.id)
        self.assertTrue(bad.suspect)
        self.assertIn("voided", bad.suspect_reason)
        self.assertEqual(self.equipment.engine_hours, 100.0)
        with self.assertRaises(UserError):
            event.write({"reason": "rewritten"})

    def test_a_reading_of_another_machine_cannot_be_corrected(self):
        other = self.env["maintenance.equipment"].create({"name": "Other"})
        self.send((1, 10.0))
        reading = self.env["construction.telematics.reading"].search(
            [("equipment_id", "=", self.equipment.id)]
        )
        with self.assertRaises(UserError):
            self.env["construction.meter.event"].create(
                {
                    "equipment_id": other.id,
                    "kind": "void",
                    "reading_id": reading.id,
                    "reason": "wrong machine",
                }
            )
