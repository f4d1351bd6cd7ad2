import logging
import threading
import time
from datetime import timedelta

import psycopg2
from odoo import api, fields, models, sql_db
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression
from odoo.tools.safe_eval import safe_eval

from .. import cpu_priority
from ..protocols import odyssee_client
from ..protocols.odyssee_adapter import OdysseeAdapter
from ..set_wise_insert import create_records
from .construction_telematics_event import (
    DUE_SQL,
    WORKER_APPLICATION_NAME,
    WORKER_CONNECTED_SQL,
)

_logger = logging.getLogger(__name__)
SYNC_LOCK = 0x0D55EE  # advisory lock namespace of a backend's synchronisation
REQUESTERS_TABLE = "construction_odyssee_backend_sync_requester_rel"


def telematics_waiting(dbname, writer_pid=None):
    """Whether telematics events of ``dbname`` are due for processing and a
    processing worker is connected to take them (without one, they wait for a
    scheduled action that a paused sync may itself keep from running), while
    the transaction of the database backend ``writer_pid`` (the sync's) has
    written nothing: the rows it would hold locked during a pause (requests
    of a machine, say) may be the ones processing needs.

    Seen from a connection of its own: the sync's transaction would keep seeing
    the queue, and the connections, as they were when it began; and the sync
    asks from its reading threads too, which must never use its cursor. A
    failure to look answers no: the sync goes on.
    """
    try:
        with sql_db.db_connect(dbname).cursor() as cr:
            cr.execute(
                f"""SELECT EXISTS(SELECT 1 FROM construction_telematics_event WHERE {DUE_SQL})
                       AND ({WORKER_CONNECTED_SQL})
                       AND NOT EXISTS(SELECT 1 FROM pg_stat_activity
                                       WHERE pid = %(writer)s AND backend_xid IS NOT NULL)""",
                {
                    "now": fields.Datetime.now(),
                    "worker": f"{WORKER_APPLICATION_NAME}%",
                    "writer": writer_pid,
                },
            )
            return cr.fetchone()[0]
    except Exception as exc:  # a full pool, a database going away
        _logger.warning("Odyssee sync: could not look at the telematics queue: %s", exc)
        return False


