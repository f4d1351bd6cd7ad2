import math
import re
import time

from odoo import Command, api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..protocols import mqtt_consumer, mqtt_topics, telematics_auth

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

    # MQTT: read by the consumer process (``odoo-bin telematics_mqtt``).
    mqtt_enabled = fields.Boolean(
        string="Consume from MQTT",
        tracking=True,
        help="Consumers started with 'odoo-bin telematics_mqtt' subscribe to this source's "
        "topics on the broker below.",
    )
    mqtt_host = fields.Char(string="Broker host", default="127.0.0.1", tracking=True)
    mqtt_port = fields.Integer(string="Broker port", default=1883, tracking=True)
    mqtt_tls = fields.Boolean(
        string="TLS",
        tracking=True,
        help="Encrypt the connection and verify the broker's certificate and host name.",
    )
    mqtt_tls_ca = fields.Text(
        string="Broker CA certificate",
        help="PEM certificate(s) of the authority that signed the broker's certificate, for "
        "a private CA; empty: the system's CAs.",
    )
    mqtt_username = fields.Char(
        string="Broker user", groups="construction_asset_sync.group_integration_admin"
    )
    mqtt_password = fields.Char(
        string="Broker password",
        copy=False,
        groups="construction_asset_sync.group_integration_admin",
    )
    mqtt_topic_prefix = fields.Char(
        string="Topic prefix", default=mqtt_topics.DEFAULT_PREFIX, tracking=True
    )
    mqtt_source_code = fields.Char(
        string="Topic source code",
        copy=False,
        tracking=True,
        help="The <source> level of <prefix>/<source>/<device>/<kind>; made from the name "
        "when empty.",
    )
    mqtt_share_group = fields.Char(
        string="Shared subscription group",
        default=mqtt_topics.DEFAULT_SHARE_GROUP,
        tracking=True,
        help="Consumers in the same group split the data topics ($share/<group>/...); "
        "empty: every consumer receives every message.",
    )
    mqtt_session_expiry_hours = fields.Integer(
        string="Session kept for (hours)",
        default=168,
        help="How long the broker keeps a consumer's session and queues messages for it "
        "while it is away.",
    )
    mqtt_topic_filters = fields.Text(string="Subscriptions", compute="_compute_mqtt_topic_filters")
    mqtt_outage_notified = fields.Boolean(
        readonly=True, copy=False, help="Administrators were told that no consumer is connected."
    )
    mqtt_consumer_ids = fields.One2many(
        "construction.telematics.mqtt.consumer", "source_id", string="MQTT consumers"
    )
    mqtt_health = fields.Selection(
        [("off", "Not consumed"), ("connected", "Connected"), ("disconnected", "Disconnected")],
        string="MQTT consumer",
        compute="_compute_mqtt_health",
    )
    mqtt_last_message_at = fields.Datetime(
        string="Last MQTT message", compute="_compute_mqtt_health"
    )
    mqtt_waiting = fields.Integer(
        string="MQTT messages waiting",
        compute="_compute_mqtt_health",
        help="Received by the consumers and not yet committed to the ledger, plus MQTT "
        "events in the ledger not processed yet.",
    )

    _sql_constraints = [
        ("api_key_prefix_uniq", "unique(api_key_prefix)", "API key prefixes must be unique."),
        ("rate_limit_positive", "CHECK(rate_limit >= 0)", "The rate limit cannot be negative."),
        (
            "mqtt_topic_uniq",
            "unique(mqtt_topic_prefix, mqtt_source_code)",
            "Another source already uses this topic prefix and source code.",
        ),
        (
            "mqtt_port_range",
            "CHECK(mqtt_port IS NULL OR (mqtt_port > 0 AND mqtt_port < 65536))",
            "The broker port must be between 1 and 65535.",
        ),
    ]

    @api.constrains(
        "mqtt_enabled", "mqtt_host", "mqtt_topic_prefix", "mqtt_source_code", "mqtt_share_group"
    )
    def _check_mqtt_topics(self):
        for source in self:
            if source.mqtt_enabled and not (source.mqtt_host and source.mqtt_source_code):
                raise ValidationError(
                    self.env._(
                        "%(name)s: MQTT needs a broker host and a topic source code.",
                        name=source.name,
                    )
                )
            try:
                mqtt_topics.check_prefix(source.mqtt_topic_prefix)
                if source.mqtt_source_code:
                    mqtt_topics.check_level(source.mqtt_source_code, "the topic source code")
                if source.mqtt_share_group:
                    mqtt_topics.check_level(
                        source.mqtt_share_group, "the shared subscription group"
                    )
            except mqtt_topics.TopicError as exc:
                raise ValidationError(str(exc)) from None

    @api.constrains("mqtt_tls_ca")
    def _check_mqtt_tls_ca(self):
        for source in self.filtered("mqtt_tls_ca"):
            try:
                mqtt_consumer.tls_context(source.mqtt_tls_ca)
            except ValueError as exc:
                raise ValidationError(
                    self.env._(
                        "%(name)s: the broker CA certificate is not a PEM certificate (%(error)s).",
                        name=source.name,
                        error=exc,
                    )
                ) from None

    @api.depends("mqtt_topic_prefix", "mqtt_source_code", "mqtt_share_group")
    def _compute_mqtt_topic_filters(self):
        for source in self:
            try:
                source.mqtt_topic_filters = "\n".join(source._mqtt_subscriptions())
            except mqtt_topics.TopicError:
                source.mqtt_topic_filters = False

    def _mqtt_subscriptions(self):
        """The topic filters a consumer of this source subscribes to."""
        self.ensure_one()
        return [
            *mqtt_topics.data_filters(
                self.mqtt_topic_prefix, self.mqtt_source_code, self.mqtt_share_group or None
            ),
            mqtt_topics.status_filter(self.mqtt_topic_prefix, self.mqtt_source_code),
        ]

    def _compute_mqtt_health(self):
        Consumer = self.env["construction.telematics.mqtt.consumer"].sudo()
        queued = dict(
            self.env["construction.telematics.event"]
            .sudo()
            ._read_group(
                [
                    ("source_id", "in", self.ids),
                    ("channel", "=", "mqtt"),
                    ("state", "in", ("pending", "failed")),
                ],
                ["source_id"],
                ["__count"],
            )
        )
        for source in self:
            consumers = Consumer.search([("source_id", "=", source.id)])
            healthy = consumers.filtered(lambda consumer: consumer.connection_state == "connected")
            if healthy:
                source.mqtt_health = "connected"
            elif source.mqtt_enabled:
                source.mqtt_health = "disconnected"
            else:
                source.mqtt_health = "off"
            source.mqtt_last_message_at = max(
                filter(None, consumers.mapped("last_message_at")), default=False
            )
            source.mqtt_waiting = sum(healthy.mapped("waiting")) + queued.get(source, 0)

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
            if not vals.get("mqtt_source_code"):
                vals["mqtt_source_code"] = self._unique_topic_code(
                    vals.get("name"), vals.get("mqtt_topic_prefix") or mqtt_topics.DEFAULT_PREFIX
                )
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

    def _unique_topic_code(self, name, prefix):
        base = re.sub(r"[^a-z0-9-]+", "-", (name or "").lower()).strip("-")[:40] or "source"
        code, counter = base, 1
        Sources = self.sudo().with_context(active_test=False)
        while Sources.search_count(
            [("mqtt_topic_prefix", "=", prefix), ("mqtt_source_code", "=", code)]
        ):
            counter += 1
            code = f"{base}-{counter}"
        return code

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
        # One indexed query, not an ORM search: every telematics request starts here,
        # and the search's domain handling was a sixth of a single alert's receipt.
        self.flush_model(["api_key_prefix", "api_key_hash", "active"])
        self.env.cr.execute(
            """SELECT id, api_key_hash FROM construction_telematics_source
               WHERE api_key_prefix = %s AND active ORDER BY id LIMIT 1""",
            [prefix],
        )
        row = self.env.cr.fetchone()
        if row and telematics_auth.key_matches(api_key, row[1]):
            return self.browse(row[0])
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
        # The user's companies from Odoo's cache: reading company_ids on every request
        # was a fifth of a single alert's receipt. Both leave archived companies out:
        # one already linked must not be linked again on every request (each write
        # clears every worker's caches).
        if company.id not in user._get_company_ids() and (
            company not in user.with_context(active_test=False).company_ids
        ):
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
