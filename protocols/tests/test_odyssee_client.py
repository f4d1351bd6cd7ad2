"""The Odyssee client against the emulator over real HTTP (no database needed)."""

import base64
import logging
import os
import tempfile
import unittest
from datetime import datetime, timezone
from unittest import mock

from odyssee_emulator import Emulator, Faults, populate
from protocols import odata, odyssee_adapter, odyssee_client


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
        header = self.client._auth.header
        self.assertEqual(header, "Basic " + base64.b64encode(b"APIUser:123456@TESTAPI").decode())
        self.assertEqual(header, "Basic QVBJVXNlcjoxMjM0NTZAVEVTVEFQSQ==")  # the guide's example

    def test_a_netrc_of_the_server_never_replaces_the_backends_credentials(self):
        """A ``~/.netrc`` (``default`` entry) of Odoo's system user is not Odyssee's login."""
        with tempfile.NamedTemporaryFile("w", suffix=".netrc", delete=False) as netrc:
            netrc.write("default login someone-else password not-odyssee\n")
        self.addCleanup(os.unlink, netrc.name)
        os.chmod(netrc.name, 0o600)
        with mock.patch.dict(os.environ, {"NETRC": netrc.name}):
            client = self.make_client()
            self.assertTrue(client.get("Company")["value"])

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
        self.assertNotIn(self.client._auth.header.split()[1], joined)

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


