import threading
from contextlib import contextmanager
from datetime import timedelta
from unittest.mock import patch

import psycopg2
from odoo import Command, sql_db
from odoo.addons.construction_asset_sync import cpu_priority, set_wise_insert
from odoo.addons.construction_asset_sync.models import (
    construction_odyssee_backend as backend_module,
)
from odoo.addons.construction_asset_sync.models import construction_odyssee_exporter as exporter
from odoo.addons.construction_asset_sync.models import (
    construction_odyssee_importer as importer_module,
)
from odoo.addons.construction_asset_sync.models.account_analytic_line import PLANS_READ_ONCE
from odoo.addons.construction_asset_sync.models.construction_odyssee_backend import (
    SYNC_LOCK,
    telematics_waiting,
)
from odoo.addons.construction_asset_sync.models.construction_odyssee_stream import record_error
from odoo.addons.construction_asset_sync.models.construction_telematics_event import (
    WORKER_APPLICATION_NAME,
)
from odoo.addons.construction_asset_sync.odyssee_emulator import MIXED_CASE, Faults, populate
from odoo.addons.construction_asset_sync.protocols import odata, odyssee_client
from odoo.addons.construction_asset_sync.set_wise_insert import insert_records
from odoo.models import LOG_ACCESS_COLUMNS
from odoo.tests import TransactionCase, tagged

from .common import OdysseeEmulatorMixin, committed_env
from .telematics_common import drop_committed_fleet, make_fleet


class SimulatedCrash(BaseException):
    pass


# The importer's own batch, before OdysseeCase sets a transaction per page.
DEFAULT_ROWS_PER_TRANSACTION = importer_module.ROWS_PER_TRANSACTION


@tagged("post_install", "-at_install")
class OdysseeCase(OdysseeEmulatorMixin, TransactionCase):
    APPROVALS = 25

    def setUp(self):
        super().setUp()
        # A transaction per page of 20, as Odyssee serves them: with a few dozen
        # rows, the tests below cross the edges of transactions and pages alike.
        self.rows_per_transaction(20)
        self.emulator.__post_init__()  # a fresh tenant per test
        self.emulator.set_faults(Faults())  # and none of the faults a test before injected
        self.approvals = populate(
            self.emulator,
            customers=2,
            machines_per_customer=2,
            articles=4,
            users=2,
            approvals=self.APPROVALS,
            parts_per_approval=3,
            timesheets_per_approval=2,
            daily_every=5,
        )
        self.backend = self._new_backend(rate_limit=0, max_retries=3)
        self.job_site = self.env["project.project"].create({"name": "Site A"})
        self.backend.default_project_id = self.job_site
        users = list(self.emulator.tables["User"].values())
        self.technician = self.env["hr.employee"].create(
            {"name": "Tech zero", "odyssee_user_guid": users[0]["id"]}
        )
        # Articles 0-1 are known products; ART-0002, also used on jobs, is not.
        for article in list(self.emulator.tables["Article"].values())[:2]:
            self.env["product.product"].create(
                {"name": article["name"], "default_code": article["code"]}
            )
        machines = list(self.emulator.tables["Project"].values())
        self.machine = self.env["maintenance.equipment"].create(
            {
                "name": "Mapped machine",
                "odyssee_installation_guid": machines[0]["id"],
                "job_site_project_id": self.job_site.id,
            }
        )
        self.Approval = self.env["construction.odyssee.approval"]
        self.Line = self.env["construction.odyssee.usage.line"]

    def assertTenantImported(self):
        """Every final approval of the tenant in, with its PDF, and every line of its
        jobs (5 a final approval, 2 more with a daily one, every fifth job)."""
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS)
        self.assertEqual(len(approvals.pdf_attachment_id), self.APPROVALS)
        daily_lines = len([i for i in range(self.APPROVALS) if i % 5 == 0]) * 2
        self.assertEqual(
            self.Line.search_count([("backend_id", "=", self.backend.id)]),
            self.APPROVALS * 5 + daily_lines,
        )

    @contextmanager
    def approval_imports(self, crash_at=None):
        """The sizes of the approvals' imports while in the block (a list it fills);
        the ``crash_at``-th import raises ``SimulatedCrash`` instead."""
        importer_class = type(self.env["construction.odyssee.importer"])
        original = importer_class._import_approval_page
        sizes = []

        def recorded(importer, backend, adapter, rows):
            sizes.append(len(rows))
            if len(sizes) == crash_at:
                raise SimulatedCrash
            return original(importer, backend, adapter, rows)

        with patch.object(importer_class, "_import_approval_page", recorded):
            yield sizes

    @staticmethod
    def crashed(stream):
        """Run ``stream``; whether it crashed. Not assertRaises: Odoo's rolls back a
        savepoint around its block, which would hide what the crashed run left behind."""
        try:
            stream._run()
        except SimulatedCrash:
            return True
        return False

    def rows_per_transaction(self, rows):
        patcher = patch.object(importer_module, "ROWS_PER_TRANSACTION", rows)
        patcher.start()
        self.addCleanup(patcher.stop)

    def stream(self, kind):
        return self.backend.stream_ids.filtered(lambda s: s.kind == kind)

    def pull(self):
        """The pulls of a sync, in its order; returns how the approvals and PDF pulls ended."""
        self.stream("jobs")._run()
        return self.stream("approvals")._run(), self.stream("pdfs")._run()


