from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, tagged

from .telematics_common import make_fleet, process_all


@tagged("post_install", "-at_install")
class TestMeterChart(HttpCase):
    def test_engine_hours_chart_spans_the_meters_range(self):
        """Odoo's graph starts at 0, where 1,700 -> 1,740 h looks flat; this chart does not."""
        source, _key, machine = make_fleet(self.env, suffix=" chart")
        day = fields.Datetime.now().replace(hour=12, minute=0, second=0, microsecond=0)
        readings = [
            {
                "device_id": "DEV-1",
                "at": day - timedelta(days=4 - index),
                "engine_hours": 1700.0 + 10 * index,
                "_index": index,
            }
            for index in range(5)
        ]
        Event = self.env["construction.telematics.event"]
        Event._receive_readings(source, readings, [])
        process_all(Event)
        self.assertEqual(machine.telematics_reading_count, 5)
        action = machine.action_open_engine_hours_chart()
        self.assertEqual(action["views"][0][1], "graph")
        self.start_tour(
            f"/web#action=maintenance.hr_equipment_action&id={machine.id}&view_type=form",
            "construction_asset_sync_meter_chart",
            login="admin",
        )
