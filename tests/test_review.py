from odoo.exceptions import AccessError

from .common import ConstructionAssetSyncCase


class TestReviewFlow(ConstructionAssetSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Request = cls.env["maintenance.request"]
        cls.alert_request = Request.create(
            {
                "name": "Coolant temperature high",
                "equipment_id": cls.equipment.id,
                "request_origin": "telematics_alert",
                "alert_severity": "critical",
                "alert_code": "SPN110-FMI0",
                "alert_occurred_at": "2026-11-20 07:55:00",
                "alert_sensor_snapshot": {"coolant_temp_c": 108, "engine_hours": 4218.5},
                "priority": "3",
            }
        )
        cls.threshold_request = Request.create(
            {
                "name": "500 h service",
                "equipment_id": cls.equipment.id,
                "request_origin": "usage_threshold",
            }
        )
        cls.manual_request = Request.create(
            {"name": "Broken mirror", "equipment_id": cls.equipment.id}
        )

    def _to_review(self, user):
        return self.env["maintenance.request"].with_user(user).search([("to_review", "=", True)])

    def test_automatic_requests_wait_for_review_and_manual_ones_do_not(self):
        waiting = self._to_review(self.maintenance_manager)
        self.assertIn(self.alert_request, waiting)
        self.assertIn(self.threshold_request, waiting)
        self.assertNotIn(self.manual_request, waiting)
        self.assertEqual(self.manual_request.request_origin, "manual")

    def test_to_review_action_opens_with_the_filter(self):
        action = self.env.ref("construction_asset_sync.maintenance_request_action_to_review")
        self.assertIn("search_default_to_review", action.context)

    def test_manager_reviews_and_the_request_leaves_the_list(self):
        request = self.alert_request.with_user(self.maintenance_manager)
        request.action_mark_reviewed()
        self.assertFalse(self.alert_request.to_review)
        self.assertEqual(self.alert_request.reviewed_by_id, self.maintenance_manager)
        self.assertTrue(self.alert_request.reviewed_at)
        self.assertNotIn(self.alert_request, self._to_review(self.maintenance_manager))
        self.assertIn(self.threshold_request, self._to_review(self.maintenance_manager))
        self.assertIn("Reviewed by", self.alert_request.message_ids[0].body)

    def test_reviewing_twice_changes_nothing(self):
        self.alert_request.with_user(self.maintenance_manager).action_mark_reviewed()
        first_at = self.alert_request.reviewed_at
        messages = len(self.alert_request.message_ids)
        self.alert_request.with_user(self.dispatcher).action_mark_reviewed()
        self.assertEqual(self.alert_request.reviewed_by_id, self.maintenance_manager)
        self.assertEqual(self.alert_request.reviewed_at, first_at)
        self.assertEqual(len(self.alert_request.message_ids), messages)

    def test_plain_employee_cannot_review(self):
        self.alert_request.message_subscribe(partner_ids=self.employee.partner_id.ids)
        with self.assertRaises(AccessError):
            self.alert_request.with_user(self.employee).action_mark_reviewed()
        self.assertTrue(self.alert_request.to_review)

    def test_list_action_reviews_the_selection(self):
        action = self.env.ref(
            "construction_asset_sync.action_server_maintenance_request_mark_reviewed"
        ).with_user(self.maintenance_manager)
        selection = self.alert_request | self.threshold_request
        action.with_context(active_model="maintenance.request", active_ids=selection.ids).run()
        self.assertFalse(any(selection.mapped("to_review")))

    def test_sensor_snapshot_is_readable_on_the_form(self):
        html = str(self.alert_request.alert_sensor_snapshot_html)
        self.assertIn("Coolant temperature", html)
        self.assertIn("108 °C", html)
        self.assertIn("Engine hours", html)
        self.assertIn("4,218.5 h", html)
        self.assertNotIn("coolant_temp_c", html)
        self.assertFalse(self.manual_request.alert_sensor_snapshot_html)

    def test_snapshot_of_a_processed_alert_names_values_units_and_position(self):
        self.alert_request.alert_sensor_snapshot = {
            "readings": {"fuel_level_pct": 40, "odometer_km": 12500.25},
            "location": {"lat": 48.87, "lon": 2.35},
            "device_id": "DEV-1",
            "event_id": "evt-<b>1</b>",
        }
        html = str(self.alert_request.alert_sensor_snapshot_html)
        self.assertIn("Fuel level</th><td>40 %", html)
        self.assertIn("12,500.25 km", html)
        self.assertIn("openstreetmap.org/?mlat=48.87&amp;mlon=2.35", html)
        self.assertIn("evt-&lt;b&gt;1&lt;/b&gt;", html)  # values are escaped, never markup

    def test_odyssee_links_are_unique_per_company(self):
        from odoo.exceptions import ValidationError

        from .common import odyssee_backend

        odyssee_backend(self.env, self.alert_request.company_id)
        self.alert_request.odyssee_job_guid = "0b8e6a52-1c7f-4a43-9f58-3c4d5e6f7a80"
        with self.assertRaisesRegex(ValidationError, "already belongs"):
            self.threshold_request.odyssee_job_guid = "0B8E6A52-1C7F-4A43-9F58-3C4D5E6F7A80"
