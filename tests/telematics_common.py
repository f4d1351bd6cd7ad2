import json
import time

from odoo.addons.construction_asset_sync.models.construction_telematics_event import SHARD_SQL
from odoo.addons.construction_asset_sync.protocols import telematics_auth

from .common import committed_env

ALERT = {
    "event_id": "evt-1",
    "device_id": "DEV-1",
    "occurred_at": "2026-11-20T08:15:00Z",
    "severity": "critical",
    "code": "SPN110-FMI0",
    "message": "Engine coolant temperature high",
    "location": {"lat": 48.87, "lon": 2.35},
    "readings": {"engine_hours": 1200.5, "fuel_level_pct": 40},
}


def devices_by_shard(cr, count):
    """``{shard: device name}``, a device of each of ``count`` shards, by SHARD_SQL itself."""
    devices = {}
    for number in range(1000):
        device = f"LOADER-{number}"
        cr.execute(
            f"SELECT {SHARD_SQL} FROM (VALUES (%(device)s)) AS event(device_id)",
            {"device": device, "shard_count": count},
        )
        devices.setdefault(cr.fetchone()[0], device)
        if len(devices) == count:
            return devices
    raise AssertionError(f"no device in some of the {count} shards")


def make_fleet(env, suffix=""):
    """A machine mapped as DEV-1 on a fresh telematics source; returns (source, key, equipment)."""
    equipment = env["maintenance.equipment"].create({"name": f"Excavator{suffix}"})
    source = env["construction.telematics.source"].create({"name": f"Vendor push{suffix}"})
    env["construction.external.id"].create(
        {
            "system_id": source.external_system_id.id,
            "external_id": "DEV-1",
            "equipment_id": equipment.id,
        }
    )
    key = source._issue_api_key()
    return source, key, equipment


def signed_headers(secret, body, timestamp=None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "X-Telematics-Timestamp": str(timestamp),
        "X-Telematics-Signature": telematics_auth.sign(secret, timestamp, body),
    }


def alert(**changes):
    return dict(ALERT, **changes)


def dumps(document):
    return json.dumps(document).encode()


def process_all(Event):
    """Process the telematics queue until it is empty, in the current transaction."""
    while Event._process_batch():
        pass


def drop_committed_fleet(registry, source_id, machine_ids):
    """Delete a fleet that a test committed (for processes of their own to see): its
    readings, requests, events, source, machines and the source's external system."""
    with committed_env(registry) as env:
        source = env["construction.telematics.source"].browse(source_id)
        system = source.external_system_id
        env["construction.telematics.reading"].search(
            [("equipment_id", "in", machine_ids)]
        ).unlink()
        env["maintenance.request"].search([("equipment_id", "in", machine_ids)]).unlink()
        env["construction.telematics.event"].with_context(active_test=False).search(
            [("source_id", "=", source_id)]
        ).unlink()
        source.unlink()
        env["maintenance.equipment"].browse(machine_ids).unlink()
        system.unlink()


def iso_snapshot(
    at="2026-11-20T08:59:00Z",
    device="DEV-1",
    date_key="datetime",
    identity="SerialNumber",
    fleet=True,
    **elements,
):
    """An ISO 15143-3 snapshot of one machine as the reference documents it: each data
    element (``CumulativeOperatingHours={"Hour": 100}``, ...) with its own datetime,
    under ``date_key`` (senders spell it datetime, DateTime, ...); the machine named
    by ``identity`` (SerialNumber, PIN, ...); the page in a ``Fleet`` root or not."""
    equipment = {"EquipmentHeader": {"OEMName": "CAT", identity: device}}
    for name, values in elements.items():
        equipment[name] = dict({date_key: at}, **values)
    page = {"version": "1", "snapshotTime": at, "Equipment": [equipment]}
    return {"Fleet": page} if fleet else page


class TelematicsHttpMixin:
    """For HttpCase tests of the telematics API: ``self.key`` is the source's API key."""

    def post(self, path, body, key=None, content_type="application/json", headers=None):
        """POST ``body`` to ``/telematics/v1/<path>``; ``key=""`` sends no key at all."""
        all_headers = {"Content-Type": content_type, "Authorization": f"Bearer {key or self.key}"}
        all_headers.update(headers or {})
        if key == "":
            del all_headers["Authorization"]
        return self.url_open(f"/telematics/v1/{path}", data=body, headers=all_headers)

    def assertProblem(self, response, status, field=None):
        """A problem document (RFC 9457) of ``status``, naming ``field`` when given."""
        self.assertEqual(response.status_code, status, response.text)
        self.assertEqual(response.headers["Content-Type"], "application/problem+json")
        body = response.json()
        self.assertEqual(body["status"], status)
        self.assertNotIn("Traceback", response.text)
        if field:
            self.assertIn(field, [error["field"] for error in body["errors"]], body)
        return body
