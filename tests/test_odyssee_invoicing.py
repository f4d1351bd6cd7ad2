import threading
import uuid

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from .common import committed_env


def build_job_fixture(env, suffix=""):
    """A backend, a customer's machine on a job site, and one imported approval with its work."""
    env["construction.odyssee.backend"].search([]).write({"active": False})
    group = env["account.tax.group"].create({"name": f"VAT{suffix}", "company_id": env.company.id})
    tax = env["account.tax"].create(
        {
            "name": f"VAT 21{suffix}",
            "amount": 21,
            "type_tax_use": "sale",
            "tax_group_id": group.id,
            "company_id": env.company.id,
        }
    )
    customer = env["res.partner"].create({"name": f"Builder & Sons{suffix}"})
    analytic_plan = env["account.analytic.plan"].create({"name": f"Sites{suffix}"})
    account = env["account.analytic.account"].create(
        {"name": f"Site A{suffix}", "plan_id": analytic_plan.id}
    )
    site = env["project.project"].create(
        {"name": f"Site A{suffix}", "partner_id": customer.id, "account_id": account.id}
    )
    machine = env["maintenance.equipment"].create(
        {"name": f"Excavator{suffix}", "job_site_project_id": site.id}
    )

    def product(name, code, price, kind="consu"):
        return env["product.product"].create(
            {
                "name": name,
                "default_code": code,
                "lst_price": price,
                "type": kind,
                "taxes_id": [Command.set(tax.ids)],
            }
        )

    labour = product(f"Labour hour{suffix}", f"LAB{suffix}", 70.0, "service")
    travel = product(f"Travel hour{suffix}", f"TRV{suffix}", 50.0, "service")
    backend = env["construction.odyssee.backend"].create(
        {
            "name": f"Tenant{suffix}",
            "url": "http://127.0.0.1:9/api",
            "domain": "D",
            "username": "u",
            "password": "p",
            "service_product_id": labour.id,
            "hour_product_ids": [Command.create({"line_code": "TRAVEL", "product_id": travel.id})],
        }
    )
    filt = product(f"Oil filter{suffix}", f"FLT{suffix}", 40.0)
    seal = product(f"Seal kit{suffix}", f"SEAL{suffix}", 25.0)
    return {
        "env": env,
        "backend": backend,
        "customer": customer,
        "site": site,
        "machine": machine,
        "tax": tax,
        "labour": labour,
        "travel": travel,
        "filter": filt,
        "seal": seal,
        "account": account,
    }


def import_job(fixture, name, approval_guid):
    env = fixture["env"]
    request = env["maintenance.request"].create(
        {
            "name": name,
            "equipment_id": fixture["machine"].id,
            "request_origin": "odyssee",
            "reference_back_office": f"MR-{approval_guid[:6]}",
        }
    )
    pdf = env["ir.attachment"].create(
        {
            "name": f"{name}.pdf",
            "raw": b"%PDF-1.4 signed",
            "mimetype": "application/pdf",
            "res_model": "maintenance.request",
            "res_id": request.id,
        }
    )
    approval = env["construction.odyssee.approval"].create(
        {
            "backend_id": fixture["backend"].id,
            "odyssee_guid": approval_guid,
            "job_guid": approval_guid[::-1],
            "request_id": request.id,
            "pdf_attachment_id": pdf.id,
        }
    )
    common = {
        "backend_id": fixture["backend"].id,
        "approval_id": approval.id,
        "approval_guid": approval_guid,
        "job_guid": approval.job_guid,
        "request_id": request.id,
        "working_date": "2026-11-20",
    }
    Line = env["construction.odyssee.usage.line"]
    lines = Line.create(
        [
            dict(
                common,
                odyssee_guid=str(uuid.uuid4()),
                kind="part",
                name="Oil filter",
                code="FLT",
                product_id=fixture["filter"].id,
                quantity=2,
                price=38.0,
            ),
            dict(
                common,
                odyssee_guid=str(uuid.uuid4()),
                kind="part",
                name="Seal kit",
                code="SEAL",
                product_id=fixture["seal"].id,
                quantity=1,
                price=25.0,
                is_under_warranty=True,
            ),
            dict(
                common,
                odyssee_guid=str(uuid.uuid4()),
                kind="time",
                name="Labour",
                code="NORMAL",
                type_code="WorkingTime",
                quantity=2.5,
                price=65.0,
            ),
            dict(
                common,
                odyssee_guid=str(uuid.uuid4()),
                kind="time",
                name="Labour",
                code="NORMAL",
                type_code="WorkingTime",
                quantity=1.5,
                price=65.0,
            ),
            dict(
                common,
                odyssee_guid=str(uuid.uuid4()),
                kind="time",
                name="Travel",
                code="TRAVEL",
                type_code="TravelTime",
                quantity=0.75,
                price=45.0,
            ),
        ]
    )
    return request, approval, lines


