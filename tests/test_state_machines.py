import re
from pathlib import Path

from odoo.addons.construction_asset_sync.state_machine import (
    ODYSSEE_PUSH,
    ODYSSEE_STREAM,
    TELEMATICS_EVENT,
    InvalidStateTransition,
)
from odoo.tests import TransactionCase

from .common import odyssee_backend
from .telematics_common import alert, make_fleet, process_all

ADDON = Path(__file__).resolve().parent.parent


class TestStateMachines(TransactionCase):
    def setUp(self):
        super().setUp()
        self.source, _key, self.equipment = make_fleet(self.env, suffix=" states")
        self.Event = self.env["construction.telematics.event"]

    def test_tables_cover_every_selection_state(self):
        for model, field, machine in (
            ("construction.telematics.event", "state", TELEMATICS_EVENT),
            ("maintenance.request", "odyssee_push_state", ODYSSEE_PUSH),
            ("construction.odyssee.stream", "state", ODYSSEE_STREAM),
        ):
            selection = {key for key, _label in self.env[model]._fields[field].selection}
            self.assertEqual(machine.states, selection, f"{model}.{field}")

    def test_a_rejected_event_never_moves(self):
        self.Event._receive_alerts(self.source, [{"event_id": "broken"}])
        rejected = self.Event.search(
            [("source_id", "=", self.source.id), ("state", "=", "rejected")]
        )
        self.assertTrue(rejected)
        with self.assertRaises(InvalidStateTransition) as caught:
            self.Event._set_state([(rejected.id, "pending", {})])
        self.assertIn("rejected -> pending", str(caught.exception))
        self.assertEqual(rejected.state, "rejected")

    def test_a_processed_event_cannot_be_processed_again_without_replay(self):
        self.Event._receive_alerts(self.source, [alert(event_id="once")])
        process_all(self.Event)
        event = self.Event.search([("source_id", "=", self.source.id)])
        self.assertEqual(event.state, "processed")
        with self.assertRaises(InvalidStateTransition):
            self.Event._set_state([(event.id, "processed", {"attempts": 2})])
        event.action_replay()
        self.assertEqual((event.state, event.attempts), ("pending", 0))

    def test_push_state_refuses_a_send_that_was_never_queued(self):
        request = self.env["maintenance.request"].create({"name": "Not queued"})
        with self.assertRaises(InvalidStateTransition):
            request._set_odyssee_push_state("sent")
        request._set_odyssee_push_state("pending")
        request._set_odyssee_push_state("sent")
        self.assertEqual(request.odyssee_push_state, "sent")

    def test_stream_state_changes_through_its_method(self):
        stream = odyssee_backend(self.env, self.env.company)._stream("approvals")
        stream._set_state("error", calls=3, error="boom")
        self.assertEqual((stream.state, stream.last_error, stream.last_calls), ("error", "boom", 3))
        with self.assertRaises(InvalidStateTransition):
            stream._set_state("running")

    def test_one_place_writes_each_state_field(self):
        """A newcomer finds the one method that changes each state (grep-able)."""
        writers = {
            # field: (file, method) that alone may assign it
            "odyssee_push_state": ("models/maintenance_request.py", "_set_odyssee_push_state"),
            "telematics_connectivity": (
                "models/maintenance_equipment.py",
                "_set_telematics_connectivity",
            ),
            # A measurement, not a workflow: only the health check sets it.
            "health": ("models/construction_integration_health.py", "_refresh"),
        }
        sources = {
            path.relative_to(ADDON).as_posix(): path.read_text()
            for folder in ("models", "wizards", "controllers")
            for path in (ADDON / folder).glob("*.py")
        }
        for field, (file, method) in writers.items():
            assigning = re.compile(rf"[\"']{field}[\"']\s*:|\.{field}\s*=[^=]")
            places = [name for name, text in sources.items() if assigning.search(text)]
            self.assertEqual(places, [file], field)
            body = sources[file].split(f"def {method}(", 1)[1].split("\n    def ", 1)[0]
            self.assertRegex(body, assigning, f"{method} writes {field}")
        # Events: only _set_state updates the state column, only receipt inserts it.
        event_sql = sources["models/construction_telematics_event.py"]
        self.assertEqual(len(re.findall(r"SET state\b", event_sql)), 1)
        self.assertNotRegex(sources["models/construction_telematics_processor.py"], r"SET state\b")
        # Maintenance schedules: only the set-wise evaluation writes the due status.
        status_writers = [
            name
            for name, text in sources.items()
            if re.search(r"SET due_status\b|[\"']due_status[\"']\s*:|\.due_status\s*=[^=]", text)
        ]
        self.assertEqual(status_writers, ["models/construction_maintenance_schedule.py"])
        schedule = sources["models/construction_maintenance_schedule.py"]
        self.assertEqual(len(re.findall(r"SET due_status\b", schedule)), 1)
        self.assertIn(
            "SET due_status", schedule.split("def _evaluate(", 1)[1].split("\n    def ")[0]
        )
        stream = sources["models/construction_odyssee_stream.py"]
        self.assertEqual(len(re.findall(r"[\"']state[\"']\s*:", stream)), 1)
