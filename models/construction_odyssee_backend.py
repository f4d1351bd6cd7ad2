import logging
import threading
import time
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..protocols import odyssee_client

_logger = logging.getLogger(__name__)


class ConstructionOdysseeBackend(models.Model):
    """One Odyssee tenant this company exchanges work orders with."""

    _name = "construction.odyssee.backend"
    _description = "Odyssee backend"
    _inherit = ["mail.thread"]
    _check_company_auto = True

    name = fields.Char(required=True, default="Odyssee")
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    url = fields.Char(
        string="API URL",
        required=True,
        default="https://developers.odysseemobile.com/api",
        tracking=True,
    )
    domain = fields.Char(required=True, tracking=True, help="The Odyssee domain (tenant) name.")
    username = fields.Char(string="API user", required=True, tracking=True)
    password = fields.Char(
        string="API password", copy=False, groups="construction_asset_sync.group_integration_admin"
    )
    page_size = fields.Integer(default=20, help="Odyssee serves at most 20 rows per page.")
    rate_limit = fields.Float(string="Requests per second", default=10.0)
    timeout = fields.Integer(string="Timeout (s)", default=30)
    max_retries = fields.Integer(default=4)
    overlap_seconds = fields.Integer(
        default=5,
        help="Each pull re-reads this many seconds before its watermark, against clock skew "
        "and rows sharing a timestamp; upserts make the re-read harmless.",
    )
    log_retention_days = fields.Integer(default=30)
    external_system_id = fields.Many2one(
        "construction.external.system",
        ondelete="restrict",
        check_company=True,
        domain="[('kind', '=', 'odyssee')]",
    )
    default_project_id = fields.Many2one(
        "project.project",
        string="Default timesheet project",
        check_company=True,
        help="Timesheets of machines without a job site go here.",
    )
    job_type_code = fields.Char(default="REPAIR", help="Odyssee job type of pushed requests.")
    push_stage_ids = fields.Many2many(
        "maintenance.stage",
        string="Send when entering",
        help="Requests entering one of these stages are sent to Odyssee automatically.",
    )
    service_product_id = fields.Many2one(
        "product.product",
        string="Default service product",
        check_company=True,
        domain="[('type', '=', 'service')]",
        help="Invoices bill imported hours with this product unless the hour type has its own.",
    )
    hour_product_ids = fields.One2many(
        "construction.odyssee.hour.product", "backend_id", string="Service products per hour type"
    )
    stream_ids = fields.One2many("construction.odyssee.stream", "backend_id", string="Streams")
    call_log_ids = fields.One2many("construction.odyssee.call.log", "backend_id")

    def init(self):
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS construction_odyssee_backend_company_active_uniq
               ON construction_odyssee_backend (company_id) WHERE active"""
        )

    @api.model_create_multi
    def create(self, vals_list):
        # A backend archived in this transaction must be archived in the table
        # before the one-active-backend-per-company index sees the new one.
        self.flush_model(["active"])
        backends = super().create(vals_list)
        for backend in backends:
            backend._ensure_streams()
            if not backend.external_system_id:
                backend.external_system_id = self.env["construction.external.system"].create(
                    {
                        "name": backend.name,
                        "kind": "odyssee",
                        "code": f"odyssee-{backend.id}",
                        "company_id": backend.company_id.id,
                    }
                )
        return backends

    def _ensure_streams(self):
        Stream = self.env["construction.odyssee.stream"].sudo()
        for backend in self:
            for kind in ("approvals", "pdfs", "push"):
                if not backend.stream_ids.filtered(lambda s, k=kind: s.kind == k):
                    Stream.create({"backend_id": backend.id, "kind": kind})

    @api.model
    def _systems_of(self, records):
        """``{record id: external system}``: the id space of each record's company backend."""
        backends = self.sudo().search([("company_id", "in", records.company_id.ids)])
        systems = {backend.company_id.id: backend.external_system_id for backend in backends}
        return {record.id: systems.get(record.company_id.id) for record in records}

    def _stream(self, kind):
        self.ensure_one()
        return self.stream_ids.filtered(lambda stream: stream.kind == kind)

    def _client(self, call_log=None):
        """An ``OdysseeClient``; each call it makes is appended to ``call_log``."""
        self.ensure_one()
        backend = self.sudo()
        if not backend.password:
            raise UserError(self.env._("Set the API password of %(name)s first.", name=self.name))
        return odyssee_client.OdysseeClient(
            base_url=backend.url,
            domain=backend.domain,
            username=backend.username,
            password=backend.password,
            timeout=backend.timeout,
            max_retries=backend.max_retries,
            max_requests_per_second=backend.rate_limit,
            on_call=call_log.append if call_log is not None else None,
        )

    def _write_call_log(self, call_log):
        """Store the calls of ``call_log`` in the exchange log and empty it."""
        records, call_log[:] = list(call_log), []
        if records:
            self.env["construction.odyssee.call.log"].sudo().create(
                [
                    {
                        "backend_id": self.id,
                        "method": r.method,
                        "path": r.path,
                        "query": r.query,
                        "status": r.status or 0,
                        "duration_ms": r.duration_ms,
                        "retries": r.retries,
                        "correlation_id": r.correlation_id,
                        "error": r.error,
                    }
                    for r in records
                ]
            )

    def action_test_connection(self):
        """One cheap call; the answer is shown, and the call stays in the log either way."""
        self.ensure_one()
        call_log = []
        client = self._client(call_log)
        try:
            client.get("JobType", query="$top=1")
        except odyssee_client.OdysseeError as exc:
            message = self.env._("Odyssee refused the connection: %(error)s", error=str(exc))
            kind = "danger"
        else:
            message, kind = self.env._("Connected to Odyssee."), "success"
        self._write_call_log(call_log)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": kind, "message": message, "sticky": kind == "danger"},
        }

    def action_sync_now(self):
        self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": "info", "message": self.env._("Synchronisation queued.")},
        }

    @api.model
    def _cron_sync(self, time_budget=50.0):
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget
        unfinished = False
        for backend in self.search([]):
            unfinished |= backend._sync(auto_commit=auto_commit, deadline=deadline) is None
        if unfinished:
            # A long backlog continues in the next run, right away.
            self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()

    def _sync(self, auto_commit=False, deadline=None):
        """Push pending work, then pull approvals and PDFs; each stream records its outcome.

        Returns None when the deadline cut the approvals pull short.
        """
        self.ensure_one()
        self._stream("push")._run(auto_commit=auto_commit)
        done = self._stream("approvals")._run(auto_commit=auto_commit, deadline=deadline)
        self._stream("pdfs")._run(auto_commit=auto_commit)
        return done

    @api.model
    def _cron_purge_logs(self):
        self.env.flush_all()
        for backend in self.with_context(active_test=False).search([]):
            if backend.log_retention_days <= 0:
                continue
            cutoff = fields.Datetime.now() - timedelta(days=backend.log_retention_days)
            self.env.cr.execute(
                """DELETE FROM construction_odyssee_call_log
                   WHERE backend_id = %s AND create_date < %s""",
                [backend.id, cutoff],
            )
        self.env["construction.odyssee.call.log"].invalidate_model()
