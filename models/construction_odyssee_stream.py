import logging

from odoo import api, fields, models

from ..protocols import odyssee_client
from ..state_machine import ODYSSEE_STREAM

_logger = logging.getLogger(__name__)
NO_DATE = "1980-01-01T00:00:00.000Z"
ERROR_KINDS = [
    ("unreachable", "Odyssee unreachable"),
    ("auth", "Credentials refused"),
    ("refused", "Refused by Odyssee"),
    ("internal", "Error in Odoo"),
]


def error_kind(exc):
    """Which of ``ERROR_KINDS`` an exception of a run is."""
    if isinstance(exc, odyssee_client.OdysseeAuthError):
        return "auth"
    if isinstance(exc, odyssee_client.OdysseeConnectionError | odyssee_client.OdysseeMoved):
        return "unreachable"  # a moved tenant: the configured URL no longer reaches it
    if isinstance(exc, odyssee_client.OdysseeHTTPError) and (exc.status or 0) in (
        odyssee_client.RETRYABLE_STATUSES
    ):
        return "unreachable"
    if isinstance(exc, odyssee_client.OdysseeError):
        return "refused"
    return "internal"


def record_error(exc):
    """Whether Odyssee's answer may be about the records asked for rather than the service.

    A 4xx on a query or a 500 on one record can come back every time for the
    same rows; unreachable, moved, throttled, unavailable or refused credentials
    never say anything about a row.
    """
    return (
        isinstance(exc, odyssee_client.OdysseeHTTPError)
        and not isinstance(exc, odyssee_client.OdysseeAuthError | odyssee_client.OdysseeMoved)
        and (exc.status or 0) not in (429, 502, 503, 504)
    )


def describe(exc):
    if isinstance(exc, odyssee_client.OdysseeError):
        return f"{exc} {exc.body or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


