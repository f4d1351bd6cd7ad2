import math
import time

from odoo import Command, api, fields, models
from odoo.exceptions import UserError

from ..protocols import telematics_auth

ATTENTION_STATES = ("unmapped", "dead", "rejected")
INGESTION_USER = "construction_asset_sync.user_telematics_ingestion"
PAYLOAD_FORMATS = [
    ("canonical", "Canonical JSON (alerts and readings)"),
    ("iso15143_3", "ISO 15143-3 fleet snapshot (JSON)"),
]


class ConstructionTelematicsSource(models.Model):
    """One sender of telematics: a machine gateway, a vendor cloud, a bridge."""

    _name = "construction.telematics.source"
    _description = "Telematics source"
    _inherit = ["mail.thread"]
    _order = "name"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True, tracking=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    payload_format = fields.Selection(
        PAYLOAD_FORMATS, required=True, default="canonical", tracking=True
    )
    external_system_id = fields.Many2one(
        "construction.external.system",
        string="External system",
        required=True,
        ondelete="restrict",
        check_company=True,
        domain="[('kind', '=', 'telematics')]",
        help="Whose device IDs this source sends; machines are mapped to them there.",
    )
    api_key_prefix = fields.Char(
        string="Key prefix",
        readonly=True,
        copy=False,
        index=True,
        help="First part of the API key, to recognise it; the key itself is never stored.",
    )
    api_key_hash = fields.Char(
        string="API key hash (SHA-256)",
        readonly=True,
        copy=False,
        groups="construction_asset_sync.group_integration_admin",
    )
    api_key_created_at = fields.Datetime(readonly=True, copy=False)
    hmac_secret = fields.Char(
        string="Signing secret",
        copy=False,
        groups="construction_asset_sync.group_integration_admin",
        help="When set, every request must be signed with HMAC-SHA256 "
        "(X-Telematics-Timestamp and X-Telematics-Signature headers).",
    )
    hmac_secret_next = fields.Char(
        string="Next signing secret",
        copy=False,
        groups="construction_asset_sync.group_integration_admin",
        help="A second secret accepted at the same time, so a sender can rotate without "
        "downtime: set it here, switch the sender, then promote it.",
    )
    requires_signature = fields.Boolean(compute="_compute_requires_signature", store=True)
    rate_limit = fields.Integer(
        string="Rate limit (requests/min)",
        default=0,
        tracking=True,
        help="Requests per minute this source may send, in bursts of up to as many; "
        "beyond that it is answered 429 with Retry-After. 0 means unlimited.",
    )
    event_ids = fields.One2many("construction.telematics.event", "source_id", string="Events")
    event_count = fields.Integer(compute="_compute_event_stats")
    attention_event_count = fields.Integer(
        compute="_compute_event_stats", string="Events needing attention"
    )
    last_received_at = fields.Datetime(compute="_compute_event_stats")

    _sql_constraints = [
        ("api_key_prefix_uniq", "unique(api_key_prefix)", "API key prefixes must be unique."),
        ("rate_limit_positive", "CHECK(rate_limit >= 0)", "The rate limit cannot be negative."),
    ]

    def init(self):
        # One token bucket per source, shared by every Odoo worker: a plain table
        # updated by one UPSERT per request, outside the request's transaction.
        self.env.cr.execute(
            """CREATE TABLE IF NOT EXISTS construction_telematics_rate_bucket (
                   source_id integer PRIMARY KEY
                       REFERENCES construction_telematics_source (id) ON DELETE CASCADE,
                   tokens double precision NOT NULL,
                   allowed boolean NOT NULL,
                   updated_at timestamp NOT NULL
               )"""
        )

    @api.depends("hmac_secret", "hmac_secret_next")
    def _compute_requires_signature(self):
        for source in self.sudo():
            source.requires_signature = bool(source.hmac_secret or source.hmac_secret_next)

    def _compute_event_stats(self):
        Event = self.env["construction.telematics.event"].with_context(active_test=False)
        stats = {source: [0, 0, False] for source in self}  # total, attention, last received
        for source, state, count, last in Event._read_group(
            [("source_id", "in", self.ids)], ["source_id", "state"], ["__count", "received_at:max"]
        ):
            total = stats[source]
            total[0] += count
            total[1] += count if state in ATTENTION_STATES else 0
            total[2] = max(filter(None, [total[2], last]), default=False)
        for source in self:
            source.event_count, source.attention_event_count, source.last_received_at = stats[
                source
            ]

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if not vals.get("external_system_id"):
                company_id = vals.get("company_id") or self.env.company.id
                system = self.env["construction.external.system"].create(
                    {
                        "name": vals.get("name") or self.env._("Telematics"),
                        "kind": "telematics",
                        "code": self._unique_system_code(vals.get("name"), company_id),
                        "company_id": company_id,
                    }
                )
                vals["external_system_id"] = system.id
        return super().create(vals_list)

    def _unique_system_code(self, name, company_id):
        base = "-".join((name or "telematics").lower().split())[:40] or "telematics"
        code, counter = base, 1
        Systems = self.env["construction.external.system"].with_context(active_test=False)
        while Systems.search_count([("code", "=", code), ("company_id", "=", company_id)]):
            counter += 1
            code = f"{base}-{counter}"
        return code

    def action_generate_api_key(self):
        """Create a new key, replacing the old one, and show it once."""
        self.ensure_one()
        if not self.env.user.has_group("construction_asset_sync.group_integration_admin"):
            raise UserError(self.env._("Only integration administrators can issue API keys."))
        key = self._issue_api_key()
        wizard = self.env["construction.telematics.key.wizard"].create(
            {"source_id": self.id, "api_key": key}
        )
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("API key of %(name)s", name=self.display_name),
            "res_model": wizard._name,
            "res_id": wizard.id,
            "view_mode": "form",
            "target": "new",
        }

    def _issue_api_key(self):
        """Replace the source's key; returns the new key, which is not stored anywhere."""
        self.ensure_one()
        key, prefix, key_hash = telematics_auth.generate_api_key()
        self.sudo().write(
            {
                "api_key_prefix": prefix,
                "api_key_hash": key_hash,
                "api_key_created_at": fields.Datetime.now(),
            }
        )
        self.message_post(
            body=self.env._("New API key issued (prefix %(prefix)s).", prefix=prefix),
            subtype_xmlid="mail.mt_note",
        )
        return key

    def action_promote_next_secret(self):
        for source in self.sudo():
            if not source.hmac_secret_next:
                raise UserError(self.env._("%(name)s has no next secret.", name=source.name))
            source.write({"hmac_secret": source.hmac_secret_next, "hmac_secret_next": False})

    def action_open_events(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_telematics_event_action"
        )
        action["domain"] = [("source_id", "=", self.id)]
        action["context"] = {}
        return action

    @api.model
    def _authenticate(self, api_key):
        """The active source owning ``api_key``, else an empty recordset."""
        prefix = telematics_auth.key_prefix(api_key or "")
        if not prefix:
            return self.browse()
        source = self.sudo().search([("api_key_prefix", "=", prefix)], limit=1)
        if source and telematics_auth.key_matches(api_key, source.api_key_hash):
            return source
        return self.browse()

    def _as_ingestion_user(self):
        """This source as the technical ingestion user, in the source's company only.

        The user may only read sources and write ledger rows and idempotency keys
        (``group_telematics_ingestion``); it is given the source's company the
        first time that company's source sends.
        """
        self.ensure_one()
        user = self.env.ref(INGESTION_USER).sudo()
        company = self.sudo().company_id
        if company not in user.company_ids:
            user.write({"company_ids": [Command.link(company.id)]})
        return self.with_user(user).with_company(company)

    def _rate_limit_wait(self):
        """Seconds this source must wait before its next request, 0 when it may send now.

        A token bucket of ``rate_limit`` tokens refilled at ``rate_limit`` per
        minute, kept in PostgreSQL so that every worker process shares it. The
        UPSERT runs in its own short transaction: the request's own (repeatable
        read, retried on conflicts) must neither hold the bucket's row lock
        while it works nor fail because another request of the source took a token.
        """
        self.ensure_one()
        rate = self.rate_limit
        if rate <= 0:
            return 0
        per_second = rate / 60.0
        refill = (
            "LEAST(%(capacity)s, b.tokens"
            " + %(per_second)s * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at))"
        )
        registry = self.env.registry
        with registry.cursor() as cr:
            if not registry.in_test_mode():
                cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                # Losing the last bucket updates in a crash is harmless.
                cr.execute("SET LOCAL synchronous_commit TO OFF")
            cr.execute(
                f"""INSERT INTO construction_telematics_rate_bucket AS b
                        (source_id, tokens, allowed, updated_at)
                    VALUES (%(source)s, %(capacity)s - 1, true, clock_timestamp())
                    ON CONFLICT (source_id) DO UPDATE SET
                        tokens = CASE WHEN {refill} >= 1 THEN {refill} - 1 ELSE {refill} END,
                        allowed = {refill} >= 1,
                        updated_at = clock_timestamp()
                    RETURNING tokens, allowed""",
                {"source": self.id, "capacity": float(rate), "per_second": per_second},
            )
            tokens, allowed = cr.fetchone()
        if allowed:
            return 0
        return max(1, math.ceil((1 - tokens) / per_second))

    def _verify_signature(self, timestamp_header, signature_header, body):
        """Raise ``SignatureError`` unless the request is signed, when it must be."""
        self.ensure_one()
        source = self.sudo()
        if not source.requires_signature:
            return
        telematics_auth.verify_signature(
            [source.hmac_secret, source.hmac_secret_next],
            timestamp_header,
            signature_header,
            body,
            now=int(time.time()),
        )
