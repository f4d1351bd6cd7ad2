from datetime import datetime, timedelta

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase

from .telematics_common import make_fleet

METRE_LAT = 1 / 111_195
START = datetime(2026, 11, 16, 7, 0)


class TestSiteVisits(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, _key, cls.equipment = make_fleet(cls.env, suffix=" sites")
        Project = cls.env["project.project"]
        cls.depot = Project.create(
            {
                "name": "Depot Nord",
                "geofence_kind": "circle",
                "geofence_latitude": 48.87,
                "geofence_longitude": 2.35,
                "geofence_radius_m": 200,
            }
        )
        cls.tower = Project.create(
            {
                "name": "Tower site",
                "geofence_kind": "polygon",
                "geofence_polygon": "[[48.880, 2.370], [48.882, 2.370], "
                "[48.882, 2.373], [48.880, 2.373]]",
            }
        )
        cls.manual = Project.create({"name": "Assigned by hand"})
        cls.Event = cls.env["construction.telematics.event"]
        cls.Visit = cls.env["construction.telematics.site.visit"]

    def drive(self, points, start=START):
        """One reading a minute at each (lat, lon), delivered as one batch."""
        readings = [
            {
                "device_id": "DEV-1",
                "at": start + timedelta(minutes=i),
                "lat": lat,
                "lon": lon,
                "_index": i,
            }
            for i, (lat, lon) in enumerate(points)
        ]
        self.Event._receive_readings(self.source, readings, [])
        while self.Event._process_batch():
            pass

    def visits(self):
        return self.Visit.search([("equipment_id", "=", self.equipment.id)], order="arrived_at")

    def test_arrivals_and_departures_without_flapping(self):
        north = [48.87 + metres * METRE_LAT for metres in (0, 100, 185, 215, 190, 222, 195, 300)]
        self.drive([(lat, 2.35) for lat in north] + [(48.881, 2.3715), (48.881, 2.3716)])
        depot, tower = self.visits()
        self.assertEqual((depot.project_id, tower.project_id), (self.depot, self.tower))
        self.assertEqual(depot.arrived_at, START)
        self.assertEqual(depot.left_at, START + timedelta(minutes=7))  # 300 m: out
        self.assertEqual(depot.duration_hours, 7 / 60)
        self.assertEqual(tower.arrived_at, START + timedelta(minutes=8))
        self.assertFalse(tower.left_at)
        self.assertEqual(self.equipment.job_site_project_id, self.tower)
        self.assertEqual(self.equipment.telematics_site_project_id, self.tower)
        self.assertEqual(self.equipment.location, "Tower site")
        self.assertFalse(self.equipment.telematics_outside_sites)

    def test_a_manual_assignment_wins_until_the_machine_leaves(self):
        self.drive([(48.87, 2.35)])
        self.assertEqual(self.equipment.job_site_project_id, self.depot)
        self.equipment.job_site_project_id = self.manual
        self.drive([(48.87, 2.3501)], start=START + timedelta(hours=1))  # still at the depot
        self.assertEqual(self.equipment.job_site_project_id, self.manual)
        self.drive([(48.90, 2.40)], start=START + timedelta(hours=2))  # gone
        self.assertFalse(self.equipment.job_site_project_id)
        self.assertTrue(self.equipment.telematics_outside_sites)
        outside = self.env["maintenance.equipment"].search(
            [("telematics_outside_sites", "=", True)]
        )
        self.assertIn(self.equipment, outside)
        self.assertTrue(self.visits().left_at)

    def test_late_positions_do_not_replay_and_suspect_readings_are_ignored(self):
        self.drive([(48.87, 2.35)], start=START + timedelta(hours=3))
        # Older positions elsewhere, delivered late: history only.
        self.drive([(48.90, 2.40)], start=START)
        self.assertEqual(self.equipment.telematics_site_project_id, self.depot)
        self.assertEqual(len(self.visits()), 1)

    def test_invalid_geofences_are_refused_naming_the_field(self):
        with self.assertRaisesRegex(ValidationError, "Polygon"):
            self.tower.geofence_polygon = "[[48.88, 2.37], [48.88, 2.37]]"
        with self.assertRaisesRegex(ValidationError, "Radius"):
            self.depot.geofence_radius_m = -5
        with self.assertRaisesRegex(ValidationError, "Centre latitude"):
            self.depot.geofence_latitude = 123
