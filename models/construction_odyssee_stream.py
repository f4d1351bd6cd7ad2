import logging

from odoo import fields, models

from ..protocols import odyssee_client
from ..state_machine import ODYSSEE_STREAM

_logger = logging.getLogger(__name__)
NO_DATE = "1980-01-01T00:00:00.000Z"


class ConstructionOdysseeStream(models.Model):
    """One flow with Odyssee, run on its own: its watermark, state and last outcome."""

    _name = "construction.odyssee.stream"
    _description = "Odyssee sync stream"
    _order = "backend_id, kind"

    backend_id = fields.Many2one("construction.odyssee.backend", required=True, ondelete="cascade")
    company_id = fields.Many2one(related="backend_id.company_id", store=True)
    kind = fields.Selection(
        [("approvals", "Job approvals in"), ("pdfs", "Approval PDFs in"), ("push", "Work out")],
        required=True,
    )
    # Odyssee stamps rows with milliseconds; an Odoo Datetime keeps seconds only.
    watermark = fields.Char(default=NO_DATE, help="Highest modified_dateutc fully imported.")
    state = fields.Selection([("ok", "OK"), ("error", "Error")], default="ok", readonly=True)
    last_run_at = fields.Datetime()
    last_success_at = fields.Datetime()
    last_error = fields.Text()
    last_count = fields.Integer(string="Rows last run")
    total_count = fields.Integer(string="Rows in total")
    last_calls = fields.Integer(string="API calls last run")

    _sql_constraints = [
        ("backend_kind_uniq", "unique(backend_id, kind)", "One stream of each kind per backend."),
    ]

    def _runner(self):
        """The method that moves this stream's data: ``(stream, client, call_log, …)``."""
        return {
            "approvals": self.env["construction.odyssee.importer"]._pull_approvals,
            "pdfs": self.env["construction.odyssee.importer"]._pull_pdfs,
            "push": self.env["construction.odyssee.exporter"]._push_pending,
        }[self.kind]

    def _run(self, auto_commit=False, deadline=None):
        """Run the stream once and record how it ended.

        Returns True when done, False on failure, None when ``deadline``
        (monotonic seconds) cut the run short.
        """
        self.ensure_one()
        backend = self.backend_id
        call_log = []
        client = backend._client(call_log)
        try:
            count, finished = self._runner()(
                self, client, call_log, auto_commit=auto_commit, deadline=deadline
            )
        except odyssee_client.OdysseeError as exc:
            backend._write_call_log(call_log)
            self._set_state("error", calls=client.calls, error=f"{exc} {exc.body or ''}".strip())
            _logger.warning("Odyssee %s stream of %s failed: %s", self.kind, backend.name, exc)
            return False
        backend._write_call_log(call_log)
        self._set_state("ok", count=count, calls=client.calls)
        return True if finished else None

    def _set_state(self, state, count=0, calls=0, error=False):
        """The one way a stream's state changes, with what the run did."""
        ODYSSEE_STREAM.check([(stream.state, state) for stream in self])
        now = fields.Datetime.now()
        for stream in self:
            values = {"state": state, "last_run_at": now, "last_calls": calls, "last_error": error}
            if state == "ok":
                values.update(
                    last_success_at=now, last_count=count, total_count=stream.total_count + count
                )
            stream.write(values)
