from odoo import api, fields, models

COMPLETED = "Completed"
CANCELED = {"CANCELED", "CANCELLED"}


class ConstructionOdysseeJobStatus(models.Model):
    """Odyssee's job status catalogue of one backend, read from the API, mapped to stages.

    The reference publishes the GUIDs of a few statuses only (Completed is not
    one of them): statuses are read with ``GET JobStatus`` and matched by their
    code or name; the GUIDs are bound in the binder. This table is the
    per-backend cache, refreshed when a job carries a status it does not know.
    """

    _name = "construction.odyssee.job.status"
    _description = "Odyssee job status"
    _order = "backend_id, name"

    backend_id = fields.Many2one(
        "construction.odyssee.backend", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="backend_id.company_id", store=True, index=True)
    code = fields.Char(readonly=True)
    name = fields.Char(required=True, readonly=True)
    stage_id = fields.Many2one(
        "maintenance.stage",
        string="Request stage",
        help="A request whose job reaches this status in Odyssee moves to this stage.",
    )
    is_completed = fields.Boolean(compute="_compute_is_completed", store=True)
    is_canceled = fields.Boolean(
        compute="_compute_is_completed",
        store=True,
        help="A job born in Odyssee with this status does not become a request.",
    )

    _sql_constraints = [
        ("backend_name_uniq", "unique(backend_id, name)", "One status of each name per backend.")
    ]

    @api.depends("code", "name")
    def _compute_is_completed(self):
        for status in self:
            code, name = (status.code or "").upper(), (status.name or "").strip().lower()
            status.is_completed = code == "COMPLETED" or name == COMPLETED.lower()
            status.is_canceled = code in CANCELED or name in {c.lower() for c in CANCELED}

    @api.model
    def _refresh(self, backend, adapter):
        """Read the catalogue (one call per 20 statuses) into ``backend``'s cache.

        New statuses are created with the default mapping (Completed -> the
        first *done* stage); a mapping someone set is kept.
        """
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        existing = {s.name: s for s in self.sudo().search([("backend_id", "=", backend.id)])}
        done_stage = self.env["maintenance.stage"].sudo().search([("done", "=", True)], limit=1)
        pairs = []
        for row in adapter.job_statuses():
            name = row.get("name") or row.get("code") or row["id"]
            status = existing.get(name)
            if status:
                if status.code != (row.get("code") or False):
                    status.code = row.get("code") or False
            else:
                status = existing[name] = self.sudo().create(
                    {"backend_id": backend.id, "code": row.get("code") or False, "name": name}
                )
                if status.is_completed:
                    status.stage_id = done_stage
            pairs.append((status, row["id"]))
        Binder._bind(system, pairs)
        backend.sudo().job_statuses_read_at = fields.Datetime.now()