class TestEmulatorAsDocumented(EmulatorCase):
    """The emulator behaves as the reference documents Odyssee, not as the connector hopes."""

    def test_daily_approvals_and_jobs_have_files_too(self):
        job = next(iter(self.emulator.tables["Jobs"]))
        daily = self.emulator.complete_job(job, daily=True)
        query = odata.Query(
            filter=odata.all_of(
                odata.cond("file_type_name", "eq", "JOB_APPROVAL"),
                odata.cond("id_in_table", "eq", odata.Guid(daily["id"])),
            )
        )
        self.assertEqual(len(self.client.get("DbFile", query=query)["value"]), 1)
        files = self.client.get(
            "DbFile", query=odata.Query(filter=odata.cond("db_table_name", "eq", "jobs"))
        )["value"]
        # The site photo is a plain linked file; order PDFs are generated ones.
        self.assertEqual(
            {row["file_type_name"] for row in files}, {"", "ORDERPDF", "PURCHASE_ORDERPDF"}
        )
        self.assertTrue(
            all(row["mime_type"] == "application/pdf" for row in files if row["file_type_name"])
        )

    def test_a_dispatcher_moves_a_job_without_any_approval(self):
        project = next(iter(self.emulator.tables["Project"]))
        job = self.emulator.add("Jobs", name="Planned in Odyssee", project_id=project)["id"]
        before = self.client.get("Jobs", job)
        self.emulator.set_job_status(job, "DISPATCHED")
        after = self.client.get("Jobs", job)
        self.assertEqual(after["job_status_id"], self.emulator.status_id("DISPATCHED"))
        self.assertGreater(after["modified_dateutc"], before["modified_dateutc"])
        query = odata.Query(filter=odata.cond("jobs_id", "eq", odata.Guid(job)))
        self.assertEqual(self.client.get("JobApproval", query=query)["value"], [])

    def test_a_poisoned_record_always_fails_and_the_rest_answers(self):
        job = next(iter(self.emulator.tables["Jobs"]))
        self.emulator.set_faults(Faults(poisoned={job.upper(): 500}))
        client = self.make_client(max_retries=1)
        with self.assertRaises(odyssee_client.OdysseeHTTPError) as caught:
            client.get("Jobs", job)
        self.assertEqual(caught.exception.status, 500)
        query = odata.Query(filter=odata.cond("jobs_id", "eq", odata.Guid(job)))
        with self.assertRaises(odyssee_client.OdysseeHTTPError):
            client.get("JobPartUsage", query=query)
        self.assertTrue(client.get("Jobs", query=odata.Query(top=1))["value"])

    def test_spread_work_goes_to_every_technician_and_article(self):
        tenant = Emulator(domain="TESTAPI", username="APIUser", password="123456")
        populate(tenant, users=3, articles=12, approvals=6, parts_per_approval=2, spread_work=True)
        client = self.make_client(base_url=tenant.start())
        self.addCleanup(tenant.stop)
        users = {row["id"] for row in client.iter_all("User")}
        self.assertEqual({row["user_id"] for row in client.iter_all("JobNonPartUsage")}, users)
        self.assertEqual(
            {row["code"] for row in client.iter_all("JobPartUsage")},
            {f"ART-{index:04d}" for index in range(12)},
        )
        # Without it (the tests' tenant): the first technician, the first articles.
        self.assertEqual(len({row["user_id"] for row in self.client.iter_all("JobPartUsage")}), 1)
        self.assertEqual(
            {row["code"] for row in self.client.iter_all("JobPartUsage")},
            {"ART-0000", "ART-0001", "ART-0002"},
        )

    def test_pdf_that_never_comes(self):
        job = next(iter(self.emulator.tables["Jobs"]))
        approval = self.emulator.complete_job(job, pdf_delay="never")
        query = odata.Query(filter=odata.cond("id_in_table", "eq", odata.Guid(approval["id"])))
        self.assertEqual(self.client.get("DbFile", query=query)["value"], [])

    def test_guid_case_per_table_and_per_foreign_key(self):
        self.emulator.upper_case = {"Jobs", "JobApproval.jobs_id"}
        job = next(iter(self.client.iter_all("Jobs")))
        self.assertEqual(job["id"], job["id"].upper())
        self.assertEqual(job["project_id"], job["project_id"].upper())
        approval = next(iter(self.client.iter_all("JobApproval")))
        self.assertEqual(approval["jobs_id"], approval["jobs_id"].upper())
        self.assertEqual(approval["id"], approval["id"].lower())
        # Keys and filters accept either case.
        self.assertEqual(self.client.get("Jobs", job["id"].lower())["id"], job["id"])

    def test_job_statuses_are_read_by_code_and_name(self):
        statuses = list(self.client.iter_all("JobStatus"))
        by_code = {row["code"]: row for row in statuses}
        self.assertEqual(by_code["OPEN"]["id"].lower(), "8ba9da71-ef32-423a-bb50-ae767315f55c")
        self.assertEqual(by_code["COMPLETED"]["name"], "Completed")
        # The Completed GUID is not published: it differs per tenant.
        other = Emulator()
        self.assertNotEqual(other.status_id("COMPLETED"), self.emulator.status_id("COMPLETED"))
        project = next(iter(self.emulator.tables["Project"]))
        created = self.client.create(
            "Jobs",
            {
                "name": "x",
                "project_id": project,
                "job_type_code": "SERVICE",
                "job_status_code": "PLANNED",
            },
        )
        self.assertEqual(created["job_status_id"], by_code["PLANNED"]["id"].lower())
        with self.assertRaises(odyssee_client.OdysseeHTTPError) as caught:
            self.client.update("JobStatus", by_code["OPEN"]["id"], {"name": "Nope"})
        self.assertEqual(caught.exception.status, 405)

    def test_tenant_holds_master_data_with_erp_codes_and_has_no_upsert(self):
        codes = {row["code"] for row in self.client.iter_all("Article")}
        self.assertTrue(codes)
        self.assertTrue({row["code"] for row in self.client.iter_all("User")})
        self.assertTrue({row["code"] for row in self.client.iter_all("Company")})
        code = sorted(codes)[0]
        self.client.create("Article", {"code": code, "name": "Again"})
        found = self.client.get(
            "Article", query=odata.Query(filter=odata.cond("code", "eq", code))
        )["value"]
        self.assertEqual(len(found), 2, "POST creates: the main entity has no upsert by code")

    def test_client_chosen_id_is_used_and_an_existing_one_conflicts(self):
        guid = "0B0E5E7A-1111-4222-8333-944455556666"
        created = self.client._request(
            "POST", "/Company", json={"id": guid, "code": "C-9", "name": "Nine"}
        )
        self.assertEqual(created["id"], guid.lower())
        with self.assertRaises(odyssee_client.OdysseeConflict):
            self.client._request("POST", "/Company", json={"id": guid, "name": "Nine"})