class TestOdysseePull(OdysseeCase):
    def test_full_pull_imports_everything_with_batched_calls(self):
        self.emulator.calls = 0
        self.assertEqual(self.pull(), (True, True))
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS, "daily approvals are not imported")
        final_lines = self.APPROVALS * 5
        daily_lines = len([i for i in range(self.APPROVALS) if i % 5 == 0]) * 2
        lines = self.Line.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(lines), final_lines + daily_lines)
        self.assertTrue(all(approvals.mapped("request_id")))
        self.assertEqual(set(approvals.request_id.mapped("request_origin")), {"odyssee"})
        self.assertTrue(all(approvals.mapped("pdf_attachment_id")))
        approval_calls = self.stream("approvals").last_calls
        guide_flow = 2 + 3 * self.APPROVALS  # approval pages, then Jobs, parts, time per approval
        self.assertLessEqual(approval_calls * 5, guide_flow, "at least 5x fewer calls")
        self.assertEqual(self.stream("approvals").state, "ok")
        self.assertEqual(self.stream("approvals").total_count, self.APPROVALS)
        log = self.env["construction.odyssee.call.log"].search(
            [("backend_id", "=", self.backend.id)]
        )
        self.assertTrue(log)
        self.assertFalse(log.filtered(lambda c: "s3cret" in (c.query or "") + (c.error or "")))

    def test_the_sync_yields_the_cpu_and_the_caller_keeps_its_priority(self):
        """Telematics keeps its speed during a long import: the sync runs at nice 10, in a
        thread of its own, and the HTTP worker or cron thread that called it does not."""
        Backend = type(self.backend)
        original = Backend._sync_at_current_priority
        seen = []

        def observed(backend, *args):
            seen.append((threading.get_native_id(), cpu_priority.thread_niceness()))
            return original(backend, *args)

        caller = cpu_priority.thread_niceness()
        self.assertEqual(
            self.env["res.config.settings"]._construction_setting("odyssee_sync_niceness"), 10
        )
        Parameter = self.env["ir.config_parameter"]
        # Lower than the caller, whatever priority the test runs at.
        Parameter.set_param("construction_asset_sync.odyssee_sync_niceness", str(caller + 5))
        with patch.object(Backend, "_sync_at_current_priority", observed):
            self.assertTrue(self.backend._sync())
            Parameter.set_param("construction_asset_sync.odyssee_sync_niceness", "0")
            self.backend._sync()
        self.assertEqual(cpu_priority.thread_niceness(), caller)
        (niced_thread, niceness), (direct_thread, direct_niceness) = seen
        self.assertNotEqual(niced_thread, threading.get_native_id())
        self.assertEqual(niceness, caller + 5)
        self.assertEqual((direct_thread, direct_niceness), (threading.get_native_id(), caller))
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS)
        self.assertTrue(all(approvals.mapped("pdf_attachment_id")))

    def test_caches_the_sync_clears_are_signalled_from_the_callers_thread(self):
        """Odoo records per thread which caches a transaction cleared, and signals them
        to the other workers from the thread of the request or job."""
        Backend = type(self.backend)
        registry = self.env.registry
        registry.cache_invalidated.clear()
        cleared_in = []

        def clears_a_cache(backend, *_args):
            cleared_in.append(threading.get_native_id())
            backend.env.registry.clear_cache("assets")
            return True

        with patch.object(Backend, "_sync_at_current_priority", clears_a_cache):
            self.assertTrue(self.backend._sync())
        self.assertNotEqual(cleared_in, [threading.get_native_id()], "ran in its own thread")
        self.assertIn("assets", registry.cache_invalidated)
        registry.cache_invalidated.clear()

    def test_requests_a_user_imports_name_them_and_they_follow(self):
        """Sync now runs as the user: the requests it creates carry that user's employee
        (the default), and the user follows them; the scheduled action (OdooBot) has none."""
        user = self.env.ref("base.user_admin")
        employee = user.with_company(self.backend.company_id).employee_id
        self.assertTrue(employee, "the demo administrator has an employee")
        for kind in ("jobs", "approvals"):
            self.assertTrue(self.stream(kind).with_user(user).sudo()._run())
        requests = self.Approval.search([("backend_id", "=", self.backend.id)]).request_id
        self.assertTrue(requests)
        self.assertEqual(requests.employee_id, employee)
        unfollowed = requests.filtered(lambda r: user.partner_id not in r.message_partner_ids)
        self.assertFalse(unfollowed)

    def test_lines_become_parts_and_timesheets_with_flags(self):
        self.pull()
        lines = self.Line.search([("backend_id", "=", self.backend.id)])
        parts, times = (
            lines.filtered(lambda line: line.kind == "part"),
            lines.filtered(lambda line: line.kind == "time"),
        )
        known = parts.filtered("product_id")
        self.assertTrue(known and all(p.product_id.default_code == p.code for p in known))
        unknown_article = parts.filtered(lambda line: line.code == "ART-0002")
        self.assertTrue(unknown_article)
        self.assertIn("Unknown article", unknown_article[0].issue)
        booked = times.filtered("timesheet_id")
        self.assertEqual(set(booked.employee_id.ids), {self.technician.id})
        self.assertFalse(times.filtered(lambda line: not line.employee_id and not line.issue))
        on_machine = booked.filtered(lambda line: line.request_id.equipment_id == self.machine)
        self.assertTrue(on_machine)
        self.assertEqual(on_machine.timesheet_id.project_id, self.job_site)
        sheet = on_machine.timesheet_id[0]
        self.assertEqual(sheet.unit_amount, sheet.odyssee_usage_line_id.quantity)
        self.assertTrue(parts.filtered("is_under_warranty"))

    def test_timesheets_are_what_odoo_makes_of_a_timesheet_with_the_job_sites_plans(self):
        """Timesheets are created a page at a time, the analytic plans read once for
        the page: each holds what Odoo's own ``create`` gives one timesheet."""
        plan = self.env["account.analytic.plan"].create(
            {
                "name": "Cost centres",
                "applicability_ids": [
                    Command.create({"business_domain": "timesheet", "applicability": "mandatory"})
                ],
            }
        )
        column = plan._column_name()
        self.job_site[column] = self.env["account.analytic.account"].create(
            {"name": "North", "plan_id": plan.id}
        )
        self.technician.hourly_cost = 40.0
        Plan = type(self.env["account.analytic.plan"])
        with patch.object(
            Plan, "get_relevant_plans", autospec=True, side_effect=Plan.get_relevant_plans
        ) as asked:
            self.pull()
        lines = self.Line.search([("backend_id", "=", self.backend.id), ("kind", "=", "time")])
        sheets = lines.timesheet_id
        pages = -(-self.APPROVALS // 20)
        self.assertLessEqual(asked.call_count, pages, "once a page, not once a timesheet")
        self.assertFalse([key for key in self.env.cr.cache if key[0] == PLANS_READ_ONCE])
        self.assertEqual(len(sheets), len(lines.filtered("employee_id")))
        names = ["account_id", column, "amount", "company_id", "product_uom_id", "currency_id"]
        for sheet in sheets[:3]:
            made = self.env["account.analytic.line"].create(
                {
                    "name": sheet.name,
                    "project_id": sheet.project_id.id,
                    "employee_id": sheet.employee_id.id,
                    "unit_amount": sheet.unit_amount,
                    "date": sheet.date,
                }
            )
            self.assertEqual(
                made.read(names, load=None), [dict(sheet.read(names, load=None)[0], id=made.id)]
            )
        self.assertEqual(sheets[0][column].name, "North")
        self.assertEqual(sheets[0].amount, -sheets[0].unit_amount * 40.0)

    def assert_computes_agree(self, records, names):
        """``records`` hold in ``names`` what Odoo computes for them again."""
        stored = records.read(names)
        for name in names:
            self.env.add_to_compute(records._fields[name], records)
        self.env.flush_all()
        records.invalidate_recordset(names)
        self.assertEqual(records.read(names), stored)

    def test_imported_records_hold_what_their_computes_give(self):
        """An import gives the stored computes at create: Odoo's own computation agrees."""
        customer = self.env["res.partner"].create({"name": "Customer Co", "is_company": True})
        contact = self.env["res.partner"].create({"name": "On site", "parent_id": customer.id})
        site = self.env["project.project"].create({"name": "Site B", "partner_id": contact.id})
        self.machine.job_site_project_id = site
        # Quantities Odoo rounds when it stores them (2 digits): 0.004 is 0, not invoiceable.
        parts = list(self.emulator.tables["JobPartUsage"].values())
        times = list(self.emulator.tables["JobNonPartUsage"].values())
        parts[0]["quantity"], parts[2]["quantity"], times[0]["quantity"] = 0.004, 0.333, 1.005
        self.pull()
        lines = self.Line.search([("backend_id", "=", self.backend.id)])
        names = list(self.Line.COMPUTED_AT_IMPORT)
        on_machine = lines.filtered(lambda line: line.request_id.equipment_id == self.machine)
        self.assertTrue(on_machine and on_machine != lines)
        self.assertEqual(set(on_machine.mapped("project_id.name")), {"Site B"})
        self.assertEqual(on_machine.customer_id, customer)
        self.assertEqual((lines - on_machine).project_id, self.job_site)
        warranty = lines.filtered("is_under_warranty")
        self.assertTrue(warranty and not any(warranty.mapped("amount")))
        for line in lines - warranty:
            self.assertAlmostEqual(line.amount, line.quantity * line.price, places=2)
        nothing = lines.filtered(lambda line: not line.quantity)
        self.assertEqual(len(nothing), 1, "0.004 is stored as 0")
        self.assertEqual(nothing.invoice_status, "no")
        self.assertEqual(set((lines - nothing).mapped("invoice_status")), {"to_invoice"})
        self.assertIn(0.33, lines.mapped("quantity"))
        self.assert_computes_agree(lines, names)
        # Approvals: their machine and issue count as the lines left them.
        approvals = lines.approval_id
        self.assertEqual(approvals.filtered("equipment_id").equipment_id, self.machine)
        with_issue = approvals.filtered(lambda a: a.line_ids.filtered("issue"))
        self.assertTrue(with_issue and all(with_issue.mapped("issue_count")))
        self.assertFalse(any((approvals - with_issue).mapped("issue_count")))

    def test_a_pages_lines_inserted_at_once_are_what_create_makes_of_them(self):
        """A page's new lines go in with one INSERT: each row, and what Odoo derives
        from it (the approval's lines and issue count), is what ``create`` gives."""
        self.pull()
        approval = self.Approval.search([("backend_id", "=", self.backend.id)], limit=1)
        product = self.env["product.product"].create({"name": "Bolt", "default_code": "B-1"})
        common = {
            "backend_id": self.backend.id,
            "approval_id": approval.id,
            "approval_guid": "a" * 8,
            "job_guid": "b" * 8,
            "request_id": approval.request_id.id,
            "working_date": "2026-03-01",
        }
        vals_list = [
            # Rounded as stored: 2 digits for quantities, the currency's for amounts.
            dict(
                common,
                kind="part",
                name="Bolt, 10% off: 'M8' \\ 100%s",
                code="B-1",
                product_id=product.id,
                quantity=2.675,
                price=0.125,
                is_under_warranty=False,
            ),
            dict(
                common,
                kind="time",
                name="Work",
                code="WT",
                type_code="WorkingTime",
                employee_id=self.technician.id,
                quantity=1e15 + 0.333,
                price=33.3333,
                is_under_warranty=True,
                user_guid="c" * 8,
            ),
            dict(
                common,
                kind="part",
                name="Mystery",
                code="X",
                quantity=0.004,
                price=-1e-9,
                request_id=False,
                issue="Unknown article X",
            ),
        ]
        line_ids, issue_count = approval.line_ids, approval.issue_count
        inserted = self.Line.sudo()._create_imported([dict(vals) for vals in vals_list])
        self.assertEqual(approval.line_ids, line_ids | inserted, "the cached lines learn them")
        self.assertEqual(approval.issue_count, issue_count + 1)
        with patch.object(set_wise_insert, "insert_records", return_value=None):
            created = self.Line.sudo()._create_imported([dict(vals) for vals in vals_list])
        self.assertEqual(approval.issue_count, issue_count + 2)
        self.env.flush_all()
        self.env.invalidate_all()
        names = [
            name
            for name, field in self.Line._fields.items()
            if field.store and field.column_type and name not in ("id", *LOG_ACCESS_COLUMNS)
        ]
        as_created = created.read(names, load=None)
        self.assertEqual(
            inserted.read(names, load=None),
            [dict(row, id=line.id) for line, row in zip(inserted, as_created, strict=True)],
        )
        columns = ", ".join(f'"{name}"' for name in [*names, "create_uid", "write_uid"])
        rows = {}
        for lines in (inserted, created):
            self.env.cr.execute(
                f"SELECT {columns} FROM construction_odyssee_usage_line WHERE id IN %s ORDER BY id",
                [lines._ids],
            )
            rows[lines] = self.env.cr.fetchall()
        self.assertEqual(rows[inserted], rows[created], "stored as create stores them")
        # 2.68 (2.675 as stored) times 0.13 (0.125), to the cent.
        self.assertEqual(inserted.mapped("amount"), [0.35, 0.0, 0.0])
        self.assertEqual(inserted[0].name, "Bolt, 10% off: 'M8' \\ 100%s", "quoted as sent")
        self.assertEqual(inserted.mapped("invoice_status"), ["to_invoice", "to_invoice", "no"])

    def test_an_import_writes_its_lines_approvals_and_call_log_a_page_at_a_time(self):
        """Each model of the import takes the one-INSERT path: none of them has a
        field that leaves it to ``create``."""
        inserted = []

        def spy(model, vals_list):
            records = insert_records(model, vals_list)
            inserted.append((model._name, len(vals_list), records))
            return records

        with patch.object(set_wise_insert, "insert_records", spy):
            self.pull()
        self.assertEqual(
            {name for name, _count, _records in inserted},
            {
                "construction.odyssee.usage.line",
                "construction.odyssee.approval",
                "construction.odyssee.call.log",
            },
        )
        refused = [(name, count) for name, count, records in inserted if records is None]
        self.assertEqual(refused, [])
        lines = sum(len(records) for name, _count, records in inserted if "line" in name)
        self.assertEqual(lines, self.Line.search_count([("backend_id", "=", self.backend.id)]))

    def test_lines_the_insert_cannot_write_as_create_would_are_left_to_create(self):
        Line = self.Line.sudo()
        values = {"backend_id": self.backend.id, "kind": "part", "name": "Bolt"}
        computed = {name: False for name in Line.COMPUTED_AT_IMPORT}
        self.assertIsNone(insert_records(Line, [values]), "a stored compute left to compute")
        self.assertIsNone(insert_records(Line, [dict(values, odyssee_guid="x", **computed)]))
        self.assertEqual(insert_records(Line, []), Line.browse())
        self.assertIsNone(insert_records(self.env["res.partner"], [{"name": "Co"}]))
        request = {"name": "Leak", "equipment_id": self.machine.id}
        self.assertIsNone(insert_records(self.env["maintenance.request"], [request]), "create")
        made = insert_records(Line, [dict(values, **computed)])
        self.assertEqual((made.name, made.kind, made.create_uid), ("Bolt", "part", self.env.user))
        # A default applies record by record in create: the import's lines then go there.
        noted = Line.with_context(default_issue="Checked by hand")
        self.assertIsNone(insert_records(noted, [dict(values, **computed)]))
        lines = noted._create_imported(
            [dict(values, quantity=1.0), dict(values, quantity=2.0, issue="Unknown article")]
        )
        self.assertEqual(lines.mapped("issue"), ["Checked by hand", "Unknown article"])
        self.assertEqual(lines.mapped("invoice_status"), ["to_invoice", "to_invoice"])

    def updated_rows(self, tables):
        """Rows of ``tables`` this test's transaction has updated so far (PostgreSQL's count)."""
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT relname, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname IN %s",
            [tuple(tables)],
        )
        return dict(self.env.cr.fetchall())

    def test_an_import_inserts_its_rows_without_updating_them_after(self):
        """Each new row is written once, but for what only comes later (timesheet, PDF, issues)."""
        tables = [
            "construction_odyssee_usage_line",
            "construction_odyssee_approval",
            "construction_odyssee_call_log",
        ]
        before = self.updated_rows(tables)
        self.pull()
        after = self.updated_rows(tables)
        updated = {table: after.get(table, 0) - before.get(table, 0) for table in tables}
        lines = self.Line.search([("backend_id", "=", self.backend.id)])
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        with_issue = approvals.filtered("issue_count")
        self.assertTrue(lines.filtered("timesheet_id") and with_issue)
        self.assertEqual(
            updated,
            {
                # the link to its timesheet, made after the line
                "construction_odyssee_usage_line": len(lines.filtered("timesheet_id")),
                # its PDF, and its issue count once its lines are in
                "construction_odyssee_approval": len(approvals.filtered("pdf_attachment_id"))
                + len(with_issue),
                "construction_odyssee_call_log": 0,
            },
        )

    def test_upper_case_guids_are_the_same_ids(self):
        """Odyssee writes GUIDs in either case, per table and in foreign keys."""
        for table, keys in (
            ("JobApproval", ("id", "jobs_id")),
            ("Jobs", ("project_id",)),
            ("JobPartUsage", ("jobs_id", "job_approval_id", "user_id")),
            ("JobNonPartUsage", ("jobs_id", "job_approval_id", "user_id")),
        ):
            for row in self.emulator.tables[table].values():
                row.update({key: row[key].upper() for key in keys})
        self.assertEqual(self.pull(), (True, True))
        self.pull()  # a second pull finds every record again: nothing doubles
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS)
        times = self.Line.search([("backend_id", "=", self.backend.id), ("kind", "=", "time")])
        booked = times.filtered("timesheet_id")
        self.assertTrue(booked, "upper-case user GUIDs still find the technician")
        self.assertEqual(set(booked.employee_id.ids), {self.technician.id})
        self.assertTrue(approvals.request_id.filtered(lambda r: r.equipment_id == self.machine))
        final = set(approvals.mapped("odyssee_guid"))
        signed = times.filtered(lambda line: line.approval_guid in final)
        self.assertTrue(signed)
        self.assertFalse(
            signed.filtered(lambda line: line.approval_id.odyssee_guid != line.approval_guid)
        )

    def test_second_pull_changes_nothing(self):
        self.pull()
        counts = (
            self.Approval.search_count([]),
            self.Line.search_count([]),
            self.env["account.analytic.line"].search_count([]),
            self.env["ir.attachment"].search_count([("mimetype", "=", "application/pdf")]),
        )
        watermark = self.stream("approvals").watermark
        self.pull()
        self.assertEqual(
            counts,
            (
                self.Approval.search_count([]),
                self.Line.search_count([]),
                self.env["account.analytic.line"].search_count([]),
                self.env["ir.attachment"].search_count([("mimetype", "=", "application/pdf")]),
            ),
        )
        self.assertEqual(self.stream("approvals").watermark, watermark)

    def test_a_tenant_whose_top_caps_the_result_gives_every_line(self):
        # Standard Web API OData: $top caps the whole result (the reference documents it
        # only as asking for fewer rows a page). A page of 20 jobs has 100 part lines.
        self.emulator.set_faults(Faults(top_caps_result=True))
        self.assertEqual(self.pull(), (True, True))
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )
        final_lines = self.APPROVALS * 5
        daily_lines = len([i for i in range(self.APPROVALS) if i % 5 == 0]) * 2
        self.assertEqual(
            self.Line.search_count([("backend_id", "=", self.backend.id)]),
            final_lines + daily_lines,
        )

    def test_a_smaller_page_size_on_a_tenant_whose_top_caps_the_result_gives_everything(self):
        # $top=5 sent: each full page comes without a next link, as if the last.
        self.backend.page_size = 5
        self.emulator.set_faults(Faults(top_caps_result=True))
        self.assertEqual(self.pull(), (True, True))
        self.assertTenantImported()
        self.assertEqual(len(self.backend.job_status_ids), len(self.emulator.tables["JobStatus"]))

    def test_rows_changed_in_odyssee_during_the_pull_make_no_other_row_missed(self):
        # Reference 2.4: results shift between page requests. Here an approval and a
        # file already read change after each page, during one run of each pull.
        self.emulator.set_faults(Faults(changed_between_pages="JobApproval"))
        self.stream("jobs")._run()
        self.assertTrue(self.stream("approvals")._run())
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS)
        self.emulator.set_faults(Faults(changed_between_pages="DbFile"))
        self.assertTrue(self.stream("pdfs")._run())
        self.assertEqual(len(approvals.mapped("pdf_attachment_id")), self.APPROVALS)

    def test_tied_timestamps_across_a_page_edge_are_all_imported(self):
        self.pull()
        self.emulator.set_faults(Faults(tie_timestamps=True))
        jobs = list(self.emulator.tables["Jobs"])[:22]
        for job in jobs:
            self.emulator.complete_job(job, parts=1, timesheets=0)
        self.pull()
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS + 22
        )

    def test_test_connection_says_whether_odyssee_accepts_the_credentials(self):
        result = self.backend.action_test_connection()
        self.assertEqual(result["params"]["type"], "success")
        self.backend.password = "wrong"
        result = self.backend.action_test_connection()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("401", result["params"]["message"])
        self.assertNotIn("wrong", result["params"]["message"])
        last = self.env["construction.odyssee.call.log"].search(
            [("backend_id", "=", self.backend.id)], limit=1
        )
        self.assertEqual((last.path, last.status), ("/JobType", 401))

    def test_clock_skew_is_covered_by_the_overlap_window(self):
        self.pull()
        watermark = self.stream("approvals").watermark
        job = next(iter(self.emulator.tables["Jobs"]))
        late = self.emulator.complete_job(job, parts=1, timesheets=0)
        # Odyssee committed it with a stamp a little older than what we already saw.
        skewed = odata.format_datetime(odata.parse_timestamp(watermark) - timedelta(seconds=2))
        self.emulator.tables["JobApproval"][late["id"]]["modified_dateutc"] = skewed
        self.pull()
        self.assertTrue(self.Approval.search([("odyssee_guid", "=", late["id"])]))
        self.assertEqual(self.stream("approvals").watermark, watermark)

    def test_transient_faults_end_in_success(self):
        for faults in (
            Faults(every_nth_429=3, retry_after_seconds=0),
            Faults(every_nth_500=3),
            Faults(every_nth_drop=3),
            Faults(every_nth_truncate=3),
            Faults(latency_ms=20),
        ):
            with self.subTest(faults=faults):
                self.emulator.set_faults(faults)
                self.assertEqual(self.pull(), (True, True))
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )
        retried = self.env["construction.odyssee.call.log"].search([("retries", ">", 0)])
        self.assertTrue(retried)

    def test_persistent_fault_keeps_the_watermark_and_the_data_consistent(self):
        self.emulator.set_faults(Faults(always_status=500))
        self.assertEqual(self.pull(), (False, False))
        stream = self.stream("approvals")
        self.assertEqual(stream.state, "error")
        self.assertIn("500", stream.last_error)
        self.assertEqual(stream.watermark, "1980-01-01T00:00:00.000Z")
        self.assertFalse(self.Approval.search([("backend_id", "=", self.backend.id)]))
        self.emulator.set_faults(Faults())
        self.assertEqual(self.pull(), (True, True))
        self.assertEqual(self.stream("approvals").state, "ok")

    def test_a_transaction_takes_whole_pages_and_a_crash_keeps_the_ones_before(self):
        """Pages of 5 rows, 10 rows a transaction: an import takes pages until it has 10.

        The second import crashes: the rows of the first stay, with the
        watermark after them; the next run imports the rest and only re-reads
        those (the overlap window), writing none of them twice.
        """
        self.backend.page_size = 5
        self.rows_per_transaction(10)
        self.stream("jobs")._run()
        with self.approval_imports(crash_at=2) as imports:
            self.assertTrue(self.crashed(self.stream("approvals")))
        first = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(first), imports[0])
        # Whole pages: at least 10 rows, and no page more than the one that reached 10.
        self.assertGreaterEqual(len(first), 10)
        self.assertLess(len(first), 15)
        self.assertEqual(self.stream("approvals").watermark, max(first.mapped("modified_dateutc")))
        self.assertTrue(self.stream("approvals")._run())
        approvals = self.stream("approvals")
        self.assertEqual(approvals.last_reread_count, len(first))
        self.assertEqual(approvals.last_count, self.APPROVALS - len(first))
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )

    def test_failure_on_the_second_page_keeps_the_first(self):
        with self.approval_imports(crash_at=2):
            self.assertTrue(self.crashed(self.stream("approvals")))
        first = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(first), 20)
        self.assertEqual(self.stream("approvals").watermark, max(first.mapped("modified_dateutc")))
        self.pull()
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )

    def test_late_pdfs_are_attached_when_they_appear(self):
        self.emulator.__post_init__()
        self.emulator.set_faults(Faults(pdf_delay_seconds=3600))
        populate(self.emulator, customers=1, approvals=3)
        self.pull()
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), 3)
        self.assertFalse(approvals.mapped("pdf_attachment_id"))
        # The hour passes: Odyssee has made the PDFs.
        self.emulator.pending_files = [(0, values) for _at, values in self.emulator.pending_files]
        self.pull()
        self.assertEqual(len(approvals.mapped("pdf_attachment_id")), 3)
        attachment = approvals[0].pdf_attachment_id
        self.assertEqual(
            (attachment.res_model, attachment.res_id),
            ("maintenance.request", approvals[0].request_id.id),
        )
        self.assertTrue(attachment.raw.startswith(b"%PDF"))