class ConstructionOdysseeStream(models.Model):
    """One flow with Odyssee, run on its own: its watermark, state and last outcome."""

    _name = "construction.odyssee.stream"
    _description = "Odyssee sync stream"
    _order = "backend_id, kind"

    backend_id = fields.Many2one("construction.odyssee.backend", required=True, ondelete="cascade")
    company_id = fields.Many2one(related="backend_id.company_id", store=True)
    kind = fields.Selection(
        [
            ("jobs", "Job statuses in"),
            ("approvals", "Job approvals in"),
            ("pdfs", "Approval PDFs in"),
            ("push", "Work out"),
        ],
        required=True,
    )
    # Odyssee stamps rows with milliseconds; an Odoo Datetime keeps seconds only.
    watermark = fields.Char(default=NO_DATE, help="Highest modified_dateutc fully imported.")
    watermark_at = fields.Datetime(
        string="Imported up to", compute="_compute_watermark_at", help="The watermark, readable."
    )
    resume_after_id = fields.Char(
        readonly=True,
        help="Set when a run was cut short: the id of the last row it imported, at the "
        "watermark; the next run goes on right after it instead of re-reading.",
    )
    state = fields.Selection(
        [("ok", "OK"), ("attention", "Needs attention"), ("error", "Error")],
        default="ok",
        readonly=True,
    )
    failed_runs = fields.Integer(
        string="Failed runs in a row",
        readonly=True,
        help="After as many as the backend's attempts, an error Odyssee answers for a page "
        "sets its rows aside one by one instead of stopping the stream.",
    )
    last_run_at = fields.Datetime()
    last_success_at = fields.Datetime()
    last_error = fields.Text()
    error_kind = fields.Selection(ERROR_KINDS, readonly=True)
    last_count = fields.Integer(string="New rows last run")
    last_reread_count = fields.Integer(
        string="Re-read rows last run",
        help="Rows read again (overlap window, PDFs already attached): nothing new in them.",
    )
    total_count = fields.Integer(string="New rows in total")
    last_calls = fields.Integer(string="API calls last run")
    attention_ids = fields.One2many("construction.odyssee.attention", "stream_id")
    waiting_count = fields.Integer(
        compute="_compute_attention_counts", help="PDFs whose approval is not imported yet."
    )
    failed_count = fields.Integer(
        compute="_compute_attention_counts", help="Records set aside after failing."
    )

    _sql_constraints = [
        ("backend_kind_uniq", "unique(backend_id, kind)", "One stream of each kind per backend."),
    ]

    @api.depends("attention_ids.kind")
    def _compute_attention_counts(self):
        for stream in self:
            kinds = stream.attention_ids.mapped("kind")
            stream.waiting_count = kinds.count("waiting_pdf")
            stream.failed_count = kinds.count("failed")

    @api.depends("watermark")
    def _compute_watermark_at(self):
        for stream in self:
            stamp = (stream.watermark or "")[:19].replace("T", " ")
            try:
                at = fields.Datetime.to_datetime(stamp) if stamp else False
            except ValueError:
                at = False
            stream.watermark_at = at if at and at.year > 1980 else False

    def _runner(self):
        """The method that moves this stream's data: ``(stream, client, call_log, …)``."""
        return {
            "jobs": self.env["construction.odyssee.importer"]._pull_changed,
            "approvals": self.env["construction.odyssee.importer"]._pull_changed,
            "pdfs": self.env["construction.odyssee.importer"]._pull_pdfs,
            "push": self.env["construction.odyssee.exporter"]._push_pending,
        }[self.kind]

    def _run(self, auto_commit=False, deadline=None):
        """Run the stream once and record how it ended.

        Returns True when done, False on failure, None when ``deadline``
        (monotonic seconds) cut the run short. Any exception is recorded on the
        stream (what failed and, when known, the record at fault); it never
        reaches the caller, so the other streams and backends go on.
        """
        self.ensure_one()
        backend = self.backend_id
        call_log = []
        client = None
        try:
            client = backend._client(call_log)
            counts, finished = self._runner()(
                self, client, call_log, auto_commit=auto_commit, deadline=deadline
            )
        except Exception as exc:
            if auto_commit:
                self.env.cr.rollback()
            backend._write_call_log(call_log)
            self._set_state(
                "error",
                calls=client.calls if client else 0,
                error=describe(exc),
                error_kind=error_kind(exc),
            )
            if auto_commit:
                self.env.cr.commit()
            log = (
                _logger.warning
                if isinstance(exc, odyssee_client.OdysseeError)
                else _logger.exception
            )
            log("Odyssee %s stream of %s failed: %s", self.kind, backend.name, exc)
            return False
        backend._write_call_log(call_log)
        if isinstance(counts, int):
            counts = {"new": counts}
        self._set_state(
            "attention" if self.failed_count else "ok",
            count=counts.get("new", 0),
            reread=counts.get("reread", 0),
            calls=client.calls,
            error=counts.get("error") or False,
        )
        return True if finished else None

    def _set_state(self, state, count=0, calls=0, error=False, reread=0, error_kind=False):
        """The one way a stream's state changes, with what the run did."""
        ODYSSEE_STREAM.check([(stream.state, state) for stream in self])
        # Only a stream that is or was not OK concerns the integration health.
        concerned = self.filtered(lambda stream: stream.state != "ok" or state != "ok")
        now = fields.Datetime.now()
        for stream in self:
            values = {
                "state": state,
                "last_run_at": now,
                "last_calls": calls,
                "last_error": error,
                "error_kind": error_kind,
            }
            if state == "error":
                values["failed_runs"] = stream.failed_runs + 1
            else:
                values.update(
                    failed_runs=0,
                    last_success_at=now,
                    last_count=count,
                    last_reread_count=reread,
                    total_count=stream.total_count + count,
                )
            stream.write(values)
        # A failure (or a recovery) reaches the integration administrators now.
        if concerned:
            self.env["construction.integration.health"]._stream_state_changed(concerned)

    def _set_aside_items(self, kind, external_ids=None):
        """This stream's set-aside items of ``kind`` (of ``external_ids`` only, if given)."""
        self.ensure_one()
        domain = [("stream_id", "=", self.id), ("kind", "=", kind)]
        if external_ids is not None:
            domain.append(("external_id", "in", list(external_ids)))
        return self.env["construction.odyssee.attention"].sudo().search(domain)

    def _parked(self):
        """Items that failed ``max_attempts`` times: they wait for a person."""
        return self._set_aside_items("failed").filtered(
            lambda item: item.attempts >= self.backend_id.max_attempts
        )

    def _kind_label(self):
        return dict(self._fields["kind"]._description_selection(self.env))[self.kind]

    def _row_label(self):
        return {"jobs": self.env._("Job"), "approvals": self.env._("Approval")}.get(
            self.kind, self.env._("Row")
        )

    def _set_aside(self, kind, external_id, **values):
        """Record (or count again) an item this stream set aside; returns it."""
        self.ensure_one()
        Attention = self.env["construction.odyssee.attention"].sudo()
        item = Attention.search(
            [("stream_id", "=", self.id), ("kind", "=", kind), ("external_id", "=", external_id)],
            limit=1,
        )
        if item:
            item.write(dict(values, attempts=item.attempts + 1))
            return item
        return Attention.create(dict(values, stream_id=self.id, kind=kind, external_id=external_id))
