"""Hostile input, least privilege, flood control: each case of the hardening issue."""

import base64
import functools
import json
from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, TransactionCase, tagged

from .telematics_common import (
    TelematicsHttpMixin,
    alert,
    dumps,
    iso_snapshot,
    make_fleet,
    process_all,
)

INGESTION_USER = "construction_asset_sync.user_telematics_ingestion"
READING = b'{"readings": [{"device_id": %s, "at": "2026-11-20T08:00:00Z", "engine_hours": %s}]}'


def readings(*items):
    return {
        "readings": [
            dict({"device_id": "DEV-1", "at": "2026-11-20T08:00:00Z"}, **item) for item in items
        ]
    }


# Without a Fleet root, the machine named by its PIN: the variants this file covers.
iso = functools.partial(iso_snapshot, identity="PIN", fleet=False)


@tagged("post_install", "-at_install")
class TestTelematicsHostileInput(TelematicsHttpMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]

    def rejected(self):
        return self.Event.with_context(active_test=False).search(
            [("source_id", "=", self.source.id), ("state", "=", "rejected")], order="id desc"
        )

    # -- text PostgreSQL refuses -------------------------------------------
    def test_nul_and_lone_surrogates_are_422_naming_the_string_and_kept(self):
        extra_key = dumps(alert(extra={"k": 1})).replace(b'"k"', b'"k\\u0000"')
        cases = [
            ("readings", READING % (b'"DEV\\u00001"', b"1"), "readings[0].device_id"),
            ("alerts", extra_key, "extra.k\\u0000"),
            ("readings", READING % (b'"\\ud800"', b"1"), "readings[0].device_id"),
            ("alerts", b'{"alerts": [{"message": "\\udfff tail"}]}', "alerts[0].message"),
        ]
        for path, body, field in cases:
            self.assertProblem(self.post(path, body), 422, field)
            kept = self.rejected()[:1]
            self.assertEqual(kept.payload["raw_body"], body.decode())
        self.assertFalse(
            self.Event.search([("source_id", "=", self.source.id), ("state", "=", "pending")])
        )

    def test_nan_and_infinity_are_400_and_out_of_range_numbers_422_all_kept(self):
        for literal in (b"NaN", b"Infinity", b"-Infinity"):
            body = READING % (b'"DEV-1"', literal)
            self.assertProblem(self.post("readings", body), 400, "$")
            self.assertEqual(self.rejected()[:1].payload["raw_body"], body.decode())
        for literal in (b"1e400", b"-1e400", b"9" * 400):
            body = READING % (b'"DEV-1"', literal)
            self.assertProblem(self.post("readings", body), 422, "readings[0].engine_hours")
            self.assertEqual(self.rejected()[:1].payload["raw_body"], body.decode())

    def test_malformed_json_holding_nul_is_kept_safely_encoded(self):
        body = b'{"event_id": "\x00\xff'
        self.assertProblem(self.post("alerts", body), 400, "$")
        kept = self.rejected()[:1]
        self.assertNotIn("\x00", kept.payload["raw_body"])
        self.assertEqual(base64.b64decode(kept.payload["raw_body_base64"]), body)

    # -- depth, numbers, calendar edges -------------------------------------
    def test_deep_nesting_is_refused(self):
        self.assertProblem(self.post("alerts", b"[" * 5000 + b"]" * 5000), 400, "$")
        deep = dumps(alert(extra=json.loads("[" * 40 + "]" * 40)))
        body = self.assertProblem(self.post("alerts", deep), 422, "extra" + "[0]" * 31)
        self.assertIn("deeper than 32", body["errors"][0]["message"])

    def test_large_integers_within_the_door_meet_the_schema_bounds(self):
        body = dumps(readings({"engine_hours": 10**60}, {"engine_hours": 10}))
        response = self.post("readings", body)
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(response.json()["rejected"][0]["errors"][0]["field"], "engine_hours")

    def test_timestamps_at_the_calendar_edges_are_refused(self):
        for stamp in (
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "1969-12-31T23:59:59Z",
        ):
            self.assertProblem(
                self.post("readings", dumps(readings({"at": stamp, "engine_hours": 1}))),
                422,
                "[0].at",
            )
            self.assertProblem(
                self.post("alerts", dumps(alert(occurred_at=stamp))), 422, "[0].occurred_at"
            )

    # -- ISO 15143-3 goes through the same bounds -----------------------------
    def test_iso_values_out_of_bounds_never_reach_the_machine(self):
        cases = [
            (iso(Location={"Latitude": 999, "Longitude": 2.3}), "Equipment[0].Location.Latitude"),
            (
                iso(CumulativeOperatingHours={"Hour": -50}),
                "Equipment[0].CumulativeOperatingHours.Hour",
            ),
            (iso(FuelRemaining={"Percent": 500}), "Equipment[0].FuelRemaining.Percent"),
            (
                iso(CumulativeOperatingHours={"Hour": "NaN"}),
                "Equipment[0].CumulativeOperatingHours",
            ),
            (
                iso(CumulativeOperatingHours={"Hour": 5, "datetime": "0001-01-01T00:00:00+01:00"}),
                "Equipment[0].CumulativeOperatingHours.datetime",
            ),
        ]
        long_pin = iso(CumulativeOperatingHours={"Hour": 5})
        long_pin["Equipment"][0]["EquipmentHeader"]["PIN"] = "P" * 5000
        cases.append((long_pin, "Equipment[0].EquipmentHeader.PIN"))
        for snapshot, field in cases:
            body = self.assertProblem(self.post("iso15143/fleet", dumps(snapshot)), 422, field)
            self.assertNotIn("P" * 300, json.dumps(body))
        # One bad element does not sink the others.
        mixed = iso(
            Location={"Latitude": 999, "Longitude": 2.3}, CumulativeOperatingHours={"Hour": 1500}
        )
        answer = self.post("iso15143/fleet", dumps(mixed)).json()
        self.assertEqual(answer["accepted"], 1)
        self.assertEqual(
            answer["rejected"][0]["errors"][0]["field"], "Equipment[0].Location.Latitude"
        )
        process_all(self.Event)
        self.assertEqual(self.equipment.engine_hours, 1500)
        self.assertFalse(self.equipment.telematics_latitude)
        self.assertGreaterEqual(self.equipment.fuel_level_pct, 0)

    def test_other_methods_get_a_problem_document(self):
        response = self.url_open("/telematics/v1/readings")
        self.assertProblem(response, 405, "$method")
        self.assertEqual(response.headers["Allow"], "POST")

    # -- idempotency ---------------------------------------------------------
    def test_a_replayed_problem_keeps_its_problem_type(self):
        headers = {"Idempotency-Key": "bad-batch-1"}
        body = dumps({"alerts": [alert(severity="fatal")]})
        first = self.assertProblem(self.post("alerts", body, headers=headers), 422, "[0].severity")
        second = self.assertProblem(self.post("alerts", body, headers=headers), 422, "[0].severity")
        self.assertEqual(first, second)

    def test_an_overlong_idempotency_key_is_400(self):
        response = self.post("alerts", dumps(alert()), headers={"Idempotency-Key": "k" * 256})
        self.assertProblem(response, 400, "Idempotency-Key")

    # -- least privilege and flood control ------------------------------------
    def test_ingestion_runs_as_the_technical_user(self):
        self.assertEqual(self.post("alerts", dumps(alert(event_id="who"))).status_code, 202)
        event = self.Event.search([("dedupe_key", "=", "alert:who")])
        self.assertEqual(event.create_uid, self.env.ref(INGESTION_USER))

    def test_a_source_over_its_rate_gets_429_and_others_do_not(self):
        self.source.rate_limit = 2
        other, other_key, _machine = make_fleet(self.env, suffix=" other")
        for number in range(2):
            self.assertEqual(
                self.post("alerts", dumps(alert(event_id=f"r{number}"))).status_code, 202
            )
        refused = self.post("alerts", dumps(alert(event_id="r2")))
        self.assertProblem(refused, 429, "$")
        self.assertGreaterEqual(int(refused.headers["Retry-After"]), 1)
        self.assertFalse(self.Event.search([("dedupe_key", "=", "alert:r2")]))
        for number in range(3):
            response = self.post("alerts", dumps(alert(event_id=f"o{number}")), key=other_key)
            self.assertEqual(response.status_code, 202, response.text)


