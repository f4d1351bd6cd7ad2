import hashlib
import json

from odoo import api, fields, models


class ConstructionOdysseeSyncState(models.Model):
    """The Odyssee GUID of an Odoo record and a fingerprint of what was last sent.

    Pushing compares the fingerprint of the synced fields and skips the call when
    nothing synced changed (Odyssee's ERP guide advises exactly this).
    """

    _name = "construction.odyssee.sync.state"
    _description = "Odyssee sync state"

    backend_id = fields.Many2one(
        "construction.odyssee.backend", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="backend_id.company_id", store=True)
    res_model = fields.Char(required=True)
    res_id = fields.Integer(required=True)
    controller = fields.Char(required=True)
    odyssee_guid = fields.Char(required=True)
    fingerprint = fields.Char()
    synced_at = fields.Datetime()

    _sql_constraints = [
        ("record_uniq", "unique(backend_id, res_model, res_id)", "One sync state per record."),
    ]

    @api.model
    def _fingerprint(self, values):
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()

    @api.model
    def _get(self, backend, record):
        return self.search(
            [
                ("backend_id", "=", backend.id),
                ("res_model", "=", record._name),
                ("res_id", "=", record.id),
            ],
            limit=1,
        )
