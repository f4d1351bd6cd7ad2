from odoo import fields, models

NO_DATE = "1980-01-01T00:00:00.000Z"


class ConstructionOdysseeStream(models.Model):
    """Where one flow with Odyssee stands: its watermark and last outcome."""

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
    state = fields.Selection([("ok", "OK"), ("error", "Error")], default="ok")
    last_run_at = fields.Datetime()
    last_success_at = fields.Datetime()
    last_error = fields.Text()
    last_count = fields.Integer(string="Rows last run")
    total_count = fields.Integer(string="Rows in total")
    last_calls = fields.Integer(string="API calls last run")

    _sql_constraints = [
        ("backend_kind_uniq", "unique(backend_id, kind)", "One stream of each kind per backend."),
    ]

    def _record_success(self, count, calls):
        self.write(
            {
                "state": "ok",
                "last_error": False,
                "last_run_at": fields.Datetime.now(),
                "last_success_at": fields.Datetime.now(),
                "last_count": count,
                "total_count": self.total_count + count,
                "last_calls": calls,
            }
        )

    def _record_failure(self, error, calls):
        self.write(
            {
                "state": "error",
                "last_error": error,
                "last_run_at": fields.Datetime.now(),
                "last_calls": calls,
            }
        )