class TestChangedRowsPaging(EmulatorCase):
    """Reference 2.4: rows added or changed between page requests shift the results."""

    def pull(self, adapter_call):
        adapter = odyssee_adapter.OdysseeAdapter(self.client, 20)
        rows = [row for page in adapter_call(adapter) for row in page]
        return [odyssee_adapter.normalize(row["id"]) for row in rows]

    def test_a_row_changed_during_the_pull_makes_no_other_row_missed(self):
        finals = {
            a["id"]
            for a in self.emulator.tables["JobApproval"].values()
            if not a["is_daily_approval"]
        }
        self.assertGreater(len(finals), 20, "more than a page")
        self.emulator.set_faults(Faults(changed_between_pages="JobApproval"))
        since = odata.parse_timestamp("1980-01-01T00:00:00Z")
        seen = self.pull(lambda adapter: adapter.final_approval_pages(since))
        self.assertEqual(set(seen), finals, "every approval read at least once")

    def test_files_changed_during_the_pull_make_no_other_file_missed(self):
        files = {
            f["id"]
            for f in self.emulator.tables["DbFile"].values()
            if f["file_type_name"] == "JOB_APPROVAL" and f["db_table_name"] == "job_approval"
        }
        self.assertGreater(len(files), 20, "more than a page")
        self.emulator.set_faults(Faults(changed_between_pages="DbFile"))
        since = odata.parse_timestamp("1980-01-01T00:00:00Z")
        self.assertEqual(set(self.pull(lambda a: a.approval_file_pages(since))), files)

    def test_rows_sharing_one_stamp_beyond_a_page_are_all_read_once(self):
        self.emulator.__post_init__()
        self.emulator.set_faults(Faults(tie_timestamps=True))
        populate(self.emulator, customers=1, machines_per_customer=1, approvals=45)
        finals = [
            a["id"]
            for a in self.emulator.tables["JobApproval"].values()
            if not a["is_daily_approval"]
        ]
        since = odata.parse_timestamp("1980-01-01T00:00:00Z")
        seen = self.pull(lambda adapter: adapter.final_approval_pages(since))
        self.assertEqual(sorted(seen), sorted(finals))


class TestTopAsStandardODataReadsIt(EmulatorCase):
    """The reference documents $top only as asking for fewer rows a page; in standard
    Web API OData it caps the whole result. The reads must not depend on which."""

    def setUp(self):
        super().setUp()
        self.emulator.set_faults(Faults(top_caps_result=True))
        self.adapter = odyssee_adapter.OdysseeAdapter(self.client, 20)

    def test_the_lines_of_a_page_of_jobs_all_come_in(self):
        approvals = [
            a for a in self.emulator.tables["JobApproval"].values() if not a["is_daily_approval"]
        ][:20]
        parts, times = self.adapter.lines_of(approvals)
        jobs = {a["jobs_id"] for a in approvals}
        expected = [
            p for p in self.emulator.tables["JobPartUsage"].values() if p["jobs_id"] in jobs
        ]
        self.assertGreater(len(expected), 20, "more lines than a page")
        self.assertEqual(len(parts), len(expected))
        self.assertTrue(times)

    def test_changed_rows_beyond_a_page_come_in_in_one_pull(self):
        since = odata.parse_timestamp("1980-01-01T00:00:00Z")
        rows = [row for page in self.adapter.final_approval_pages(since) for row in page]
        self.assertEqual(len(rows), 25)

    def test_with_a_page_size_under_20_every_row_line_file_and_status_comes_in(self):
        """$top=5 sent, and capping the result: a full page comes without a next link."""
        adapter = odyssee_adapter.OdysseeAdapter(self.client, 5)
        since = odata.parse_timestamp("1980-01-01T00:00:00Z")
        tables = self.emulator.tables
        finals = [a for a in tables["JobApproval"].values() if not a["is_daily_approval"]]
        approvals = [row for page in adapter.final_approval_pages(since) for row in page]
        self.assertEqual(sorted(a["id"] for a in approvals), sorted(a["id"] for a in finals))
        jobs = [row for page in adapter.job_pages(since) for row in page]
        self.assertEqual(len(jobs), len(tables["Jobs"]))
        files = [row for page in adapter.approval_file_pages(since) for row in page]
        self.assertEqual(
            len(files),
            len([f for f in tables["DbFile"].values() if f["file_type_name"] == "JOB_APPROVAL"]),
        )
        parts, times = adapter.lines_of(finals[:20])
        job_ids = {a["jobs_id"] for a in finals[:20]}
        for controller, lines in (("JobPartUsage", parts), ("JobNonPartUsage", times)):
            expected = [r for r in tables[controller].values() if r["jobs_id"] in job_ids]
            self.assertEqual(len(lines), len(expected), controller)
        self.assertEqual(len(adapter.job_statuses()), len(tables["JobStatus"]))

    def test_with_a_page_size_under_20_rows_sharing_one_stamp_are_all_read_once(self):
        self.emulator.__post_init__()
        self.emulator.set_faults(Faults(tie_timestamps=True, top_caps_result=True))
        populate(self.emulator, customers=1, machines_per_customer=1, approvals=45)
        finals = [
            a["id"]
            for a in self.emulator.tables["JobApproval"].values()
            if not a["is_daily_approval"]
        ]
        adapter = odyssee_adapter.OdysseeAdapter(self.client, 5)
        since = odata.parse_timestamp("1980-01-01T00:00:00Z")
        seen = [row["id"] for page in adapter.final_approval_pages(since) for row in page]
        self.assertEqual(sorted(seen), sorted(finals))