@tagged("post_install", "-at_install")
class TestOdysseeInvoicing(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fixture = build_job_fixture(cls.env)
        cls.request, cls.approval, cls.lines = import_job(
            cls.fixture, "Hydraulic leak", "aaaa1111-0000-4000-8000-000000000001"
        )
        cls.accountant = new_test_user(
            cls.env, "cas_accountant", groups="base.group_user,account.group_account_invoice"
        )
        cls.dispatcher = new_test_user(
            cls.env,
            "cas_disp_inv",
            groups="base.group_user,construction_asset_sync.group_dispatcher",
        )

    def wizard(self, records, user=None, **values):
        env = self.env(user=user or self.accountant)
        return (
            env["construction.odyssee.invoice.wizard"]
            .with_context(active_model=records._name, active_ids=records.ids)
            .create(values)
        )

    def invoices_of(self, action):
        return self.env["account.move"].search(action["domain"])

    def test_a_realistic_job_gives_correct_totals_taxes_and_provenance(self):
        invoice = self.invoices_of(self.wizard(self.approval).action_create_invoices())
        self.assertEqual(len(invoice), 1)
        self.assertEqual(
            (invoice.move_type, invoice.state, invoice.partner_id),
            ("out_invoice", "draft", self.fixture["customer"]),
        )
        lines = invoice.invoice_line_ids.sorted("id")
        self.assertEqual(len(lines), 4, "2 parts, labour hours grouped, travel")
        self.assertEqual(lines.mapped("quantity"), [2.0, 1.0, 4.0, 0.75])
        self.assertEqual(lines.mapped("price_unit"), [38.0, 0.0, 65.0, 45.0])
        self.assertEqual(lines[2].product_id, self.fixture["labour"])
        self.assertEqual(lines[3].product_id, self.fixture["travel"])
        self.assertIn("under warranty", lines[1].name)
        self.assertIn("aaaa1111", lines[0].name)
        untaxed = 2 * 38.0 + 0 + 4 * 65.0 + 0.75 * 45.0
        self.assertAlmostEqual(invoice.amount_untaxed, untaxed)
        self.assertAlmostEqual(invoice.amount_total, round(untaxed * 1.21, 2))
        self.assertEqual(lines[0].analytic_distribution, {str(self.fixture["account"].id): 100})
        links = self.env["construction.odyssee.invoice.link"].search([("move_id", "=", invoice.id)])
        self.assertEqual(len(links), 5)
        self.assertEqual(set(links.mapped("approval_guid")), {self.approval.odyssee_guid})
        self.assertEqual(set(self.lines.mapped("invoice_status")), {"invoiced"})
        attachments = self.env["ir.attachment"].search(
            [("res_model", "=", "account.move"), ("res_id", "=", invoice.id)]
        )
        self.assertEqual(attachments.raw, b"%PDF-1.4 signed")

    def test_lines_signed_by_a_daily_approval_carry_the_final_pdf(self):
        """Daily approvals are not imported: their lines have no approval, only the job's."""
        lines = self.lines[:2]
        lines.write({"approval_id": False, "approval_guid": "dddd0000-0000-4000-8000-000000000001"})
        invoice = self.invoices_of(self.wizard(lines).action_create_invoices())
        attachments = self.env["ir.attachment"].search(
            [("res_model", "=", "account.move"), ("res_id", "=", invoice.id)]
        )
        self.assertEqual(attachments.mapped("raw"), [b"%PDF-1.4 signed"])

    def test_product_price_setting(self):
        invoice = self.invoices_of(
            self.wizard(self.approval, price_source="product").action_create_invoices()
        )
        self.assertEqual(
            invoice.invoice_line_ids.sorted("id").mapped("price_unit"), [40.0, 0.0, 70.0, 50.0]
        )

    def test_grouping_by_customer_job_or_project(self):
        request2, approval2, _lines2 = import_job(
            self.fixture, "Track tension", "bbbb2222-0000-4000-8000-000000000002"
        )
        both = self.approval | approval2
        by_customer = self.invoices_of(self.wizard(both).action_create_invoices())
        self.assertEqual(len(by_customer), 1)
        by_customer.button_cancel()
        by_job = self.invoices_of(self.wizard(both, split_by="job").action_create_invoices())
        self.assertEqual(len(by_job), 2)
        self.assertEqual(
            {i.invoice_origin for i in by_job}, {self.request.display_name, request2.display_name}
        )
        by_job.button_cancel()
        by_project = self.invoices_of(
            self.wizard(both, split_by="project").action_create_invoices()
        )
        self.assertEqual(len(by_project), 1)

    def test_running_twice_creates_nothing_twice(self):
        self.wizard(self.request).action_create_invoices()
        again = self.wizard(self.request)
        self.assertEqual(again.billable_count, 0)
        with self.assertRaisesRegex(UserError, "Nothing left"):
            self.wizard(
                self.approval, line_ids=[Command.set(self.lines.ids)]
            ).action_create_invoices()
        self.assertEqual(
            self.env["account.move"].search_count(
                [("partner_id", "=", self.fixture["customer"].id)]
            ),
            1,
        )

    def test_the_guard_is_a_constraint_not_just_the_wizard(self):
        invoice = self.invoices_of(self.wizard(self.approval).action_create_invoices())
        other = invoice.copy()
        with self.assertRaises(ValidationError):
            self.env["construction.odyssee.invoice.link"].create(
                {"usage_line_id": self.lines[0].id, "move_line_id": other.invoice_line_ids[0].id}
            )

    def test_cancel_or_reverse_frees_the_lines(self):
        invoice = self.invoices_of(self.wizard(self.approval).action_create_invoices())
        invoice.button_cancel()
        self.assertEqual(set(self.lines.mapped("invoice_status")), {"to_invoice"})
        second = self.invoices_of(self.wizard(self.approval).action_create_invoices())
        second.invoice_date = "2026-11-25"
        second.action_post()
        self.assertEqual(set(self.lines.mapped("invoice_status")), {"invoiced"})
        second._reverse_moves(cancel=True)
        self.assertEqual(second.payment_state, "reversed")
        self.assertEqual(set(self.lines.mapped("invoice_status")), {"to_invoice"})
        links = self.env["construction.odyssee.invoice.link"].search(
            [("usage_line_id", "in", self.lines.ids)]
        )
        self.assertEqual(len(links), 10, "history of both invoices is kept")

    def test_only_invoicing_users_run_it(self):
        with self.assertRaises(AccessError):
            self.wizard(self.approval, user=self.dispatcher)
        wizard = self.wizard(self.approval)
        with self.assertRaises(AccessError):
            wizard.with_user(self.dispatcher).action_create_invoices()

    def test_each_company_invoices_only_its_own_work(self):
        other_company = self.env["res.company"].create(
            {"name": "Other Builders", "country_id": self.env.company.country_id.id}
        )
        other_env = self.env(context=dict(self.env.context, allowed_company_ids=[other_company.id]))
        other_env["maintenance.team"].create({"name": "Other team", "company_id": other_company.id})
        other = build_job_fixture(other_env, suffix=" (other)")
        _request, other_approval, other_lines = import_job(
            other, "Other job", "cccc3333-0000-4000-8000-000000000003"
        )
        self.assertEqual(set(other_lines.mapped("company_id")), {other_company})
        wizard = self.env["construction.odyssee.invoice.wizard"].create(
            {"line_ids": [Command.set((self.lines | other_lines).ids)]}
        )
        self.assertEqual(wizard.billable_count, 5)
        self.assertIn("another company", wizard.skipped_summary)
        accountant_here = self.accountant
        self.assertFalse(
            self.env["construction.odyssee.usage.line"]
            .with_user(accountant_here)
            .search([("id", "in", other_lines.ids)])
        )

    def test_reconciliation_shows_what_is_left_and_engine_hours(self):
        source = self.env["construction.telematics.source"].create({"name": "Tel"})
        self.env["construction.external.id"].create(
            {
                "system_id": source.external_system_id.id,
                "external_id": "M1",
                "equipment_id": self.fixture["machine"].id,
            }
        )
        event = self.env["construction.telematics.event"]
        from odoo import fields as odoo_fields

        event._receive_readings(
            source,
            [
                {
                    "device_id": "M1",
                    "at": odoo_fields.Datetime.to_datetime("2026-11-20 07:00:00"),
                    "engine_hours": 100.0,
                    "_index": 0,
                },
                {
                    "device_id": "M1",
                    "at": odoo_fields.Datetime.to_datetime("2026-11-20 17:00:00"),
                    "engine_hours": 109.0,
                    "_index": 1,
                },
            ],
            [],
        )
        event._process_batch()
        self.env.flush_all()
        Reco = self.env["construction.odyssee.reconciliation"]
        row = Reco.search([("request_id", "=", self.request.id)])
        self.assertEqual(
            (row.hours_recorded, row.hours_invoiced, row.hours_to_invoice), (4.75, 0.0, 4.75)
        )
        self.assertEqual(row.parts_to_invoice, 2)
        self.assertEqual(row.engine_hours, 9.0)
        self.assertTrue(row.mismatch, "4.75 h recorded against 9 engine hours")
        self.wizard(self.approval).action_create_invoices()
        self.env.flush_all()
        Reco.invalidate_model()
        row = Reco.search([("request_id", "=", self.request.id)])
        self.assertEqual(
            (row.hours_invoiced, row.hours_to_invoice, row.parts_to_invoice), (4.75, 0.0, 0)
        )


@tagged("post_install", "-at_install")
class TestOdysseeInvoicingConcurrency(TransactionCase):
    def setUp(self):
        super().setUp()
        with committed_env(self.registry) as env:
            fixture = build_job_fixture(env, suffix=f" concurrency {id(self)}")
            request, approval, lines = import_job(fixture, "Concurrent job", str(uuid.uuid4()))
            self.line_ids = lines.ids
            self.request_id, self.approval_id = request.id, approval.id
            self.customer_id = fixture["customer"].id
            self.backend_id = fixture["backend"].id
        self.addCleanup(self._drop)

    def _drop(self):
        with committed_env(self.registry) as env:
            moves = env["account.move"].search([("partner_id", "=", self.customer_id)])
            env["construction.odyssee.invoice.link"].search([("move_id", "in", moves.ids)]).unlink()
            moves.button_draft() if moves.filtered(lambda m: m.state == "posted") else None
            moves.unlink()
            env["construction.odyssee.usage.line"].browse(self.line_ids).unlink()
            env["construction.odyssee.approval"].browse(self.approval_id).unlink()
            env["maintenance.request"].browse(self.request_id).unlink()
            env["construction.odyssee.backend"].browse(self.backend_id).active = False

    def test_concurrent_wizards_cannot_bill_a_line_twice(self):
        barrier = threading.Barrier(2)
        outcomes = []

        def run():
            try:
                with committed_env(self.registry) as env:
                    wizard = env["construction.odyssee.invoice.wizard"].create(
                        {"line_ids": [Command.set(self.line_ids)]}
                    )
                    wizard.billable_count  # noqa: B018 (computed before the race)
                    barrier.wait(timeout=30)
                    wizard.action_create_invoices()
                outcomes.append("invoiced")
            except Exception as exc:  # the loser: a lock/serialization error or nothing left
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=run) for _ in range(2)]
        # The loser's refused statement (lock conflict, deadlock) is logged as an ERROR
        # by odoo.sql_db.
        with mute_logger("odoo.sql_db"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        with committed_env(self.registry) as env:
            links = env["construction.odyssee.invoice.link"].search(
                [("usage_line_id", "in", self.line_ids), ("billing", "=", True)]
            )
            moves = env["account.move"].search([("partner_id", "=", self.customer_id)])
            self.assertEqual(len(links), len(self.line_ids), "every line billed exactly once")
            self.assertEqual(len(moves), 1, outcomes)
        self.assertEqual(outcomes.count("invoiced"), 1, outcomes)