class TestTelematicsIngestionUser(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env)
        cls.user = cls.env.ref(INGESTION_USER)
        cls.as_ingestion = cls.source._as_ingestion_user()

    def test_the_user_cannot_log_in_and_is_no_employee(self):
        self.assertFalse(self.user.active)
        self.env.cr.execute("SELECT password FROM res_users WHERE id = %s", [self.user.id])
        self.assertFalse(self.env.cr.fetchone()[0])
        self.assertFalse(self.user.has_group("base.group_user"))
        self.assertEqual(self.as_ingestion.env.uid, self.user.id)
        self.assertFalse(self.as_ingestion.env.su)

    def test_it_reads_its_source_and_writes_only_ledger_and_keys(self):
        env = self.as_ingestion.env
        self.assertEqual(self.as_ingestion.name, "Vendor push")
        env["construction.telematics.event"].check_access("create")
        Keys = env["construction.telematics.idempotency"]
        Keys._remember(self.as_ingestion, "k1", "0" * 64, 202, {"accepted": 1})
        self.assertEqual(Keys._find(self.as_ingestion, "k1").status, 202)
        with self.assertRaises(AccessError):
            self.as_ingestion.write({"rate_limit": 0})
        with self.assertRaises(AccessError):
            self.as_ingestion.api_key_hash  # noqa: B018
        with self.assertRaises(AccessError):
            self.as_ingestion.hmac_secret  # noqa: B018
        with self.assertRaises(AccessError):
            Keys._find(self.as_ingestion, "k1").unlink()
        with self.assertRaises(AccessError):
            env["construction.telematics.event"].search([])
        with self.assertRaises(AccessError):
            env["construction.telematics.source"].create({"name": "mine"})

    def test_it_reads_nothing_else(self):
        env = self.as_ingestion.env
        for model in (
            "maintenance.equipment",
            "maintenance.request",
            "res.partner",
            "construction.external.id",
            "construction.external.system",
            "construction.telematics.reading",
            "ir.config_parameter",
            "res.users",
        ):
            with self.assertRaises(AccessError, msg=model):
                env[model].search([], limit=1)

    def test_it_sees_no_source_of_another_company(self):
        other = self.env["res.company"].create({"name": "Other Builders"})
        other_env = self.env(context=dict(self.env.context, allowed_company_ids=[other.id]))
        foreign, _key, _machine = make_fleet(other_env, suffix=" other")
        self.assertFalse(self.as_ingestion.search([("id", "=", foreign.id)]))
        # Sending for it gives the user that company, and only that one in its environment.
        as_foreign = foreign._as_ingestion_user()
        self.assertEqual(as_foreign.env.companies, other)
        self.assertFalse(as_foreign.search([("id", "=", self.source.id)]))

    def test_an_archived_company_is_linked_once_not_on_every_request(self):
        """Odoo's cached companies of a user leave archived ones out: linking the
        company again on every request would clear every worker's caches."""
        other = self.env["res.company"].create({"name": "Archived Builders"})
        other_env = self.env(context=dict(self.env.context, allowed_company_ids=[other.id]))
        foreign, _key, _machine = make_fleet(other_env, suffix=" archived")
        foreign._as_ingestion_user()
        self.assertIn(other, self.user.company_ids)
        other.active = False
        self.env.flush_all()
        registry = self.env.registry
        registry.cache_invalidated.clear()
        foreign._as_ingestion_user()
        self.assertNotIn("default", registry.cache_invalidated)