class TestManyRowsAtOnce(EmulatorCase):
    """An import takes several pages at once; what it asks by id stays within what a
    default IIS accepts of a query string (2,048 bytes), by twenties."""

    def setUp(self):
        super().setUp()
        self.emulator.__post_init__()
        populate(self.emulator, customers=2, machines_per_customer=2, approvals=45)
        self.adapter = odyssee_adapter.OdysseeAdapter(self.client, 20)
        self.finals = [
            a for a in self.emulator.tables["JobApproval"].values() if not a["is_daily_approval"]
        ]
        self.emulator.calls_by_controller.clear()

    def test_a_long_id_filter_is_refused_as_iis_refuses_it(self):
        guids = [odata.Guid(a["id"]) for a in self.finals]
        with self.assertRaises(odyssee_client.OdysseeHTTPError) as caught:
            self.client.get("JobApproval", query=odata.Query(filter=odata.any_of("id", guids)))
        self.assertEqual(caught.exception.status, 404)
        self.assertIn("query string is too long", caught.exception.body)

    def test_rows_jobs_and_lines_of_many_approvals_come_twenty_ids_a_call(self):
        self.assertEqual(len(self.finals), 45)
        rows = self.adapter.rows_by_id("JobApproval", [a["id"] for a in self.finals])
        self.assertEqual(set(rows), {odyssee_adapter.normalize(a["id"]) for a in self.finals})
        self.assertEqual(self.emulator.calls_by_controller["JobApproval"], 3)
        jobs = self.adapter.jobs_of(self.finals)
        self.assertEqual(set(jobs), {odyssee_adapter.normalize(a["jobs_id"]) for a in self.finals})
        parts, times = self.adapter.lines_of(self.finals)
        job_ids = {a["jobs_id"] for a in self.finals}
        for controller, lines in (("JobPartUsage", parts), ("JobNonPartUsage", times)):
            expected = [
                row["id"]
                for row in self.emulator.tables[controller].values()
                if row["jobs_id"] in job_ids
            ]
            self.assertEqual(sorted(row["id"] for row in lines), sorted(expected), controller)

    def test_a_smaller_page_size_asks_as_many_ids_a_call_where_top_caps_the_result(self):
        self.emulator.set_faults(Faults(top_caps_result=True))
        adapter = odyssee_adapter.OdysseeAdapter(self.client, 5)
        rows = adapter.rows_by_id("JobApproval", [a["id"] for a in self.finals[:20]])
        self.assertEqual(len(rows), 20)
        self.assertEqual(self.emulator.calls_by_controller["JobApproval"], 4)
        self.assertEqual(len(adapter.jobs_of(self.finals[:20])), 20)

    def test_pages_are_joined_whole_until_a_batch_has_its_rows(self):
        pages = [[1, 2], [3], [], [4, 5, 6, 7], [8]]
        self.assertEqual(
            list(odyssee_adapter.batches(iter(pages), 3)), [[1, 2, 3], [4, 5, 6, 7], [8]]
        )
        self.assertEqual(list(odyssee_adapter.batches(iter([[]]), 3)), [])