class TestOdysseePush(OdysseeCase):
    APPROVALS = 0

    def test_request_goes_out_updates_and_comes_back_with_work(self):
        customer = self.env["res.partner"].create({"name": "Builder & Sons", "ref": "C-42"})
        self.job_site.partner_id = customer
        dispatcher = self.env["res.users"].create(
            {
                "name": "Disp",
                "login": "disp_push",
                "groups_id": [
                    (
                        6,
                        0,
                        [
                            self.env.ref("base.group_user").id,
                            self.env.ref("construction_asset_sync.group_dispatcher").id,
                        ],
                    )
                ],
            }
        )
        request = self.env["maintenance.request"].create(
            {"name": "Hydraulic leak", "equipment_id": self.machine.id}
        )
        request.with_user(dispatcher).action_send_to_odyssee()
        self.assertEqual(request.odyssee_push_state, "pending")
        self.stream("push")._run()
        self.assertEqual(request.odyssee_push_state, "sent")
        job = self.emulator.tables["Jobs"][request.odyssee_job_guid]
        self.assertEqual(job["reference_back_office"], request.reference_back_office)
        project = self.emulator.tables["Project"][job["project_id"]]
        self.assertEqual(project["name"], "Mapped machine")
        company = self.emulator.tables["Company"][project["company_id"]]
        self.assertEqual(company["code"], "C-42")

        calls = self.emulator.calls
        jobs_calls = self.emulator.calls_by_controller.get("Jobs")
        self.assertEqual(jobs_calls, 2, "a lookup by reference_back_office, then the POST")
        request._set_odyssee_push_state("pending")
        self.stream("push")._run()
        self.assertEqual(self.emulator.calls_by_controller.get("Jobs"), 2, "unchanged: no call")
        self.assertLessEqual(self.emulator.calls - calls, 0)

        request.name = "Hydraulic leak, boom cylinder"
        self.assertEqual(request.odyssee_push_state, "pending")
        self.stream("push")._run()
        self.assertEqual(
            self.emulator.tables["Jobs"][request.odyssee_job_guid]["name"], request.name
        )

        self.emulator.complete_job(request.odyssee_job_guid)
        self.pull()
        approval = self.Approval.search([("job_guid", "=", request.odyssee_job_guid)])
        self.assertEqual(approval.request_id, request)
        self.assertEqual(len(request.odyssee_line_ids), 4)
        self.assertEqual(request.odyssee_status, "Completed")
        self.assertTrue(approval.pdf_attachment_id)

    def test_entering_a_configured_stage_queues_the_request(self):
        stage = self.env["maintenance.stage"].search([], limit=1, order="sequence desc")
        self.backend.push_stage_ids = stage
        request = self.env["maintenance.request"].create(
            {"name": "Service", "equipment_id": self.machine.id}
        )
        self.assertEqual(request.odyssee_push_state, "none")
        request.stage_id = stage
        self.assertEqual(request.odyssee_push_state, "pending")

    def test_plain_user_cannot_send(self):
        from odoo.exceptions import AccessError
        from odoo.tests import new_test_user

        user = new_test_user(self.env, "plain_user_push", groups="base.group_user")
        request = self.env["maintenance.request"].create({"name": "X", "owner_user_id": user.id})
        with self.assertRaises(AccessError):
            request.with_user(user).action_send_to_odyssee()


