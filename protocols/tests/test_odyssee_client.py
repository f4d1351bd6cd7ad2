"""The Odyssee client against the emulator over real HTTP (no database needed)."""

import base64
import logging
import unittest
from datetime import datetime, timezone

from odyssee_emulator import Emulator, Faults, populate
from protocols import odata, odyssee_client


class EmulatorCase(unittest.TestCase):
    def setUp(self):
        self.emulator = Emulator(domain="TESTAPI", username="APIUser", password="123456")
        populate(self.emulator, customers=2, machines_per_customer=2, approvals=25)
        self.url = self.emulator.start()
        self.addCleanup(self.emulator.stop)
        self.records = []
        self.client = self.make_client()

    def make_client(self, **overrides):
        options = {
            "base_url": self.url,
            "domain": "TESTAPI",
            "username": "APIUser",
            "password": "123456",
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "max_requests_per_second": 0,
            "on_call": self.records.append,
        }
        options.update(overrides)
        return odyssee_client.OdysseeClient(**options)


class TestOData(unittest.TestCase):
    def test_literals(self):
        self.assertEqual(odata.literal("O'Brien"), "'O''Brien'")
        self.assertEqual(odata.literal(False), "false")
        self.assertEqual(
            odata.literal(odata.Guid("F5934EB2-0F73-41A2-B726-12601DFF35CB")),
            "f5934eb2-0f73-41a2-b726-12601dff35cb",
        )
        stamp = datetime(2015, 7, 14, 15, 8, 0, 123456, tzinfo=timezone.utc)
        self.assertEqual(odata.literal(stamp), "'2015-07-14T15:08:00.123Z'")

    def test_query_string_is_encoded_and_names_are_checked(self):
        query = odata.Query(
            filter=odata.all_of(
                odata.cond("code", "eq", "A B"), odata.cond("archived", "eq", False)
            ),
            orderby="modified_dateutc asc",
            select=["id", "code"],
            top=5,
            skip=10,
        )
        self.assertEqual(
            query.to_string(),
            "$filter=code%20eq%20%27A%20B%27%20and%20archived%20eq%20false"
            "&$orderby=modified_dateutc%20asc&$select=id,code&$top=5&$skip=10",
        )
        with self.assertRaises(ValueError):
            odata.cond("code; drop", "eq", 1)
        with self.assertRaises(ValueError):
            odata.Query(orderby="id sideways")