class TestLookupByKey(EmulatorCase):
    """Reference section 3: the API has no upsert, so a record is looked up by its
    ERP key before it is created; ``find_by_keys`` does it for many keys at once."""

    def test_many_keys_are_looked_up_a_page_at_a_time_with_what_one_lookup_finds(self):
        codes = sorted(row["code"] for row in self.client.iter_all("Article"))
        self.client.create("Article", {"code": codes[0], "name": "Same code again"})
        asked = [*codes, "NOT-THERE", "O'BRIEN", *(f"NEW-{n}" for n in range(30))]
        self.emulator.calls_by_controller.clear()
        found = odyssee_adapter.find_by_keys(self.client, "Article", "code", asked)
        self.assertEqual(self.emulator.calls_by_controller["Article"], -(-len(set(asked)) // 20))
        for code in asked:
            one = odyssee_adapter.find_by_key(self.client, "Article", "code", code)
            self.assertEqual(
                sorted(row["id"] for row in found[code]), sorted(row["id"] for row in one), code
            )
        self.assertEqual(len(found[codes[0]]), 2)
        self.assertEqual(found["NOT-THERE"], [])

    def test_a_tenant_comparing_without_case_gives_each_row_to_the_key_asked(self):
        class SqlServerTenant:  # its default collation: no case, no trailing spaces
            def __init__(self, codes):
                self.rows = [{"id": f"id-{n}", "code": code} for n, code in enumerate(codes)]
                self.queries = []

            def iter_all(self, controller, query):
                self.queries.append(query)
                asked = query.filter.casefold()
                return [r for r in self.rows if f"'{r['code'].casefold().rstrip()}'" in asked]

        tenant = SqlServerTenant(["ABC-1", "xyz"])
        found = odyssee_adapter.find_by_keys(tenant, "Article", "code", ["abc-1", "XYZ", "other"])
        self.assertEqual(
            found,
            {
                "abc-1": [{"id": "id-0", "code": "ABC-1"}],
                "XYZ": [{"id": "id-1", "code": "xyz"}],
                "other": [],
            },
        )
        # Codes alike but for case are asked apart: each gets what its own call
        # answers, on a tenant comparing without case as on one comparing with it.
        tenant = SqlServerTenant(["ABC-1"])
        found = odyssee_adapter.find_by_keys(tenant, "Article", "code", ["abc-1", "ABC-1"])
        self.assertEqual(len(tenant.queries), 2)
        self.assertEqual(found["abc-1"], found["ABC-1"])
        self.assertEqual(found["abc-1"], [{"id": "id-0", "code": "ABC-1"}])
        codes = {row["code"] for row in self.client.iter_all("Article")}
        code = sorted(codes)[0]
        found = odyssee_adapter.find_by_keys(self.client, "Article", "code", [code, code.lower()])
        self.assertEqual(len(found[code]), 1)
        self.assertEqual(found[code.lower()], [], "the emulator compares with case")
        # A row no value names ("PAD " for "PAD"): what found nothing is not said
        # to be missing, and is left to a lookup of its own.
        tenant = SqlServerTenant(["PAD ", "xyz"])
        found = odyssee_adapter.find_by_keys(tenant, "Article", "code", ["PAD", "XYZ", "other"])
        self.assertEqual(found, {"XYZ": [{"id": "id-1", "code": "xyz"}]})

    def test_long_codes_take_more_calls_so_that_each_query_stays_short(self):
        class Tenant:
            queries = []

            def iter_all(self, controller, query):
                self.queries.append(query.to_string())
                return []

        tenant = Tenant()
        codes = [f"{n:02d}-" + "é/" * 24 for n in range(20)]  # 50 characters, encoded 3x
        found = odyssee_adapter.find_by_keys(tenant, "Article", "code", codes)
        self.assertEqual(found, {code: [] for code in codes})
        self.assertGreater(len(tenant.queries), 1)
        self.assertLessEqual(max(len(query) for query in tenant.queries), 2048)


class TestIdempotentWrites(EmulatorCase):
    def companies(self, code):
        return [row for row in self.emulator.tables["Company"].values() if row["code"] == code]

    def test_post_without_an_id_is_never_retried_blindly(self):
        for faults in (
            Faults(every_nth_lost_answer=2),
            Faults(every_nth_truncate=2),
            Faults(every_nth_500=2),
        ):
            with self.subTest(faults=faults):
                self.emulator.set_faults(faults)
                code = f"NOID-{faults.every_nth_lost_answer}{faults.every_nth_truncate}"
                with self.assertRaises(odyssee_client.OdysseeError):
                    self.client.create("Company", {"code": code, "name": "No id"})
                self.assertLessEqual(len(self.companies(code)), 1)

    def test_post_with_a_client_id_survives_a_lost_answer(self):
        for number, faults in enumerate(
            (
                Faults(every_nth_lost_answer=2),
                Faults(every_nth_truncate=2),
                Faults(every_nth_drop=2),
                Faults(every_nth_429=2, retry_after_seconds=0),
            )
        ):
            with self.subTest(faults=faults):
                self.emulator.set_faults(faults)
                guid = f"7d0c0de0-0000-4000-8000-00000000000{number}"
                created = self.client.create(
                    "Company", {"id": guid, "code": f"ID-{number}", "name": "With id"}
                )
                self.assertEqual(created["id"].lower(), guid)
                self.assertEqual(len(self.companies(f"ID-{number}")), 1)

    def test_a_conflict_adopts_the_record_an_earlier_run_created(self):
        guid = "7d0c0de0-0000-4000-8000-0000000000aa"
        self.emulator.add("Company", id=guid, code="EARLIER", name="Created before a crash")
        created = self.client.create("Company", {"id": guid, "code": "EARLIER", "name": "Again"})
        self.assertTrue(created["@adopted"])
        self.assertEqual(len(self.companies("EARLIER")), 1)
