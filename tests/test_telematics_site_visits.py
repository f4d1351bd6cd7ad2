from datetime import datetime, timedelta

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase

from .telematics_common import alert, make_fleet, process_all

METRE_LAT = 1 / 111_195
# Near Namur, far from the demo job sites (Paris, Marseille).
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
                "geofence_latitude": 50.47,
                "geofence_longitude": 4.87,
                "geofence_radius_m": 200,
            }
        )
        cls.tower = Project.create(
            {
                "name": "Tower site",
                "geofence_kind": "polygon",
                "geofence_polygon": "[[50.480, 4.890], [50.482, 4.890], "
                "[50.482, 4.893], [50.480, 4.893]]",
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
        process_all(self.Event)

    def visits(self):
        return self.Visit.search([("equipment_id", "=", self.equipment.id)], order="arrived_at")

    def test_arrivals_and_departures_without_flapping(self):
        north = [50.47 + metres * METRE_LAT for metres in (0, 100, 185, 215, 190, 222, 195, 300)]
        self.drive([(lat, 4.87) for lat in north] + [(50.481, 4.8915), (50.481, 4.8916)])
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
        self.drive([(50.47, 4.87)])
        self.assertEqual(self.equipment.job_site_project_id, self.depot)
        self.equipment.job_site_project_id = self.manual
        self.drive([(50.47, 4.8701)], start=START + timedelta(hours=1))  # still at the depot
        self.assertEqual(self.equipment.job_site_project_id, self.manual)
        self.drive([(50.60, 5.00)], start=START + timedelta(hours=2))  # gone
        self.assertFalse(self.equipment.job_site_project_id)
        self.assertTrue(self.equipment.telematics_outside_sites)
        outside = self.env["maintenance.equipment"].search(
            [("telematics_outside_sites", "=", True)]
        )
        self.assertIn(self.equipment, outside)
        self.assertTrue(self.visits().left_at)

    def test_a_machine_standing_still_keeps_its_site_and_its_latest_position_time(self):
        # The same position again and again is measured against the fences once.
        self.drive([(50.47, 4.87)] * 3 + [(50.60, 5.00)] * 2 + [(50.47, 4.87)] * 3)
        visits = self.visits()
        self.assertEqual(len(visits), 2)
        self.assertEqual(visits[0].left_at, START + timedelta(minutes=3))
        self.assertEqual(visits[1].arrived_at, START + timedelta(minutes=5))
        self.assertEqual(self.equipment.telematics_site_project_id, self.depot)
        self.assertEqual(self.equipment.telematics_position_at, START + timedelta(minutes=7))

    def test_late_positions_do_not_replay(self):
        self.drive([(50.47, 4.87)], start=START + timedelta(hours=3))
        # Older positions elsewhere, delivered late: history only.
        self.drive([(50.60, 5.00)], start=START)
        self.assertEqual(self.equipment.telematics_site_project_id, self.depot)
        self.assertEqual(len(self.visits()), 1)

    def test_invalid_geofences_are_refused_naming_the_field(self):
        with self.assertRaisesRegex(ValidationError, "Polygon"):
            self.tower.geofence_polygon = "[[50.48, 4.89], [50.48, 4.89]]"
        with self.assertRaisesRegex(ValidationError, "Radius"):
            self.depot.geofence_radius_m = -5
        with self.assertRaisesRegex(ValidationError, "Centre latitude"):
            self.depot.geofence_latitude = 123

    def test_positions_carried_by_alerts_move_machines_between_sites(self):
        self.drive([(50.47, 4.87)])  # a reading at the depot
        self.assertEqual(self.equipment.job_site_project_id, self.depot)

        def raise_alert(event_id, at, lat, lon, **readings):
            self.Event._receive_alerts(
                self.source,
                [
                    alert(
                        event_id=event_id,
                        occurred_at=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        location={"lat": lat, "lon": lon},
                        readings=readings or {"fuel_level_pct": 40},
                    )
                ],
            )
            process_all(self.Event)

        left_at = START + timedelta(hours=1)
        raise_alert("away", left_at, 50.60, 5.00, engine_hours=100.0)
        depot = self.visits()
        self.assertEqual(depot.left_at, left_at)
        self.assertFalse(self.equipment.job_site_project_id)
        self.assertTrue(self.equipment.telematics_outside_sites)
        # An alert whose meter is implausible still reports where the machine is.
        arrived_at = START + timedelta(hours=2)
        raise_alert("tower", arrived_at, 50.481, 4.8915, engine_hours=90000.0)
        self.assertEqual(self.equipment.engine_hours, 100.0)
        _depot, tower = self.visits()
        self.assertEqual((tower.project_id, tower.arrived_at), (self.tower, arrived_at))
        self.assertEqual(self.equipment.job_site_project_id, self.tower)
        self.assertEqual(self.equipment.location, "Tower site")
        # Inside the hysteresis band of the tower: no flapping, like readings.
        raise_alert("edge", START + timedelta(hours=3), 50.482 + 10 * METRE_LAT, 4.8915)
        self.assertEqual(len(self.visits()), 2)
        self.assertFalse(tower.left_at)
        # An alert older than the last followed position is history only.
        raise_alert("late", START + timedelta(minutes=30), 50.47, 4.87)
        self.assertEqual(len(self.visits()), 2)
        self.assertEqual(self.equipment.job_site_project_id, self.tower)
