from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, tagged

from .telematics_common import alert, make_fleet, process_all


@tagged("post_install", "-at_install")
class TestFleetMap(HttpCase):
    def setUp(self):
        super().setUp()
        self.source, _key, self.machine = make_fleet(self.env, suffix=" map")
        self.machine.name = "Map excavator"
        self.Event = self.env["construction.telematics.event"]
        self.env["project.project"].create(
            {
                "name": "Map site",
                "geofence_kind": "circle",
                "geofence_latitude": 50.47,
                "geofence_longitude": 4.87,
                "geofence_radius_m": 300,
            }
        )
        now = fields.Datetime.now().replace(microsecond=0)
        readings = [
            {
                "device_id": "DEV-1",
                "at": now - timedelta(minutes=50 - i * 10),
                "engine_hours": 100 + i * 0.1,
                "lat": 50.47,
                "lon": 4.87,
                "_index": i,
            }
            for i in range(5)
        ]
        self.Event._receive_readings(self.source, readings, [])
        process_all(self.Event)

    def test_states_on_the_map_data(self):
        data = self.env["maintenance.equipment"].fleet_map_data()
        mine = [row for row in data["machines"] if row["id"] == self.machine.id]
        self.assertEqual(mine[0]["state"], "working")
        self.assertEqual(mine[0]["site"], "Map site")
        self.assertIn("Map site", [site["name"] for site in data["sites"]])
        self.machine.telematics_last_seen_at = fields.Datetime.now() - timedelta(days=3)
        data = self.env["maintenance.equipment"].fleet_map_data()
        mine = [row for row in data["machines"] if row["id"] == self.machine.id]
        self.assertEqual(mine[0]["state"], "silent")
        self.assertIn("openstreetmap", data["tile_url"])

    def test_map_without_tiles_opens_a_machine(self):
        now = fields.Datetime.now().isoformat() + "Z"
        self.Event._receive_alerts(
            self.source, [alert(occurred_at=now, location={"lat": 50.47, "lon": 4.87})]
        )
        process_all(self.Event)
        # A tile server that refuses every connection: the map must still work.
        self.env["ir.config_parameter"].set_param(
            "construction_asset_sync.telematics_map_tile_url", "http://127.0.0.1:9/{z}/{x}/{y}.png"
        )
        self.start_tour(
            "/web#action=construction_asset_sync.fleet_map_action",
            "construction_asset_sync_fleet_map",
            login="admin",
        )