class TestOdysseeImportAtItsOwnSize(OdysseeCase):
    """The importer's own rows per transaction, over more than one of them."""

    APPROVALS = 130

    def test_a_backlog_comes_in_by_hundreds_within_the_query_string_iis_accepts(self):
        self.rows_per_transaction(DEFAULT_ROWS_PER_TRANSACTION)
        with self.approval_imports() as imports:
            self.assertEqual(self.pull(), (True, True))
        self.assertEqual(len(imports), 2)
        self.assertGreaterEqual(imports[0], 100)
        self.assertEqual(sum(imports), self.APPROVALS)
        self.assertTenantImported()
        refused = self.env["construction.odyssee.call.log"].search(
            [("backend_id", "=", self.backend.id), ("status", ">=", 400)]
        )
        self.assertFalse(refused.mapped("error"))
        self.assertEqual(set(self.backend.stream_ids.mapped("state")), {"ok"})

    def test_a_mixed_case_tenant_under_faults_comes_in_once_by_hundreds(self):
        """The reference's GUIDs in either case, daily approvals, known articles; each
        run meets one transport fault, in the middle of a batch of a hundred."""
        self.rows_per_transaction(DEFAULT_ROWS_PER_TRANSACTION)
        self.emulator.upper_case = set(MIXED_CASE)
        for faults in (
            Faults(every_nth_500=9),
            Faults(every_nth_truncate=11),
            Faults(every_nth_drop=13),
            Faults(every_nth_lost_answer=7),
            Faults(every_nth_429=5, retry_after_seconds=0),
        ):
            self.emulator.set_faults(faults)
            self.pull()
        met = self.env["construction.odyssee.call.log"].search(
            [("backend_id", "=", self.backend.id), "|", ("retries", ">", 0), ("error", "!=", False)]
        )
        self.assertGreater(len(met), 5, "the faults were met")
        self.emulator.set_faults(Faults())
        self.assertEqual(self.pull(), (True, True))
        self.assertTenantImported()  # counts as many as the tenant holds: none twice
        for table, kind in (("JobPartUsage", "part"), ("JobNonPartUsage", "time")):
            expected = sorted(row["id"].lower() for row in self.emulator.tables[table].values())
            lines = self.Line.search([("backend_id", "=", self.backend.id), ("kind", "=", kind)])
            self.assertEqual(sorted(lines.mapped("odyssee_guid")), expected, table)
        self.assertEqual(set(self.backend.stream_ids.mapped("state")), {"ok"})


