from odoo import api, fields, models
from psycopg2.extras import Json

KEY_LIFETIME_DAYS = 7


class ConstructionTelematicsIdempotency(models.Model):
    """Answers already given to an ``Idempotency-Key``, so a resend gets the same answer."""

    _name = "construction.telematics.idempotency"
    _description = "Telematics idempotency key"
    _order = "id desc"
    _rec_name = "key"

    source_id = fields.Many2one(
        "construction.telematics.source", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="source_id.company_id", store=True)
    key = fields.Char(required=True)
    body_sha256 = fields.Char(required=True)
    status = fields.Integer(required=True)
    response = fields.Json(required=True)

    _sql_constraints = [
        ("source_key_uniq", "unique(source_id, key)", "This idempotency key was already used."),
    ]

    @api.model
    def _find(self, source, key):
        return self.search([("source_id", "=", source.id), ("key", "=", key)], limit=1)

    @api.model
    def _remember(self, source, key, body_sha256, status, response):
        # Plain SQL (ON CONFLICT): check what the ORM would have.
        self.check_access("create")
        self.env.cr.execute(
            """INSERT INTO construction_telematics_idempotency
                   (source_id, company_id, key, body_sha256, status, response,
                    create_uid, write_uid, create_date, write_date)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
                       now() at time zone 'UTC', now() at time zone 'UTC')
               ON CONFLICT (source_id, key) DO NOTHING""",
            [
                source.id,
                source.company_id.id,
                key,
                body_sha256,
                status,
                Json(response),
                self.env.uid,
                self.env.uid,
            ],
        )

    @api.model
    def _purge_expired(self):
        self.env.cr.execute(
            """DELETE FROM construction_telematics_idempotency
               WHERE create_date < (now() at time zone 'UTC') - %s * interval '1 day'""",
            [KEY_LIFETIME_DAYS],
        )