DEFAULT_PRODUCT_DOMAIN = (
    "['|', ('id', 'in', request_product_ids), ('categ_id', 'child_of', category_ids)]"
)


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
    page_size = fields.Integer(
        default=20,
        help="Rows per call. Odyssee serves 20 per page; a smaller value asks for fewer "
        "($top), 20 or more leaves the page size to Odyssee.",
    )
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
    job_type_code = fields.Char(
        help="ERP code of the Odyssee job type given to pushed requests. Empty: the job type "
        "Odyssee pre-selects on new jobs (its default), as job types set up in Odyssee's own "
        "screens have no ERP code.",
    )
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
    product_category_ids = fields.Many2many(
        "product.category",
        string="Article categories sent",
        help="Products of these categories (and their subcategories) are sent to Odyssee as "
        "articles, with the products used on requests.",
    )
    product_domain = fields.Char(
        string="Articles sent",
        default=DEFAULT_PRODUCT_DOMAIN,
        help="Which products (with an internal reference) are sent to Odyssee as articles. "
        "The domain may use request_product_ids (products of the work imported on this "
        "backend's requests) and category_ids (the categories above).",
    )
    sync_requested_by_ids = fields.Many2many(
        "res.users",
        REQUESTERS_TABLE,
        "backend_id",
        "user_id",
        string="Sync requested by",
        readonly=True,
        copy=False,
        groups="construction_asset_sync.group_integration_admin",
        help="Who pressed Sync now since the last synchronisation ended: each gets a "
        "notification of what it did.",
    )
    max_attempts = fields.Integer(
        string="Attempts before setting aside",
        default=3,
        help="A record that fails is tried again on this many runs, then left for a person "
        "(streams: Needs attention); the stream goes on without it.",
    )
    job_status_ids = fields.One2many(
        "construction.odyssee.job.status", "backend_id", string="Odyssee job statuses"
    )
    job_statuses_read_at = fields.Datetime(readonly=True)
    stream_ids = fields.One2many("construction.odyssee.stream", "backend_id", string="Streams")
    attention_ids = fields.One2many(
        "construction.odyssee.attention", "backend_id", string="Set aside"
    )
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
            for kind in ("jobs", "approvals", "pdfs", "push"):
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
            before_request=self.env.context.get("odyssee_give_way"),
        )

    def _write_call_log(self, call_log):
        """Store the calls of ``call_log`` in the exchange log and empty it."""
        records, call_log[:] = list(call_log), []
        if records:
            create_records(  # one INSERT: a run logs thousands of calls
                self.env["construction.odyssee.call.log"].sudo(),
                [
                    {
                        "backend_id": self.id,
                        # given, as computed: otherwise written a second time
                        "company_id": self.company_id.id,
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
                ],
            )

    def action_test_connection(self):
        """One cheap call, without retries; says which failure it met, if any.

        The call stays in the log either way.
        """
        self.ensure_one()
        call_log = []
        client = self._client(call_log)
        client.max_retries = 0  # what happens now, not after a minute of backoff
        try:
            client.get("JobType", query="$top=1")
        except odyssee_client.OdysseeError as exc:
            message, kind = self._connection_failure(exc), "danger"
        else:
            message, kind = self.env._("Connected to Odyssee."), "success"
        self._write_call_log(call_log)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": kind, "message": message, "sticky": kind == "danger"},
        }

    def _connection_failure(self, exc):
        """What a person should read about a failed connection test (no credential in it)."""
        client = odyssee_client
        url = self.url
        if isinstance(exc, client.OdysseeAuthError):
            return self.env._(
                "Odyssee answered but refused the credentials (HTTP %(status)s): check the "
                "domain, API user and password.",
                status=exc.status,
            )
        if isinstance(exc, client.OdysseeTLSError):
            return self.env._(
                "The secure connection to %(url)s failed (TLS): the certificate is invalid or "
                "the server does not speak HTTPS. %(error)s",
                url=url,
                error=exc,
            )
        if isinstance(exc, client.OdysseeTimeout):
            return self.env._(
                "%(url)s did not answer within %(timeout)s s (timeout): the server is "
                "overloaded or a firewall drops the connection.",
                url=url,
                timeout=self.timeout,
            )
        if isinstance(exc, client.OdysseeUnreachable):
            return self.env._(
                "%(url)s could not be reached: unknown host, or nothing listens there. "
                "Check the API URL. %(error)s",
                url=url,
                error=exc,
            )
        if isinstance(exc, client.OdysseeConnectionError):
            return self.env._(
                "The connection to %(url)s broke off before a complete answer: %(error)s",
                url=url,
                error=exc,
            )
        if isinstance(exc, client.OdysseeMoved):
            return self.env._(
                "%(url)s answered HTTP %(status)s: the Odyssee API has moved to %(location)s. "
                "Odoo does not follow redirects (the credentials would go to another host, "
                "and a write could be sent again as a read): if that address is your "
                "tenant's, set it as the API URL.",
                url=url,
                status=exc.status,
                location=exc.base_url or exc.location or self.env._("(no address given)"),
            )
        if isinstance(exc, client.OdysseeNotFound):
            return self.env._(
                "%(url)s answered 404: this is not the Odyssee API (check the URL and its /api "
                "suffix).",
                url=url,
            )
        return self.env._("Odyssee answered with an error: %(error)s", error=exc)

    def _products_to_push(self):
        """The products sent as articles: ``product_domain``, with an internal reference."""
        self.ensure_one()
        Line = self.env["construction.odyssee.usage.line"].sudo()
        groups = Line._read_group(
            [("backend_id", "=", self.id), ("product_id", "!=", False)], ["product_id"]
        )
        used = [product.id for (product,) in groups]
        domain = safe_eval(
            self.product_domain or "[]",
            {"request_product_ids": used, "category_ids": self.product_category_ids.ids},
        )
        return (
            self.env["product.product"]
            .sudo()
            .search(
                expression.AND(
                    [
                        [
                            ("default_code", "!=", False),
                            ("company_id", "in", [self.company_id.id, False]),
                        ],
                        domain,
                    ]
                )
            )
        )

    def action_refresh_job_statuses(self):
        """Read Odyssee's job status catalogue again (new statuses get the default stage)."""
        self.ensure_one()
        call_log = []
        adapter = OdysseeAdapter(self._client(call_log), self.page_size)
        try:
            self.env["construction.odyssee.job.status"]._refresh(self, adapter)
        finally:
            self._write_call_log(call_log)
        return True

    def action_sync_now(self):
        """Start the sync now, in the scheduled action, and tell who asked what it did.

        The sync does not run in this request: an import of a backlog would
        hold its HTTP worker (with two workers, half of what telematics receipt
        can accept) for as long as it runs, at a priority that makes it slow on
        a busy machine. The scheduled action is triggered at once, and when the
        sync ends the user gets a notification of what it did or why it failed.
        """
        self.ensure_one()
        if not (
            self.env.su
            or self.env.user.has_group("construction_asset_sync.group_integration_admin")
        ):
            raise AccessError(self.env._("Only integration administrators synchronise Odyssee."))
        # Not a write of the backend: a sync that ends meanwhile updates the same
        # row, and one of the two transactions would fail to serialize.
        self.env.cr.execute(
            f"""INSERT INTO {REQUESTERS_TABLE} (backend_id, user_id) VALUES (%s, %s)
                ON CONFLICT DO NOTHING""",
            [self.id, self.env.uid],
        )
        self.invalidate_recordset(["sync_requested_by_ids"])
        self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()
        if self._sync_running():
            message = self.env._(
                "A synchronisation of this backend is already running; you will be "
                "notified when it ends."
            )
        else:
            message = self.env._(
                "The synchronisation runs in the background; you will be notified of what "
                "it did."
            )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": "info", "message": message},
        }

    def _sync_running(self):
        """Whether another transaction holds this backend's sync lock."""
        if not self._sync_lock():
            return True
        self._sync_unlock()
        return False

    def _notify_sync_requesters(self, done):
        """Tell who pressed Sync now what the sync that just ended did, each in
        their language (archived users too: OdooBot, whose scripts press it, is one)."""
        self.env.cr.execute(
            f"DELETE FROM {REQUESTERS_TABLE} WHERE backend_id = %s RETURNING user_id", [self.id]
        )
        user_ids = [user_id for (user_id,) in self.env.cr.fetchall()]
        self.invalidate_recordset(["sync_requested_by_ids"])
        for user in self.env["res.users"].sudo().browse(user_ids).exists():
            backend = self.with_context(lang=user.lang)
            user._bus_send("simple_notification", dict(backend._sync_report(done), title=self.name))

    def _sync_report(self, done):
        if done == "error":  # raised beyond the streams, which record their own failures
            return {
                "type": "danger",
                "sticky": True,
                "message": self.env._(
                    "The synchronisation failed in Odoo; the server log says why."
                ),
            }
        streams = self.stream_ids
        failed = streams.filtered(lambda s: s.state == "error")
        kinds = dict(self.env["construction.odyssee.stream"]._fields["error_kind"].selection)
        if failed:
            stream = failed[0]
            reason = {
                "unreachable": self.env._("Odyssee could not be reached"),
                "auth": self.env._("Odyssee refused the credentials"),
            }.get(stream.error_kind, kinds.get(stream.error_kind, ""))
            return {
                "type": "danger",
                "sticky": True,
                "message": self.env._(
                    "%(reason)s (%(streams)s): %(error)s",
                    reason=reason,
                    streams=", ".join(
                        failed.mapped(lambda s: dict(s._fields["kind"].selection)[s.kind])
                    ),
                    error=(stream.last_error or "")[:300],
                ),
            }
        by_kind = {stream.kind: stream for stream in streams}
        parts = [
            self.env._("%(n)s request(s) sent", n=by_kind["push"].last_count),
            self.env._("%(n)s job(s) new or moved in Odyssee", n=by_kind["jobs"].last_count),
            self.env._(
                "%(n)s new approval(s), %(m)s re-read",
                n=by_kind["approvals"].last_count,
                m=by_kind["approvals"].last_reread_count,
            ),
            self.env._(
                "%(n)s PDF(s) attached, %(w)s waiting",
                n=by_kind["pdfs"].last_count,
                w=by_kind["pdfs"].waiting_count,
            ),
        ]
        attention = streams.filtered(lambda s: s.state == "attention")
        if attention:
            parts.append(
                self.env._("%(n)s record(s) set aside", n=sum(attention.mapped("failed_count")))
            )
        return {
            "type": "warning" if attention else "success",
            "message": self.env._("Synchronised: %(what)s.", what="; ".join(parts)),
        }

    @api.model
    def _cron_sync(self, time_budget=50.0):
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget
        unfinished = False
        for backend in self.search([]):
            try:
                done = backend._sync(auto_commit=auto_commit, deadline=deadline)
            except Exception:
                _logger.exception("Odyssee sync of backend %s failed", backend.name)
                if auto_commit:
                    self.env.cr.rollback()
                done = "error"
            unfinished |= done is None
            if done is not None and done != "busy":
                # A backlog goes on in the next run: only its end is reported.
                try:
                    backend._notify_sync_requesters(done)
                    if auto_commit:
                        self.env.cr.commit()
                except Exception:
                    _logger.exception("Odyssee sync of %s: could not notify", backend.name)
                    if auto_commit:
                        self.env.cr.rollback()
        if unfinished:
            # A long backlog continues in the next run, right away.
            self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()

    def _sync(self, auto_commit=False, deadline=None):
        """Push pending work, then pull jobs, approvals and PDFs; each stream records its outcome.

        Returns None when the deadline cut a pull short, "busy" when
        another worker is synchronising this backend (a session lock, kept
        across the page commits, lets only one run at a time).
        """
        self.ensure_one()
        # Telematics receipt must answer in milliseconds while an import works
        # through thousands of approvals: the sync yields the CPU to it.
        niceness = self.env["res.config.settings"]._construction_setting("odyssee_sync_niceness")
        registry = self.env.registry
        invalidated = {}

        def sync():
            try:
                return self._sync_at_current_priority(auto_commit, deadline)
            finally:
                invalidated["registry"] = registry.registry_invalidated
                invalidated["caches"] = set(registry.cache_invalidated)

        try:
            return cpu_priority.run_at_lower_priority(sync, niceness)
        finally:
            # Odoo records per thread which caches a transaction cleared, and the
            # request or job signals them to the other workers from its own thread.
            registry.registry_invalidated |= invalidated.get("registry", False)
            registry.cache_invalidated.update(invalidated.get("caches", ()))

    def _sync_at_current_priority(self, auto_commit, deadline):
        # Asked before the lock: a query failing between the lock and the try
        # below would keep the backend's lock on the pooled connection.
        dbname, writer_pid, name = self.env.cr.dbname, self._connection_pid(), self.name
        if not self._sync_lock():
            return "busy"
        # Telematics comes first: while its events wait, the sync pauses before
        # its remote calls (cpu_priority.GiveWay's bounds), but only between its
        # transactions' writes. The reading threads of a page call too: what
        # they ask goes through a connection of its own (telematics_waiting).
        give_way = cpu_priority.GiveWay(lambda: telematics_waiting(dbname, writer_pid))
        self = self.with_context(odyssee_give_way=give_way)
        try:
            self._ensure_streams()  # a backend made before a stream kind existed gets it
            self._stream("push")._run(auto_commit=auto_commit)
            approvals, done = self._stream("approvals"), True
            # Approvals wait while the jobs pull works through a backlog, so that
            # their jobs are bound already and read once, by the jobs pull; while
            # the approvals work through theirs, jobs are not polled (the few
            # jobs not bound yet come with their approvals).
            if not approvals.resume_after_id:
                done = self._stream("jobs")._run(auto_commit=auto_commit, deadline=deadline)
            if done is not None:
                done = approvals._run(auto_commit=auto_commit, deadline=deadline)
            pdfs = self._stream("pdfs").with_context(odyssee_approvals_behind=done is None)
            pdfs._run(auto_commit=auto_commit)
        finally:
            self._sync_unlock()
            if give_way.paused:
                _logger.info(
                    "Odyssee sync of %s paused %.1f s for telematics processing",
                    name,
                    give_way.paused,
                )
        return done

    def _connection_pid(self):
        """The PostgreSQL backend of this transaction's connection (its cursor keeps it)."""
        self.env.cr.execute("SELECT pg_backend_pid()")
        return self.env.cr.fetchone()[0]

    def _sync_lock(self):
        """Take the session lock of this backend's sync; False when another holds it."""
        self.env.cr.execute("SELECT pg_try_advisory_lock(%s, %s)", [SYNC_LOCK, self.id])
        return self.env.cr.fetchone()[0]

    def _sync_unlock(self):
        """Release the session lock of the sync, even from an aborted transaction:
        kept by the pooled connection, it would make the backend busy for good."""
        try:
            self.env.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [SYNC_LOCK, self.id])
        except psycopg2.errors.InFailedSqlTransaction:
            self.env.cr.rollback()
            self.env.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [SYNC_LOCK, self.id])

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