class TestTelematicsHardeningProcessing(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]

    def test_cleared_without_open_request_is_processed_with_a_note_on_the_machine(self):
        self.Event._receive_alerts(self.source, [alert(event_id="c1", state="cleared", code="OIL")])
        self.Event._receive_alerts(self.source, [alert(event_id="c2", state="cleared", code="DEF")])
        self.Event._process_batch()
        events = self.Event.search([("source_id", "=", self.source.id)])
        self.assertEqual(set(events.mapped("state")), {"processed"})
        self.assertEqual(events.mapped("attempts"), [1, 1])
        self.assertIn("no open request", events[0].result)
        self.assertFalse(events.request_id)
        self.assertFalse(
            self.env["maintenance.request"].search([("equipment_id", "=", self.equipment.id)])
        )
        notes = " ".join(self.equipment.message_ids.mapped("body"))
        self.assertIn("OIL", notes)
        self.assertIn("DEF", notes)
        self.assertIn("no request was open", notes)

    def test_idle_hours_alone_then_engine_hours_in_a_later_batch(self):
        # Found by the fuzzer: both counters share their stamp on the machine.
        def receive(at, **values):
            reading = dict(
                device_id="DEV-1", at=fields.Datetime.to_datetime(at), _index=0, **values
            )
            self.Event._receive_readings(self.source, [reading], [])
            self.Event._process_batch()

        receive("2026-11-20 08:00:00", idle_hours=10.0)
        receive("2026-11-20 09:00:00", engine_hours=100.0)
        events = self.Event.search([("source_id", "=", self.source.id)])
        self.assertEqual(set(events.mapped("state")), {"processed"})
        self.assertEqual((self.equipment.idle_hours, self.equipment.engine_hours), (10.0, 100.0))

    def test_idempotency_keys_expire_even_without_ledger_retention(self):
        Keys = self.env["construction.telematics.idempotency"]
        Keys._remember(self.source, "old", "0" * 64, 202, {"accepted": 1})
        Keys._remember(self.source, "new", "0" * 64, 202, {"accepted": 1})
        old = Keys.search([("key", "=", "old")])
        self.env.cr.execute(
            "UPDATE construction_telematics_idempotency SET create_date = %s WHERE id = %s",
            [fields.Datetime.now() - timedelta(days=8), old.id],
        )
        for days in ("0", "-1"):
            self.env["ir.config_parameter"].set_param(
                "construction_asset_sync.telematics_retention_days", days
            )
            self.Event._cron_archive_processed()
        Keys.invalidate_model()
        self.assertEqual(Keys.search([("source_id", "=", self.source.id)]).mapped("key"), ["new"])