class TestClient(EmulatorCase):
    def test_basic_auth_uses_user_password_at_domain(self):
        header = self.client._headers["Authorization"]
        self.assertEqual(header, "Basic " + base64.b64encode(b"APIUser:123456@TESTAPI").decode())
        self.assertEqual(header, "Basic QVBJVXNlcjoxMjM0NTZAVEVTVEFQSQ==")  # the guide's example

    def test_paging_follows_next_links(self):
        query = odata.Query(
            filter=odata.cond("is_daily_approval", "eq", False), orderby="modified_dateutc asc"
        )
        pages = list(self.client.iter_pages("JobApproval", query))
        self.assertEqual([len(page) for page in pages], [20, 5])
        stamps = [row["modified_dateutc"] for page in pages for row in page]
        self.assertEqual(stamps, sorted(stamps))

    def test_wrong_credentials_raise_a_typed_error_without_the_password(self):
        client = self.make_client(password="wrong-secret-value")
        with self.assertRaises(odyssee_client.OdysseeAuthError) as caught:
            client.get("Company")
        self.assertEqual(caught.exception.status, 401)
        self.assertNotIn("wrong-secret-value", str(caught.exception) + repr(client))

    def test_validation_errors_carry_the_body(self):
        with self.assertRaises(odyssee_client.OdysseeValidationError) as caught:
            self.client.create(
                "Jobs", {"name": "x", "job_type_code": "NOPE", "project_reference_back_office": "P"}
            )
        self.assertEqual(caught.exception.status, 422)
        self.assertIn("job_type_code", caught.exception.body)
        with self.assertRaises(odyssee_client.OdysseeValidationError) as caught:
            self.client.create("Company", {"code": "C1"})
        self.assertEqual(caught.exception.status, 400)

    def test_post_returns_the_new_id_and_stamps_modification(self):
        created = self.client.create("Company", {"code": "ERP-1", "name": "Builder & Co"})
        self.assertRegex(created["id"], r"^[0-9a-f-]{36}$")
        self.assertNotEqual(created["modified_dateutc"], "1980-01-01T00:00:00.000")
        updated = self.client.update("Company", created["id"], {"city": "Nantes"})
        self.assertEqual((updated["name"], updated["city"]), ("Builder & Co", "Nantes"))
        self.assertGreater(updated["modified_dateutc"], created["modified_dateutc"])

    def test_transient_faults_end_in_success(self):
        for faults in (
            Faults(every_nth_429=2, retry_after_seconds=0),
            Faults(every_nth_500=2),
            Faults(every_nth_drop=2),
            Faults(every_nth_truncate=2),
        ):
            with self.subTest(faults=faults):
                self.emulator.set_faults(faults)
                self.records.clear()
                rows = list(self.client.iter_all("Company"))
                self.assertEqual(len(rows), 2)
                self.assertTrue(any(record.retries for record in self.records))

    def test_retry_after_is_honoured(self):
        self.emulator.set_faults(Faults(every_nth_429=1, retry_after_seconds=0))
        client = self.make_client(max_retries=2)
        with self.assertRaises(odyssee_client.OdysseeHTTPError) as caught:
            client.get("Company")
        self.assertEqual(caught.exception.status, 429)
        self.assertEqual(caught.exception.retries, 2)
        self.assertEqual(client.calls, 3)

    def test_persistent_failure_gives_up_with_the_status(self):
        self.emulator.set_faults(Faults(always_status=503))
        with self.assertRaises(odyssee_client.OdysseeHTTPError) as caught:
            self.make_client(max_retries=3).get("Company")
        self.assertEqual((caught.exception.status, caught.exception.retries), (503, 3))

    def test_strict_query_syntax(self):
        for bad in (
            "modified_dateutc gt 2020-01-01T00:00:00Z",  # bare date
            "code eq ABC",  # unquoted string
            "jobs_id eq 'f5934eb2-0f73-41a2-b726-12601dff35cb'",  # quoted GUID
            "nonexistent eq 1",
            "substringof('a', code)",
        ):
            with self.subTest(filter=bad), self.assertRaises(odyssee_client.OdysseeValidationError):
                self.client.get("JobApproval", query=f"$filter={bad}")
        with self.assertRaises(odyssee_client.OdysseeValidationError):
            self.client.get("Jobs", query="$expand=project")

    def test_rate_limit_spaces_calls(self):
        import time

        client = self.make_client(max_requests_per_second=20)
        started = time.monotonic()
        for _ in range(6):
            client.get("Company")
        self.assertGreaterEqual(time.monotonic() - started, 0.24)

    def test_no_secret_in_log_lines(self):
        with self.assertLogs(odyssee_client._logger, level=logging.INFO) as logs:
            self.emulator.set_faults(Faults(every_nth_500=2))
            list(self.client.iter_all("Company"))
            list(self.client.iter_all("Company"))
        joined = "\n".join(logs.output)
        self.assertIn("retry", joined)
        self.assertNotIn("123456", joined)
        self.assertNotIn(self.client._headers["Authorization"].split()[1], joined)

    def test_pdf_appears_later(self):
        self.emulator.set_faults(Faults(pdf_delay_seconds=0.3))
        job = next(iter(self.emulator.tables["Jobs"]))
        approval = self.emulator.complete_job(job)
        query = odata.Query(filter=odata.cond("id_in_table", "eq", odata.Guid(approval["id"])))
        self.assertEqual(self.client.get("DbFile", query=query)["value"], [])
        import time

        time.sleep(0.35)
        files = self.client.get("DbFile", query=query)["value"]
        self.assertEqual(len(files), 1)
        self.assertNotIn("file_content", files[0])
        content = self.client.get("DbFile", files[0]["id"])["file_content"]
        self.assertTrue(base64.b64decode(content).startswith(b"%PDF"))