class TestOdysseeRealTenant(OdysseeCase):
    """A tenant shaped as the reference documents Odyssee: what issue 9 found on one."""

    APPROVALS = 22  # 20 per page: ties and daily approvals across a page edge

    def messages(self, request):
        return " | ".join(str(body) for body in request.message_ids.mapped("body"))

    def assertNothingCreatedTwice(self, *controllers):
        for controller in controllers:
            key = "reference_back_office" if controller in ("Project", "Jobs") else "code"
            doubles = {c: n for c, n in self.count_by_code(controller, key).items() if n > 1}
            self.assertEqual(doubles, {}, f"{controller} created twice")

    def count_by_code(self, controller, key="code"):
        counts = {}
        for row in self.emulator.tables[controller].values():
            if row[key]:
                counts[row[key]] = counts.get(row[key], 0) + 1
        return counts

    def test_a_whole_tenant_under_faults_comes_in_exactly_once(self):
        """Done when: mixed case, daily and final approvals with ties at page edges, PDFs
        late and never, pre-existing master data, and every transport fault at once."""
        self.emulator.upper_case = set(MIXED_CASE)
        customer = self.env["res.partner"].create({"name": "Builder", "ref": "CUST0001"})
        self.job_site.partner_id = customer
        requests = self.env["maintenance.request"].create(
            [{"name": f"Sent {n}", "equipment_id": self.machine.id} for n in range(3)]
        )
        requests._set_odyssee_push_state("pending")
        self.emulator.set_faults(Faults(tie_timestamps=True))
        jobs = list(self.emulator.tables["Jobs"])
        for index, job in enumerate(jobs[:21]):  # 21 more tied approvals: past a page edge
            self.emulator.complete_job(job, parts=1, timesheets=1, daily=index % 2 == 0)
        self.emulator.complete_job(jobs[21], parts=1, timesheets=1, pdf_delay="never")
        faults = (
            Faults(every_nth_429=5, retry_after_seconds=0),
            Faults(every_nth_500=4),
            Faults(every_nth_truncate=6),
            Faults(every_nth_drop=7),
            Faults(every_nth_lost_answer=5),
        )
        for faults_of_run in faults:
            self.emulator.set_faults(faults_of_run)
            self.backend._sync()
            for request in requests.filtered(lambda r: r.odyssee_push_state == "error"):
                request._set_odyssee_push_state("pending")
        self.emulator.set_faults(Faults())
        for request in requests:
            self.emulator.complete_job(request.odyssee_job_guid, parts=1, timesheets=1)
        self.backend._sync()
        self.backend._sync()

        finals = {
            row["id"].lower()
            for row in self.emulator.tables["JobApproval"].values()
            if not row["is_daily_approval"]
        }
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(sorted(approvals.mapped("odyssee_guid")), sorted(finals))
        for table, kind in (("JobPartUsage", "part"), ("JobNonPartUsage", "time")):
            expected = sorted(row["id"].lower() for row in self.emulator.tables[table].values())
            lines = self.Line.search([("backend_id", "=", self.backend.id), ("kind", "=", kind)])
            self.assertEqual(sorted(lines.mapped("odyssee_guid")), expected, table)
        times = self.Line.search([("backend_id", "=", self.backend.id), ("kind", "=", "time")])
        self.assertEqual(len(times.timesheet_id), len(times))
        self.assertEqual(times.timesheet_id.employee_id, self.technician)
        with_file = {
            row["id_in_table"].lower()
            for row in self.emulator.tables["DbFile"].values()
            if row["file_type_name"] == "JOB_APPROVAL"
        }
        attached = set(approvals.filtered("pdf_attachment_id").mapped("odyssee_guid"))
        self.assertEqual(attached, finals & with_file)
        self.assertTrue(finals - with_file, "some PDFs never came")
        self.assertNothingCreatedTwice("Company", "Project", "Jobs", "User")
        self.assertTrue(all(request.stage_id.done for request in requests))
        self.assertEqual(set(self.backend.stream_ids.mapped("state")), {"ok"})

    def test_pdfs_of_a_backlog_wait_for_the_approvals_without_calls(self):
        import time

        approvals = self.stream("approvals")
        self.assertIsNone(approvals._run(deadline=time.monotonic() - 1), "one page, then stop")
        self.emulator.calls_by_controller.clear()
        pdfs = self.stream("pdfs").with_context(odyssee_approvals_behind=True)
        pdfs._run()
        # Only the daily approvals' files older than the approvals read are looked up.
        self.assertEqual(self.emulator.calls_by_controller.get("JobApproval"), 1)
        self.assertEqual(pdfs.waiting_count, 0)
        imported = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(imported.pdf_attachment_id), len(imported))
        self.assertTrue(approvals.resume_after_id)
        self.backend._sync()
        self.assertEqual(approvals.last_reread_count, 0, "resumed right after the last row")
        self.assertFalse(approvals.resume_after_id)
        imported = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(imported), self.APPROVALS)
        self.assertEqual(len(imported.pdf_attachment_id), self.APPROVALS)

    def test_each_job_is_read_once_even_when_a_run_is_cut_short(self):
        import math
        import time

        self.emulator.calls_by_controller.clear()
        self.assertIsNone(self.backend._sync(deadline=time.monotonic() - 1), "one page, then stop")
        self.assertTrue(self.stream("jobs").resume_after_id)
        self.assertFalse(self.stream("approvals").last_run_at, "approvals wait for the jobs")
        self.assertNotIn("JobApproval", self.emulator.calls_by_controller)
        self.assertTrue(self.backend._sync())
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )
        jobs = len(self.emulator.tables["Jobs"])
        self.assertEqual(self.emulator.calls_by_controller["Jobs"], math.ceil(jobs / 20))

    def test_daily_approval_pdfs_never_stall_the_pdf_pull(self):
        self.assertEqual(self.pull(), (True, True))
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS)
        self.assertEqual(len(approvals.pdf_attachment_id), self.APPROVALS)
        pdfs = self.stream("pdfs")
        self.assertGreater(pdfs.watermark, "1980")
        self.assertEqual((pdfs.state, pdfs.waiting_count), ("ok", 0))
        self.assertEqual(pdfs.last_count, self.APPROVALS)
        # Odyssee's order and purchase-order PDFs of the same jobs are not approvals.
        pdf_files = self.env["ir.attachment"].search(
            [("res_model", "=", "maintenance.request"), ("res_id", "in", approvals.request_id.ids)]
        )
        self.assertEqual(len(pdf_files), self.APPROVALS)
        self.assertFalse(pdf_files.filtered(lambda a: "order" in a.name.lower()))
        self.pull()
        self.assertEqual(
            (self.stream("pdfs").last_count, self.stream("approvals").last_count), (0, 0)
        )
        self.assertGreater(self.stream("approvals").last_reread_count, 0)

    def test_pdfs_that_come_before_their_approval_wait_without_blocking(self):
        jobs = list(self.emulator.tables["Jobs"])
        never = self.emulator.complete_job(jobs[0], parts=1, timesheets=0, pdf_delay="never")
        self.stream("pdfs")._run()  # before any approval is imported: every final PDF waits
        pdfs = self.stream("pdfs")
        self.assertEqual(pdfs.waiting_count, self.APPROVALS)
        self.assertGreater(pdfs.watermark, "1980")
        self.emulator.set_faults(Faults(tie_timestamps=True))
        late = self.emulator.complete_job(jobs[1], parts=1, timesheets=1, pdf_delay="never")
        self.pull()
        self.assertEqual(self.stream("pdfs").waiting_count, 0)
        with_pdf = self.Approval.search(
            [("backend_id", "=", self.backend.id), ("pdf_attachment_id", "!=", False)]
        )
        self.assertEqual(len(with_pdf), self.APPROVALS)
        self.emulator.add_pdf_later(late, 0)  # its PDF appears after its approval came in
        self.pull()
        guids = set(
            self.Approval.search(
                [("backend_id", "=", self.backend.id), ("pdf_attachment_id", "!=", False)]
            ).mapped("odyssee_guid")
        )
        self.assertIn(late["id"], guids, "attached in the first run after it appeared")
        self.assertNotIn(never["id"], guids)

    def test_mixed_guid_case_in_every_table_and_foreign_key(self):
        self.emulator.upper_case = {
            "Jobs",
            "JobApproval.jobs_id",
            "JobPartUsage.job_approval_id",
            "JobNonPartUsage",
            "DbFile.id_in_table",
            "JobStatus",
        }
        self.assertEqual(self.pull(), (True, True))
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals), self.APPROVALS)
        self.assertEqual(len(approvals.pdf_attachment_id), self.APPROVALS)
        times = self.Line.search([("backend_id", "=", self.backend.id), ("kind", "=", "time")])
        self.assertEqual(len(times), len(times.timesheet_id))
        self.assertEqual(times.timesheet_id.employee_id, self.technician)
        self.assertEqual(set(approvals.request_id.mapped("odyssee_status")), {"Completed"})

    def test_a_completed_job_completes_its_request_with_the_story_in_the_chatter(self):
        customer = self.env["res.partner"].create({"name": "Builder", "ref": "CUST0000"})
        self.job_site.partner_id = customer
        request = self.env["maintenance.request"].create(
            {"name": "Track tension", "equipment_id": self.machine.id}
        )
        request._set_odyssee_push_state("pending")
        self.stream("push")._run()
        self.assertEqual(self.count_by_code("Company")["CUST0000"], 1, "adopted, not created")
        job_guid = request.odyssee_job_guid
        self.emulator.complete_job(job_guid, daily=True, parts=1, timesheets=1)
        self.emulator.complete_job(job_guid, parts=1, timesheets=2)
        self.pull()
        self.assertTrue(request.stage_id.done)
        self.assertEqual(request.odyssee_status, "Completed")
        self.assertAlmostEqual(request.duration, 2.5 + 2.5 + 0.75)
        story = self.messages(request)
        for expected in ("Sent to Odyssee", "Completed in Odyssee", "PDF"):
            self.assertIn(expected, story)
        self.assertEqual(request.odyssee_push_state, "sent", "the stage change is not sent back")

    def test_status_mapping_is_configured_per_backend(self):
        self.backend.action_refresh_job_statuses()
        statuses = self.backend.job_status_ids
        self.assertEqual(len(statuses), len(self.emulator.tables["JobStatus"]))
        completed = statuses.filtered("is_completed")
        self.assertEqual(completed.name, "Completed")
        self.assertTrue(completed.stage_id.done, "default: Completed -> a done stage")
        stage = self.env["maintenance.stage"].create({"name": "Signed off"})
        completed.stage_id = stage
        self.emulator.calls_by_controller.clear()
        self.pull()
        self.assertNotIn("JobStatus", self.emulator.calls_by_controller, "the catalogue is cached")
        requests = self.Approval.search([("backend_id", "=", self.backend.id)]).request_id
        self.assertEqual(requests.stage_id, stage)

    def test_master_data_is_looked_up_and_adopted_never_duplicated(self):
        self.pull()  # products ART-0000 and ART-0001 are now used on requests
        before = self.count_by_code("Article")
        unused = self.env["product.product"].create(
            {"name": "Office coffee", "default_code": "COFFEE", "sale_ok": True}
        )
        customer = self.env["res.partner"].create({"name": "Builder", "ref": "CUST0001"})
        self.job_site.partner_id = customer
        requests = self.env["maintenance.request"].create(
            [{"name": f"Job {n}", "equipment_id": self.machine.id} for n in range(4)]
        )
        requests._set_odyssee_push_state("pending")
        self.emulator.set_faults(Faults(every_nth_lost_answer=3, every_nth_truncate=4))
        for _attempt in range(4):  # errors are retried by later runs
            self.stream("push")._run()
            failed = requests.filtered(lambda r: r.odyssee_push_state == "error")
            failed._set_odyssee_push_state("pending")
        self.emulator.set_faults(Faults())
        self.stream("push")._run()
        self.assertEqual(set(requests.mapped("odyssee_push_state")), {"sent"})
        self.assertNothingCreatedTwice(
            "Article", "ArticleCategory", "Company", "Project", "Jobs", "User"
        )
        self.assertEqual(self.count_by_code("Article"), before, "existing articles adopted")
        self.assertNotIn("COFFEE", self.count_by_code("Article"), "not in the product domain")
        Binder = self.env["construction.external.id"]
        system = self.backend.external_system_id
        article = next(
            r for r in self.emulator.tables["Article"].values() if r["code"] == "ART-0000"
        )
        product = self.env["product.product"].search([("default_code", "=", "ART-0000")])
        self.assertEqual(Binder._to_external(system, product), {product.id: article["id"]})
        self.backend.product_domain = "[('default_code', '=', 'COFFEE')]"
        self.stream("push")._run()
        self.assertEqual(self.count_by_code("Article").get("COFFEE"), 1)
        self.assertFalse(Binder._binding(system, unused).pending)

    def test_a_new_backends_first_push_looks_its_products_up_a_page_at_a_time(self):
        # Reference section 3: no upsert, so each product is looked up by its code
        # before it is created; a tenant that has most of them already is the usual
        # first run of a customer's database.
        category = self.env["product.category"].create({"name": "Hydraulics"})
        for n in range(45):
            self.emulator.add("Article", code=f"HYD-{n:02d}", name=f"Hose {n}")
        self.emulator.add("ArticleCategory", code=f"CAT-{category.id}", name="Hydraulics")
        self.env["product.product"].create(
            [
                {"name": f"Hose {n}", "default_code": f"HYD-{n:02d}", "categ_id": category.id}
                for n in range(50)  # HYD-45 to HYD-49 are new to Odyssee
            ]
        )
        self.backend.product_domain = "[('default_code', 'like', 'HYD-')]"
        self.emulator.calls_by_controller.clear()
        self.stream("push")._run()
        # 50 codes, 3 lookups; 45 articles adopted and updated; 5 created.
        self.assertEqual(self.emulator.calls_by_controller["Article"], 3 + 45 + 5)
        self.assertEqual(self.emulator.calls_by_controller["ArticleCategory"], 1 + 1)
        counts = self.count_by_code("Article")
        self.assertEqual(
            {code: n for code, n in counts.items() if code.startswith("HYD")},
            {f"HYD-{n:02d}": 1 for n in range(50)},
            "adopted or made once each",
        )
        self.assertEqual(self.count_by_code("ArticleCategory")[f"CAT-{category.id}"], 1)
        self.emulator.calls_by_controller.clear()
        self.stream("push")._run()
        self.assertEqual(self.emulator.calls_by_controller, {}, "all sent: no call")

    def test_a_product_sharing_a_code_made_in_the_same_run_is_not_made_twice(self):
        # Odoo allows two products one internal reference: the second finds the
        # article the first made in this run, as its own lookup would have.
        self.env["product.product"].create(
            [
                {"name": "Pin", "default_code": "PIN-1"},
                {"name": "Pin (old)", "default_code": "PIN-1"},
            ]
        )
        self.backend.product_domain = "[('default_code', '=', 'PIN-1')]"
        self.stream("push")._run()
        self.assertEqual(self.count_by_code("Article").get("PIN-1"), 1)
        self.assertIn("already belongs to", self.stream("push").last_error or "")
        article = next(a for a in self.emulator.tables["Article"].values() if a["code"] == "PIN-1")
        self.assertEqual(article["name"], "Pin", "the other product's values are not sent over it")

    def test_a_failed_lookup_leaves_each_product_to_its_own(self):
        self.emulator.add("Article", code="SEAL-1", name="Seal 1")
        self.env["product.product"].create(
            [{"name": f"Seal {n}", "default_code": f"SEAL-{n}"} for n in range(3)]
        )
        self.backend.product_domain = "[('default_code', 'like', 'SEAL-')]"
        self.emulator.calls_by_controller.clear()
        refused = odyssee_client.OdysseeHTTPError("URI too long", status=414)
        with patch.object(exporter, "find_by_keys", side_effect=refused):
            self.stream("push")._run()
        self.assertFalse(self.stream("push").last_error)
        counts = self.count_by_code("Article")
        self.assertEqual(
            {c: counts.get(c) for c in ("SEAL-0", "SEAL-1", "SEAL-2")},
            {"SEAL-0": 1, "SEAL-1": 1, "SEAL-2": 1},
            "the one Odyssee has adopted, the others made",
        )
        # Three lookups one by one, the update of the adopted one, two creates.
        self.assertEqual(self.emulator.calls_by_controller["Article"], 3 + 1 + 2)

    def test_only_products_changed_since_they_were_sent_cost_calls(self):
        category = self.env["product.category"].create({"name": "Filters"})
        products = self.env["product.product"].create(
            [
                {"name": f"Filter {n}", "default_code": f"FLT-{n}", "categ_id": category.id}
                for n in range(3)
            ]
        )
        self.backend.product_domain = "[('default_code', 'like', 'FLT-')]"
        self.stream("push")._run()
        self.assertEqual(
            set(self.count_by_code("Article")) & {"FLT-0", "FLT-1", "FLT-2"},
            {"FLT-0", "FLT-1", "FLT-2"},
        )
        self.emulator.calls_by_controller.clear()
        self.stream("push")._run()
        self.assertEqual(self.emulator.calls_by_controller, {}, "unchanged: no call")

        products[1].lst_price = 42.5
        self.stream("push")._run()
        self.assertEqual(self.emulator.calls_by_controller, {"Article": 1})
        article = next(a for a in self.emulator.tables["Article"].values() if a["code"] == "FLT-1")
        self.assertEqual(article["entered_price"], 42.5)

        self.emulator.calls_by_controller.clear()
        category.name = "Oil filters"
        self.stream("push")._run()
        self.assertEqual(self.emulator.calls_by_controller, {"ArticleCategory": 1})
        self.assertEqual(
            self.emulator.tables["ArticleCategory"][
                self.env["construction.external.id"]._to_external(
                    self.backend.external_system_id, category
                )[category.id]
            ]["name"],
            "Oil filters",
        )

    def test_a_machine_odyssee_does_not_know_is_created_with_the_tenants_default_status(self):
        # Reference 5.7: an installation's status is required (one of project_status_id,
        # _code, or the embedded object); the tenant pre-selects its default one.
        customer = self.env["res.partner"].create({"name": "New customer", "ref": "C-77"})
        site = self.env["project.project"].create({"name": "Site B", "partner_id": customer.id})
        machine = self.env["maintenance.equipment"].create(
            {"name": "New dumper", "serial_no": "DMP-1", "job_site_project_id": site.id}
        )
        request = self.env["maintenance.request"].create(
            {"name": "Brakes", "equipment_id": machine.id}
        )
        request.action_send_to_odyssee()
        self.stream("push")._run()
        self.assertEqual(request.odyssee_push_state, "sent", request.odyssee_push_error)
        project = self.emulator.tables["Project"][machine.odyssee_installation_guid]
        status = self.emulator.tables["ProjectStatus"][project["project_status_id"]]
        self.assertEqual((status["name"], status["is_default"]), ("In service", True))
        # Closed in Odyssee since: an update of the machine leaves its status alone.
        closed = next(s for s in self.emulator.tables["ProjectStatus"].values() if s["is_closed"])
        project["project_status_id"] = closed["id"]
        machine.name = "New dumper (renamed)"
        request._set_odyssee_push_state("pending")
        self.stream("push")._run()
        self.assertEqual(project["name"], "New dumper (renamed)")
        self.assertEqual(project["project_status_id"], closed["id"])

    def test_a_tenant_without_an_open_installation_status_is_told(self):
        for status in self.emulator.tables["ProjectStatus"].values():
            status["is_closed"] = True
        machine = self.env["maintenance.equipment"].create(
            {"name": "Lonely crane", "job_site_project_id": self.job_site.id}
        )
        request = self.env["maintenance.request"].create(
            {"name": "Cable", "equipment_id": machine.id}
        )
        request.action_send_to_odyssee()
        self.stream("push")._run()
        self.assertEqual(request.odyssee_push_state, "error")
        self.assertIn("no open installation status", request.odyssee_push_error)

    def test_jobs_get_the_tenants_default_job_type_or_the_one_configured(self):
        # Reference 5.2/5.11: a job's type is required; job types made in Odyssee's
        # screens have no ERP code, and the default one is pre-selected on new jobs.
        types = {t["name"]: t for t in self.emulator.tables["JobType"].values()}
        self.assertFalse(self.backend.job_type_code, "a new backend names no code")
        requests = self.env["maintenance.request"].create(
            [{"name": f"Leak {n}", "equipment_id": self.machine.id} for n in range(2)]
        )
        requests.action_send_to_odyssee()
        self.emulator.calls_by_controller.clear()
        self.stream("push")._run()
        self.assertEqual(set(requests.mapped("odyssee_push_state")), {"sent"})
        jobs = [self.emulator.tables["Jobs"][r.odyssee_job_guid] for r in requests]
        self.assertEqual({j["job_type_id"] for j in jobs}, {types["Repair"]["id"]})
        self.assertEqual(self.emulator.calls_by_controller["JobType"], 1, "read once a run")

        self.backend.job_type_code = "SERVICE"
        service = self.env["maintenance.request"].create(
            {"name": "Yearly service", "equipment_id": self.machine.id}
        )
        service.action_send_to_odyssee()
        self.stream("push")._run()
        job = self.emulator.tables["Jobs"][service.odyssee_job_guid]
        self.assertEqual(job["job_type_id"], types["Service"]["id"])

        self.backend.job_type_code = "REPAIR"  # a code this tenant's job types lack
        unknown = self.env["maintenance.request"].create(
            {"name": "Tyre", "equipment_id": self.machine.id}
        )
        unknown.action_send_to_odyssee()
        self.stream("push")._run()
        self.assertEqual(unknown.odyssee_push_state, "error")
        self.assertIn("job_type_code", unknown.odyssee_push_error)

        self.backend.job_type_code = False
        types["Repair"]["is_default"] = False
        unknown.action_send_to_odyssee()
        self.stream("push")._run()
        self.assertEqual(unknown.odyssee_push_state, "error")
        self.assertIn("no default job type", unknown.odyssee_push_error)

    def test_technicians_odyssee_has_are_bound_never_rewritten(self):
        """A user is someone signing in to the mobile app: their login and names are
        Odyssee's. A missing one is created; a refused one does not hold the job back."""
        users = list(self.emulator.tables["User"].values())
        known = self.env["hr.employee"].create({"name": "Ann Known", "work_email": "ann@erp"})
        same_code = self.emulator.add(
            "User",
            code=f"EMP-{known.id}",
            username="ann.k",
            firstname="Annie",
            lastname="Known-Smith",
            email="ann@site",
        )
        newcomer = self.env["hr.employee"].create(
            {"name": "Jean-Pierre van Dam", "work_email": "jp@erp"}
        )
        before = {u["id"]: dict(u) for u in (users[0], same_code)}

        def request_by(employee, name):
            user = self.env["res.users"].create(
                {"name": employee.name, "login": name, "email": employee.work_email}
            )
            employee.user_id = user
            return self.env["maintenance.request"].create(
                {"name": name, "equipment_id": self.machine.id, "user_id": user.id}
            )

        requests = (
            request_by(self.technician, "by-hand-linked")
            | request_by(known, "by-code")
            | request_by(newcomer, "by-newcomer")
        )
        requests.action_send_to_odyssee()
        self.stream("push")._run()
        self.assertEqual(set(requests.mapped("odyssee_push_state")), {"sent"})
        for guid, row in before.items():
            after = self.emulator.tables["User"][guid]
            self.assertEqual(
                {k: after[k] for k in ("username", "firstname", "lastname", "email")},
                {k: row[k] for k in ("username", "firstname", "lastname", "email")},
            )
        self.assertEqual(known.odyssee_user_guid, same_code["id"])
        created = self.emulator.tables["User"][newcomer.odyssee_user_guid]
        self.assertEqual(
            (created["username"], created["firstname"], created["lastname"]),
            ("jp@erp", "Jean-Pierre", "van Dam"),
        )
        self.assertEqual(self.count_by_code("User").get(f"EMP-{newcomer.id}"), 1)

        refused = self.env["hr.employee"].create({"name": "Refused", "work_email": "r@erp"})
        self.emulator.set_faults(Faults(poisoned={f"EMP-{refused.id}": 400}))
        request = request_by(refused, "by-refused")
        request.action_send_to_odyssee()
        self.stream("push")._run()
        self.assertEqual(request.odyssee_push_state, "sent", "the job does not name the user")
        self.assertIn(request.odyssee_job_guid, self.emulator.tables["Jobs"])
        self.stream("push")._run()  # nothing queued: the user is tried again all the same
        self.assertIn("Technician Refused (Odyssee user)", self.stream("push").last_error)
        Health = self.env["construction.integration.health"]
        Health._check_all()
        row = Health.search([("stream_id", "=", self.stream("push").id)])
        self.assertEqual(row.health, "warning")
        self.assertIn("Odyssee refused what the last run sent: Technician Refused", row.summary)
        self.assertTrue(row.activity_ids, "an integration administrator hears of it")
        self.emulator.set_faults(Faults())
        self.stream("push")._run()
        self.assertTrue(refused.odyssee_user_guid, "made once Odyssee takes it")
        self.assertFalse(self.stream("push").last_error)

    def test_a_create_interrupted_after_its_post_is_adopted_on_the_next_run(self):
        request = self.env["maintenance.request"].create(
            {"name": "Crashed", "equipment_id": self.machine.id}
        )
        self.env["construction.external.id"]._bind(
            self.backend.external_system_id,
            [(request, "0dd0dd00-1111-4222-8333-444455556666")],
            pending=True,
        )
        # The crashed run's POST went through: Odyssee has the job under our GUID.
        project = next(iter(self.emulator.tables["Project"]))
        job_type = next(t for t in self.emulator.tables["JobType"].values() if t["is_default"])
        self.emulator.add(
            "Jobs",
            id="0dd0dd00-1111-4222-8333-444455556666",
            name="Crashed",
            project_id=project,
            job_type_id=job_type["id"],
            reference_back_office=request._odyssee_reference(),
        )
        request._set_odyssee_push_state("pending")
        self.stream("push")._run()
        self.assertEqual(request.odyssee_push_state, "sent")
        self.assertEqual(
            self.count_by_code("Jobs", "reference_back_office")[request.reference_back_office], 1
        )
        self.assertEqual(request.odyssee_job_guid, "0dd0dd00-1111-4222-8333-444455556666")

    def test_lines_odoo_cannot_store_set_their_approval_aside_and_the_others_come_in(self):
        """A NUL byte in a part's name and a quantity past what a float rounds: the
        page's INSERT fails, the page is imported approval by approval, the two
        approvals at fault wait with their error and nothing of theirs is stored."""
        finals = [
            r for r in self.emulator.tables["JobApproval"].values() if not r["is_daily_approval"]
        ]
        parts = list(self.emulator.tables["JobPartUsage"].values())
        bad = {}
        for approval, (field, value) in zip(
            (finals[3], finals[7]), (("name", "Bolt\x00M8"), ("quantity", 1e308)), strict=True
        ):
            part = next(p for p in parts if p["jobs_id"] == approval["jobs_id"])
            part[field] = value
            bad[approval["id"]] = part
        self.assertEqual(self.pull(), (True, True))
        stream = self.stream("approvals")
        self.assertEqual((stream.state, stream.failed_count), ("attention", 2))
        self.assertEqual(set(stream.attention_ids.mapped("external_id")), set(bad))
        self.assertRegex(" ".join(stream.attention_ids.mapped("error")), "NUL|0x00")
        mine = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(mine), self.APPROVALS - 2)
        lines = self.Line.search([("backend_id", "=", self.backend.id)])
        bad_jobs = {part["jobs_id"].lower() for part in bad.values()}
        self.assertFalse(lines.filtered(lambda line: line.job_guid in bad_jobs))
        self.pull()  # delivered again: nothing twice, the two still waiting
        self.assertEqual(self.Line.search_count([("backend_id", "=", self.backend.id)]), len(lines))
        self.assertEqual(stream.failed_count, 2)

    def test_a_poisoned_page_does_not_stop_the_others(self):
        self.backend.max_attempts = 2
        rows = [
            r for r in self.emulator.tables["JobApproval"].values() if not r["is_daily_approval"]
        ]
        poisoned = rows[3]
        poisoned["jobs_id"] = "n/a"  # a row the connector cannot read
        self.assertEqual(self.pull(), (True, True))
        stream = self.stream("approvals")
        self.assertEqual(stream.state, "attention")
        self.assertEqual(stream.failed_count, 1)
        self.assertIn(poisoned["id"], stream.last_error)
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS - 1
        )
        mine = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(mine.pdf_attachment_id), self.APPROVALS - 1)
        self.pull()
        self.assertGreaterEqual(stream.attention_ids.attempts, 2)
        poisoned["jobs_id"] = rows[2]["jobs_id"]  # someone repaired it; after 2 attempts: manual
        self.pull()
        self.assertEqual(stream.failed_count, 1)
        stream.attention_ids.attempts = 0
        self.pull()
        self.assertEqual((stream.state, stream.failed_count), ("ok", 0))
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )

    def test_statuses_set_in_odyssee_without_an_approval_come_back(self):
        on_the_way = self.env["maintenance.stage"].create({"name": "Technician on the way"})
        request = self.env["maintenance.request"].create(
            {"name": "Boom check", "equipment_id": self.machine.id}
        )
        request._set_odyssee_push_state("pending")
        self.stream("push")._run()
        self.backend.action_refresh_job_statuses()
        dispatched = self.backend.job_status_ids.filtered(lambda s: s.code == "DISPATCHED")
        dispatched.stage_id = on_the_way
        installation = self.machine.odyssee_installation_guid
        planned = self.emulator.add(
            "Jobs",
            name="Planned by the office",
            project_id=installation,
            job_status_id=self.emulator.status_id("PLANNED").upper(),
        )
        canceled = self.emulator.add(
            "Jobs",
            name="Canceled at once",
            project_id=installation,
            job_status_id=self.emulator.status_id("CANCELED"),
        )
        self.emulator.set_job_status(request.odyssee_job_guid, "DISPATCHED")
        jobs = self.stream("jobs")
        self.emulator.calls_by_controller.clear()
        self.assertTrue(jobs._run())
        self.assertNotIn("JobApproval", self.emulator.calls_by_controller)
        self.assertEqual((request.odyssee_status, request.stage_id), ("Dispatched", on_the_way))
        self.assertIn("Open → Dispatched", self.messages(request))
        Binder, system = self.env["construction.external.id"], self.backend.external_system_id
        born = Binder._to_internal(system, "maintenance.request", [planned["id"], canceled["id"]])
        self.assertEqual(list(born), [planned["id"]], "a canceled job born in Odyssee stays out")
        self.assertEqual(born[planned["id"]].equipment_id, self.machine)
        self.assertEqual(born[planned["id"]].odyssee_status, "Planned")
        jobs_in_tenant = len(self.emulator.tables["Jobs"])
        self.assertEqual(jobs.last_count + jobs.last_reread_count, jobs_in_tenant)
        jobs._run()
        self.assertEqual(jobs.last_count, 0, "read again (overlap): nothing new")

        # The technician completes the job: the approvals pull reads no job again.
        self.emulator.complete_job(request.odyssee_job_guid, parts=1, timesheets=1)
        jobs._run()
        self.assertEqual(jobs.last_count, 1)
        self.emulator.calls_by_controller.clear()
        self.stream("approvals")._run()
        self.assertNotIn("Jobs", self.emulator.calls_by_controller)
        self.assertTrue(request.stage_id.done)
        self.assertIn("Completed in Odyssee", self.messages(request))
        self.assertEqual(len(request.odyssee_line_ids), 2)

    def test_a_record_odyssee_cannot_serve_is_set_aside_after_n_failed_runs(self):
        self.backend.max_attempts = 2
        self.stream("jobs")._run()
        finals = [
            r for r in self.emulator.tables["JobApproval"].values() if not r["is_daily_approval"]
        ]
        poisoned = finals[3]
        # Every query naming its job answers 500, while the rest of the tenant works.
        self.emulator.set_faults(Faults(poisoned={poisoned["jobs_id"]: 500}))
        approvals = self.stream("approvals")
        self.assertFalse(approvals._run(), "a first failure may be a bad minute of Odyssee's")
        self.assertEqual((approvals.state, approvals.failed_runs), ("error", 1))
        self.assertFalse(self.Approval.search_count([("backend_id", "=", self.backend.id)]))
        self.assertTrue(approvals._run(), "failed twice: the page is imported row by row")
        self.assertEqual((approvals.state, approvals.failed_runs), ("attention", 0))
        self.assertEqual(approvals.attention_ids.external_id, poisoned["id"])
        self.assertIn(poisoned["id"], approvals.last_error)
        mine = [("backend_id", "=", self.backend.id)]
        self.assertEqual(self.Approval.search_count(mine), len(finals) - 1)
        self.emulator.set_faults(Faults())  # Odyssee serves it again
        approvals._run()
        self.assertEqual((approvals.state, approvals.failed_count), ("ok", 0))
        self.assertEqual(self.Approval.search_count(mine), len(finals))

    def test_a_pdf_odyssee_cannot_serve_is_set_aside_and_the_others_attached(self):
        self.backend.max_attempts = 2
        self.stream("jobs")._run()
        self.stream("approvals")._run()
        imported = self.Approval.search([("backend_id", "=", self.backend.id)])
        bad = next(
            row
            for row in self.emulator.tables["DbFile"].values()
            if row["file_type_name"] == "JOB_APPROVAL"
            and row["id_in_table"] == imported[0].odyssee_guid
        )
        self.emulator.set_faults(Faults(poisoned={f"DbFile({bad['id']})": 500}))
        pdfs = self.stream("pdfs")
        self.assertFalse(pdfs._run())
        self.assertLess(len(imported.pdf_attachment_id), len(imported) - 1, "its page waits")
        self.assertTrue(pdfs._run())
        self.assertEqual((pdfs.state, pdfs.failed_count), ("attention", 1))
        self.assertEqual(pdfs.attention_ids.external_id, bad["id"])
        self.assertEqual(len(imported.pdf_attachment_id), len(imported) - 1)
        self.assertGreaterEqual(
            pdfs.watermark, odata.normalize_timestamp(bad["modified_dateutc"]), "moved past it"
        )
        self.emulator.set_faults(Faults())
        pdfs._run()
        self.assertEqual((pdfs.state, pdfs.failed_count), ("ok", 0))
        self.assertEqual(len(imported.pdf_attachment_id), len(imported))

    def test_any_failure_is_recorded_on_its_stream_and_the_others_go_on(self):
        other_company = self.env["res.company"].create({"name": "Unreachable Ltd"})
        other = self.env["construction.odyssee.backend"].create(
            {
                "name": "Down",
                "company_id": other_company.id,
                "url": "http://127.0.0.1:9/api",
                "domain": "X",
                "username": "u",
                "password": "p",
                "max_retries": 0,
                "timeout": 2,
            }
        )
        importer = type(self.env["construction.odyssee.importer"])
        # A bug in Odoo is logged with its traceback (asserted, so that neither
        # runner reports the expected error as a failure of its own).
        stream_logger = "odoo.addons.construction_asset_sync.models.construction_odyssee_stream"
        with (
            patch.object(importer, "_pull_pdfs", side_effect=KeyError("file_name")),
            self.assertLogs(stream_logger, "ERROR") as logged,
        ):
            self.env["construction.odyssee.backend"]._cron_sync()
        self.assertIn("KeyError: 'file_name'", "\n".join(logged.output))
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )
        pdfs = self.stream("pdfs")
        self.assertEqual((pdfs.state, pdfs.error_kind), ("error", "internal"))
        self.assertIn("KeyError", pdfs.last_error)
        down = other.stream_ids.filtered(lambda s: s.kind == "approvals")
        self.assertEqual((down.state, down.error_kind), ("error", "unreachable"))

    def sync_now(self):
        """Press *Sync now* and run the scheduled action it triggers: the notification
        the user who pressed it got when the sync ended (``simple_notification``)."""
        sent = len(self.notifications())  # recording from now on
        self.archive_other_backends()
        answer = self.backend.action_sync_now()["params"]
        self.assertEqual(answer["type"], "info")
        self.env["construction.odyssee.backend"]._cron_sync()
        self.assertEqual(len(self.notifications()), sent + 1, "one notification per press")
        return self.notifications()[-1]

    def assertReport(self, report, expected_type):
        """The notification's type, failing with what the sync reported and why."""
        streams = "; ".join(
            f"{s.kind}: {s.state} {s.failed_count} set aside {(s.last_error or '')[:500]}"
            for s in self.backend.stream_ids
        )
        self.assertEqual(report["type"], expected_type, f"{report['message']} [{streams}]")

    def archive_other_backends(self):
        """The scheduled action syncs every active backend: the demo data's one may
        point at the port this test's emulator serves, and import its tenant first."""
        self.env["construction.odyssee.backend"].search(
            [("id", "!=", self.backend.id)]
        ).active = False

    def requesters(self):
        # The test's user is OdooBot, which is archived.
        return self.backend.with_context(active_test=False).sync_requested_by_ids

    def notifications(self):
        """The ``simple_notification`` payloads sent on the bus since the test began.

        Recorded as they are sent: the bus keeps them in the transaction's
        precommit data, which a savepoint rolled back later in the test clears.
        """
        if not hasattr(self, "_sent"):
            self._sent = []
            users = type(self.env["res.users"])
            original = users._bus_send

            def record(user, notification_type, message, /, **kwargs):
                if notification_type == "simple_notification":
                    self._sent.append(message)
                return original(user, notification_type, message, **kwargs)

            patcher = patch.object(users, "_bus_send", record)
            patcher.start()
            self.addCleanup(patcher.stop)
        return self._sent

    def test_sync_now_starts_the_sync_in_the_background_and_says_what_it_did_or_why_not(self):
        self.notifications()  # recording from now on
        self.archive_other_backends()
        cron = self.env.ref("construction_asset_sync.ir_cron_odyssee_sync")
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        answer = self.backend.action_sync_now()["params"]
        # The request answers at once: its HTTP worker is not held by an import.
        self.assertIn("runs in the background", answer["message"])
        self.assertFalse(self.Approval.search_count([("backend_id", "=", self.backend.id)]))
        self.assertEqual(
            self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers + 1
        )
        self.assertEqual(self.requesters(), self.env.user)
        self.env["construction.odyssee.backend"]._cron_sync()
        [result] = self.notifications()
        self.assertReport(result, "success")
        self.assertEqual(result["title"], self.backend.name)
        self.assertIn(f"{self.APPROVALS} new approval", result["message"])
        self.assertFalse(self.requesters())
        # A scheduled run with nobody waiting for it tells nobody.
        self.env["construction.odyssee.backend"]._cron_sync()
        self.assertEqual(len(self.notifications()), 1)
        # Another worker syncing the backend holds its lock: the user is told, and
        # waits for that run's end; the scheduled action does not run it twice.
        other = self.env.registry.cursor()
        self.addCleanup(other.close)
        other.execute("SELECT pg_advisory_lock(%s, %s)", [SYNC_LOCK, self.backend.id])
        answer = self.backend.action_sync_now()["params"]
        self.assertIn("already running", answer["message"])
        self.env["construction.odyssee.backend"]._cron_sync()
        self.assertEqual(len(self.notifications()), 1)
        self.assertEqual(self.requesters(), self.env.user)
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [SYNC_LOCK, self.backend.id])
        self.backend.password = "wrong"
        result = self.sync_now()
        self.assertEqual(result["type"], "danger")
        self.assertIn("refused the credentials", result["message"])
        self.backend.write(
            {"password": "s3cret", "url": "http://127.0.0.1:9/api", "max_retries": 0}
        )
        self.assertIn("could not be reached", self.sync_now()["message"])

    def commit_a_waiting_telematics_event(self):
        """An event received and committed, not processed yet: what the sync sees
        from a connection of its own, as receipt's next request would."""
        with committed_env(self.registry) as env:
            source, _key, machine = make_fleet(env, " odyssee give way")
            env["construction.telematics.event"]._receive_body(
                source,
                "readings",
                b'{"readings": [{"device_id": "DEV-1", "at": "2026-11-20T09:00:00Z",'
                b' "engine_hours": 5}]}',
            )
            source_id, machine_id = source.id, machine.id
        self.addCleanup(drop_committed_fleet, self.registry, source_id, [machine_id])

    def connect_a_processing_worker(self):
        """A processing worker connected to take the events (its listening
        connection): without one, pausing would help nobody."""
        worker = psycopg2.connect(
            **dict(
                sql_db.connection_info_for(self.registry.db_name)[1],
                application_name=f"{WORKER_APPLICATION_NAME}-odyssee-test",
            )
        )
        self.addCleanup(worker.close)

    def recording_give_way(self, **bounds):
        """Patches GiveWay; returns the list of the syncs' instances, with ``bounds``."""
        syncs = []

        class RecordingGiveWay(cpu_priority.GiveWay):
            def __init__(self, busy, **options):
                self.asked_from = set()  # the threads that asked whether to pause

                def asking():
                    self.asked_from.add(threading.current_thread().name)
                    return busy()

                super().__init__(asking, **(options | bounds))
                syncs.append(self)

        patcher = patch.object(cpu_priority, "GiveWay", RecordingGiveWay)
        patcher.start()
        self.addCleanup(patcher.stop)
        return syncs

    def unwritten_transaction(self):
        """In service, each page commits before the next is read; this test's
        transaction holds its set-up: the sync looks at no writer's transaction."""
        return patch.object(type(self.backend), "_connection_pid", return_value=None)

    def test_the_scheduled_sync_pauses_while_telematics_events_wait_and_then_goes_on(self):
        self.commit_a_waiting_telematics_event()
        self.connect_a_processing_worker()
        syncs = self.recording_give_way(max_pause=0.2, min_work=0.2)
        with self.unwritten_transaction(), patch.object(backend_module._logger, "info") as info:
            result = self.sync_now()
        self.assertReport(result, "success")
        # The server log says how long the sync gave way, for who wonders why it took long.
        [(message, *values)] = [c.args for c in info.call_args_list if "paused" in c.args[0]]
        self.assertIn("Odyssee sync of %s paused", message)
        self.assertEqual(values[0], self.backend.name)
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )
        # It paused (0.2 s at a time, 0.2 s of work between pauses), and went on.
        self.assertGreater(syncs[0].paused, 0.1)
        # A transaction that has written may hold rows processing needs: no pause.
        dbname, pid = self.registry.db_name, self.backend._connection_pid()
        self.assertTrue(telematics_waiting(dbname))
        self.assertFalse(telematics_waiting(dbname, pid))
        self.sync_now()
        self.assertEqual(syncs[1].paused, 0.0)
        # Processed, the event waits no more: no pause.
        with committed_env(self.registry) as env:
            while env["construction.telematics.event"]._process_batch():
                pass
        with self.unwritten_transaction():
            self.sync_now()
        self.assertEqual(syncs[2].paused, 0.0)

    def test_only_the_syncs_own_thread_uses_its_cursor_when_it_asks_whether_to_pause(self):
        # The page's lines and PDFs are read in a thread while this one writes; a
        # reading thread asking on the sync's cursor mixed the two threads' results
        # (KeyError 'record', StopIteration, access errors) and set rows aside.
        self.commit_a_waiting_telematics_event()
        self.connect_a_processing_worker()
        syncs = self.recording_give_way(max_pause=0.01, min_work=0, check_every=0)
        cursor, users = self.env.cr, set()
        execute = type(cursor).execute

        def spy(cr, *args, **kwargs):
            if cr is cursor:
                users.add(threading.current_thread().name)
            return execute(cr, *args, **kwargs)

        with patch.object(type(cursor), "execute", spy):
            self.assertReport(self.sync_now(), "success")
        # The importer's reading threads are its ThreadPoolExecutor's.
        readers = {name for name in syncs[0].asked_from if name.startswith("ThreadPoolExecutor")}
        self.assertTrue(readers, "the reading threads asked whether to pause")
        self.assertEqual({name for name in users if name.startswith("ThreadPoolExecutor")}, set())
        approvals = self.Approval.search([("backend_id", "=", self.backend.id)])
        self.assertEqual(len(approvals.pdf_attachment_id), self.APPROVALS)

    def test_events_waiting_with_no_worker_to_take_them_do_not_pause_the_sync(self):
        self.commit_a_waiting_telematics_event()
        syncs = self.recording_give_way()
        with self.unwritten_transaction():
            self.assertReport(self.sync_now(), "success")
        self.assertEqual(syncs[0].paused, 0.0)

    def test_a_sync_that_fails_in_odoo_says_so_to_who_pressed_and_frees_the_backend(self):
        backend_class = type(self.env["construction.odyssee.backend"])
        with (
            patch.object(backend_class, "_ensure_streams", side_effect=KeyError("boom")),
            self.assertLogs(
                "odoo.addons.construction_asset_sync.models.construction_odyssee_backend", "ERROR"
            ),
        ):
            result = self.sync_now()
        self.assertEqual(result["type"], "danger")
        self.assertIn("failed in Odoo", result["message"])
        self.assertFalse(self.backend._sync_running())

    def test_a_moved_tenant_is_named_and_no_record_is_set_aside(self):
        # Odyssee became Wello and its hosts moved: the old URL answers 301 everywhere.
        new_url = "https://tenant.wello.solutions/api"
        self.emulator.set_faults(Faults(moved_to=new_url))
        message = self.backend.action_test_connection()["params"]["message"]
        self.assertIn(f"has moved to {new_url}. Odoo does not follow redirects", message)
        self.assertIn("set it as the API URL", message)
        result = self.sync_now()
        self.assertEqual(result["type"], "danger")
        self.assertIn("Odyssee could not be reached", result["message"])
        self.assertIn(f"moved to {new_url}/", result["message"])
        approvals = self.stream("approvals")
        self.assertEqual((approvals.state, approvals.error_kind), ("error", "unreachable"))
        self.assertFalse(self.Approval.search_count([("backend_id", "=", self.backend.id)]))
        self.assertEqual(sum(self.backend.stream_ids.mapped("failed_count")), 0)
        # Met on one record's call, in a run that isolates failing rows: still no row's fault.
        moved = odyssee_client.OdysseeMoved("GET /Jobs(x): HTTP 301", status=301)
        self.assertFalse(record_error(moved))
        self.assertTrue(record_error(odyssee_client.OdysseeHTTPError("GET", status=500)))
        self.emulator.set_faults(Faults())
        self.assertReport(self.sync_now(), "success")
        self.assertEqual(
            self.Approval.search_count([("backend_id", "=", self.backend.id)]), self.APPROVALS
        )


class TestOdysseeBackendAccess(TransactionCase):
    def test_integration_admin_configures_a_backend_and_only_they_read_the_password(self):
        from odoo.exceptions import AccessError
        from odoo.tests import new_test_user

        self.env["construction.odyssee.backend"].search([]).active = False
        admin = new_test_user(
            self.env,
            "odyssee_admin",
            groups="base.group_user,construction_asset_sync.group_integration_admin",
        )
        dispatcher = new_test_user(
            self.env,
            "odyssee_dispatcher",
            groups="base.group_user,construction_asset_sync.group_dispatcher",
        )
        backend = (
            self.env["construction.odyssee.backend"]
            .with_user(admin)
            .create(
                {
                    "name": "Tenant",
                    "url": "http://127.0.0.1:9/api",
                    "domain": "D",
                    "username": "u",
                    "password": "pw",
                }
            )
        )
        self.assertEqual(
            sorted(backend.stream_ids.mapped("kind")), ["approvals", "jobs", "pdfs", "push"]
        )
        self.assertEqual(backend.external_system_id.kind, "odyssee")
        self.assertEqual(backend.with_user(dispatcher).name, "Tenant")
        with self.assertRaises(AccessError):
            backend.with_user(dispatcher).read(["password"])
        with self.assertRaises(AccessError):
            backend.with_user(dispatcher).write({"url": "http://elsewhere"})


class TestOdysseeCallLogRetention(TransactionCase):
    def test_calls_are_kept_for_the_retention_period(self):
        from freezegun import freeze_time

        self.env["construction.odyssee.backend"].search([]).active = False
        backend = self.env["construction.odyssee.backend"].create(
            {
                "name": "T",
                "url": "http://127.0.0.1:9/api",
                "domain": "D",
                "username": "u",
                "log_retention_days": 30,
            }
        )
        Log = self.env["construction.odyssee.call.log"]
        old = Log.create({"backend_id": backend.id, "method": "GET", "path": "/Jobs"})
        recent = Log.create({"backend_id": backend.id, "method": "GET", "path": "/Company"})
        self.env.flush_all()
        # create_date comes from the database clock, which freezegun does not move.
        for log, stamp in ((old, "2026-10-01 12:00:00"), (recent, "2026-10-20 12:00:00")):
            self.env.cr.execute(
                "UPDATE construction_odyssee_call_log SET create_date = %s WHERE id = %s",
                [stamp, log.id],
            )
        with freeze_time("2026-11-05 12:00:00"):
            backend._cron_purge_logs()
        self.assertFalse(old.exists())
        self.assertTrue(recent.exists())
