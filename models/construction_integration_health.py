"""Integration health: one row per telematics source and per Odyssee stream.

The scheduled action *Integration: check health* measures every row (state,
last success, lag, backlog, dead letters, waiting PDFs, lines needing
attention) and turns what is wrong into problems
(``construction.integration.problem``). A new problem gets one activity for
an integration administrator and a message on the source or backend; a
problem that is gone is closed, its activity marked done and the recovery
noted. An Odyssee stream is also checked at once when its run ends
(``construction.odyssee.stream._set_state``), so a broken URL reaches a
person within one sync run.
"""

import logging
from datetime import timedelta

from markupsafe import Markup
from odoo import api, fields, models

_logger = logging.getLogger(__name__)

ADMIN_GROUP = "construction_asset_sync.group_integration_admin"
ACTIVITY_TYPE = "construction_asset_sync.mail_activity_integration_problem"
HEALTH_LEVELS = [("ok", "OK"), ("warning", "Needs attention"), ("error", "Failing")]


def _duration_text(minutes):
    """'45 min', '3 h 05 min', '2 d 4 h': a lag a person reads at a glance."""
    minutes = int(round(minutes or 0))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


class ConstructionIntegrationHealth(models.Model):
    _name = "construction.integration.health"
    _description = "Integration health"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "health_rank desc, kind, name, id"

    name = fields.Char(required=True, readonly=True)
    active = fields.Boolean(default=True)
    kind = fields.Selection(
        [("telematics", "Telematics source"), ("odyssee", "Odyssee stream")],
        required=True,
        readonly=True,
    )
    source_id = fields.Many2one(
        "construction.telematics.source", readonly=True, ondelete="cascade", index="btree_not_null"
    )
    stream_id = fields.Many2one(
        "construction.odyssee.stream", readonly=True, ondelete="cascade", index="btree_not_null"
    )
    backend_id = fields.Many2one(related="stream_id.backend_id", store=True)
    company_id = fields.Many2one("res.company", required=True, index=True, readonly=True)
    health = fields.Selection(HEALTH_LEVELS, default="ok", readonly=True)
    health_rank = fields.Integer(readonly=True, help="2 failing, 1 needs attention, 0 OK.")
    summary = fields.Char(string="What is wrong", readonly=True)
    checked_at = fields.Datetime(string="Checked at", readonly=True)
    last_success_at = fields.Datetime(
        string="Last success",
        readonly=True,
        help="Telematics: the last event processed. Odyssee: the last run that went through.",
    )
    lag_minutes = fields.Float(
        string="Lag (minutes)",
        readonly=True,
        help="Telematics: how long the oldest event due for processing has waited. Odyssee: "
        "minutes since the last successful run.",
    )
    lag_text = fields.Char(string="Lag", compute="_compute_lag_text")
    backlog = fields.Integer(
        readonly=True,
        help="Telematics: events waiting to be processed. Odyssee (work out): requests to send.",
    )
    dead_count = fields.Integer(
        string="Dead letters",
        readonly=True,
        help="Telematics: dead events (retries exhausted). Odyssee: records set aside.",
    )
    waiting_pdf_count = fields.Integer(string="Waiting PDFs", readonly=True)
    attention_count = fields.Integer(
        string="Lines needing attention",
        readonly=True,
        help="Telematics: events of unmapped devices, and those rejected in the last 24 hours. "
        "Odyssee: imported lines Odoo could not link, requests that failed to send.",
    )
    problem_ids = fields.One2many("construction.integration.problem", "health_id")
    open_problem_count = fields.Integer(compute="_compute_open_problem_count")

    _sql_constraints = [
        ("source_uniq", "unique(source_id)", "One health row per telematics source."),
        ("stream_uniq", "unique(stream_id)", "One health row per Odyssee stream."),
    ]

    def _compute_lag_text(self):
        for row in self:
            row.lag_text = _duration_text(row.lag_minutes) if row.lag_minutes else False

    def _compute_open_problem_count(self):
        for row in self:
            row.open_problem_count = len(row.problem_ids.filtered(lambda p: not p.resolved_at))

    def _subject(self):
        """The record whose chatter hears about this row's problems."""
        self.ensure_one()
        return self.source_id or self.backend_id

    # ------------------------------------------------------------------
    # Checking
    # ------------------------------------------------------------------
    @api.model
    def _cron_check(self):
        self._check_all()

    @api.model
    def _check_all(self):
        """Measure every source and stream and raise or close their problems."""
        rows = self.sudo()._ensure_rows()
        rows._refresh()
        return rows

    def action_check_now(self):
        self.env["construction.integration.health"]._check_all()
        return True

    @api.model
    def _ensure_rows(self):
        """One active row per active source and per stream of an active backend."""
        Health = self.with_context(active_test=False)
        rows = Health.search([])
        sources = self.env["construction.telematics.source"].search([])
        streams = self.env["construction.odyssee.stream"].search([("backend_id.active", "=", True)])
        have_sources = {row.source_id.id: row for row in rows if row.source_id}
        have_streams = {row.stream_id.id: row for row in rows if row.stream_id}
        values = [
            {
                "name": source.name,
                "kind": "telematics",
                "source_id": source.id,
                "company_id": source.company_id.id,
            }
            for source in sources
            if source.id not in have_sources
        ] + [self._stream_row_values(stream) for stream in streams if stream.id not in have_streams]
        created = Health.with_context(mail_create_nolog=True).create(values) if values else Health
        wanted = {("s", s.id) for s in sources} | {("o", s.id) for s in streams}
        gone = rows.filtered(
            lambda r: (("s", r.source_id.id) if r.source_id else ("o", r.stream_id.id))
            not in wanted
        )
        if gone:
            # An archived source or backend has nothing left for a person to do.
            gone._sync_problems({row: {} for row in gone})
            gone.filtered("active").write({"active": False})
        back = (rows - gone).filtered(lambda r: not r.active)
        back.write({"active": True})
        return (rows - gone) | created

    @api.model
    def _stream_row_values(self, stream):
        return {
            "name": f"{stream.backend_id.name}: {stream._kind_label()}",
            "kind": "odyssee",
            "stream_id": stream.id,
            "company_id": stream.company_id.id,
        }

    def _refresh(self):
        """Measure these rows, write the figures, raise and close their problems."""
        now = fields.Datetime.now()
        found = {}
        telematics = self.filtered(lambda r: r.kind == "telematics")
        measures = telematics._telematics_measures(now)
        measures.update(self.filtered(lambda r: r.kind == "odyssee")._odyssee_measures(now))
        for row in self:
            values, problems = measures[row]
            rank = max(
                (2 if severity == "error" else 1 for severity, _summary in problems.values()),
                default=0,
            )
            values.update(
                {
                    "health": HEALTH_LEVELS[rank][0],
                    "health_rank": rank,
                    "summary": "; ".join(summary for _s, summary in problems.values()) or False,
                    "checked_at": now,
                }
            )
            row.write(values)
            found[row] = problems
        self._sync_problems(found)

    def _telematics_measures(self, now):
        """``{row: (values, {code: (severity, summary)})}`` for telematics rows, in 3 queries."""
        if not self:
            return {}
        env = self.env
        env["construction.telematics.event"].flush_model()
        setting = env["res.config.settings"]._construction_setting
        stall_minutes = setting("health_stall_minutes")
        source_ids = tuple(self.source_id.ids)
        # Only what waits or went wrong: the indexes on state keep this off the history.
        env.cr.execute(
            """SELECT source_id, state, count(*),
                      min(CASE WHEN next_attempt_at IS NULL OR next_attempt_at <= %(now)s
                               THEN COALESCE(next_attempt_at, received_at) END)
               FROM construction_telematics_event
               WHERE source_id IN %(sources)s AND active
                 AND (state IN ('pending', 'failed', 'dead', 'unmapped')
                      OR (state = 'rejected' AND received_at > %(day_ago)s))
               GROUP BY source_id, state""",
            {"sources": source_ids, "now": now, "day_ago": now - timedelta(days=1)},
        )
        counts = {}
        for source_id, state, count, oldest_due in env.cr.fetchall():
            counts.setdefault(source_id, {})[state] = (count, oldest_due)
        last_success = {}
        for source_id in source_ids:
            # The newest processed event by id: a backward scan of the primary key.
            env.cr.execute(
                """SELECT processed_at FROM construction_telematics_event
                   WHERE source_id = %s AND state = 'processed'
                   ORDER BY id DESC LIMIT 1""",
                [source_id],
            )
            row = env.cr.fetchone()
            last_success[source_id] = row and row[0]
        cron = env.ref(
            "construction_asset_sync.ir_cron_process_telematics_events", raise_if_not_found=False
        )
        processing_off = not (cron and cron.sudo().active)
        no_consumer = (
            env["construction.telematics.mqtt.consumer"]
            .sudo()
            ._sources_without_consumer(self.source_id)
        )
        result = {}
        for row in self:
            by_state = counts.get(row.source_id.id, {})
            backlog = sum(by_state.get(state, (0, None))[0] for state in ("pending", "failed"))
            due = [
                by_state[state][1]
                for state in ("pending", "failed")
                if state in by_state and by_state[state][1]
            ]
            lag = (now - min(due)).total_seconds() / 60 if due else 0.0
            dead = by_state.get("dead", (0, None))[0]
            unmapped = by_state.get("unmapped", (0, None))[0]
            rejected = by_state.get("rejected", (0, None))[0]
            problems = {}
            if backlog and processing_off:
                problems["stalled"] = (
                    "error",
                    env._(
                        "Processing is switched off: %(n)s event(s) wait (scheduled action "
                        "'Telematics: process received events' is archived)",
                        n=backlog,
                    ),
                )
            elif due and lag >= stall_minutes:
                problems["stalled"] = (
                    "error",
                    env._(
                        "Processing is stalled: %(n)s event(s) wait, the oldest for %(lag)s",
                        n=backlog,
                        lag=_duration_text(lag),
                    ),
                )
            if dead:
                problems["dead"] = (
                    "error",
                    env._("%(n)s dead event(s): retries exhausted, replay them", n=dead),
                )
            if row.source_id in no_consumer:
                problems["mqtt"] = (
                    "error",
                    env._(
                        "No MQTT consumer is connected: messages wait at the broker "
                        "%(host)s:%(port)s (start 'odoo-bin telematics_mqtt')",
                        host=row.source_id.mqtt_host,
                        port=row.source_id.mqtt_port,
                    ),
                )
            if unmapped:
                problems["unmapped"] = (
                    "warning",
                    env._("%(n)s event(s) from unmapped devices: map them", n=unmapped),
                )
            values = {
                "name": row.source_id.name,
                "last_success_at": last_success.get(row.source_id.id) or False,
                "lag_minutes": lag,
                "backlog": backlog,
                "dead_count": dead,
                "waiting_pdf_count": 0,
                "attention_count": unmapped + rejected,
            }
            result[row] = (values, problems)
        return result

    def _odyssee_measures(self, now):
        if not self:
            return {}
        env = self.env
        streams = self.stream_id
        backends = streams.backend_id
        issues = dict(
            env["construction.odyssee.usage.line"]
            .sudo()
            ._read_group(
                [("backend_id", "in", backends.ids), ("issue", "!=", False)],
                ["backend_id"],
                ["__count"],
            )
        )
        Request = env["maintenance.request"].sudo()
        push = {
            (company, state): count
            for company, state, count in Request._read_group(
                [
                    ("company_id", "in", backends.company_id.ids),
                    ("odyssee_push_state", "in", ("pending", "error")),
                ],
                ["company_id", "odyssee_push_state"],
                ["__count"],
            )
        }
        kinds = dict(env["construction.odyssee.stream"]._fields["error_kind"].selection)
        result = {}
        for row in self:
            stream = row.stream_id
            backend = stream.backend_id
            since = stream.last_success_at or stream.create_date
            lag = (now - since).total_seconds() / 60 if since else 0.0
            backlog = attention = 0
            if stream.kind == "push":
                backlog = push.get((backend.company_id, "pending"), 0)
                attention = push.get((backend.company_id, "error"), 0)
            elif stream.kind == "approvals":
                attention = issues.get(backend, 0)
            problems = {}
            label = f"{backend.name}: {stream._kind_label()}"
            if stream.state == "error":
                problems["error"] = (
                    "error",
                    env._(
                        "%(stream)s fails: %(kind)s, %(error)s",
                        stream=label,
                        kind=kinds.get(stream.error_kind, stream.error_kind or ""),
                        error=(stream.last_error or "")[:300],
                    ),
                )
            if stream.failed_count:
                problems["set_aside"] = (
                    "warning",
                    env._(
                        "%(stream)s set %(n)s record(s) aside after repeated failures",
                        stream=label,
                        n=stream.failed_count,
                    ),
                )
            if attention and stream.kind == "push":
                problems["push_failed"] = (
                    "warning",
                    env._("%(n)s request(s) could not be sent to Odyssee", n=attention),
                )
            elif stream.kind == "push" and stream.state != "error" and stream.last_error:
                # A product or a technician's user Odyssee refused, which no request
                # in error shows (each run tries it again and says it again).
                problems["push_refused"] = (
                    "warning",
                    env._(
                        "%(stream)s: Odyssee refused what the last run sent: %(error)s",
                        stream=label,
                        error=stream.last_error[:300],
                    ),
                )
            elif attention:
                problems["lines"] = (
                    "warning",
                    env._(
                        "%(n)s imported line(s) need attention (unknown article, "
                        "technician or machine)",
                        n=attention,
                    ),
                )
            values = {
                "name": label,
                "last_success_at": stream.last_success_at,
                "lag_minutes": lag,
                "backlog": backlog,
                "dead_count": stream.failed_count,
                "waiting_pdf_count": stream.waiting_count,
                "attention_count": attention,
            }
            result[row] = (values, problems)
        return result

    @api.model
    def _stream_state_changed(self, streams):
        """Check these streams' rows now (called when a stream run ends); never raises."""
        try:
            with self.env.cr.savepoint():
                Health = self.sudo().with_context(active_test=False)
                rows = Health.search([("stream_id", "in", streams.ids)])
                missing = streams - rows.stream_id
                if missing:
                    rows |= Health.with_context(mail_create_nolog=True).create(
                        [Health._stream_row_values(stream) for stream in missing]
                    )
                rows._refresh()
        except Exception:
            _logger.exception("integration health check of Odyssee streams %s failed", streams.ids)

    # ------------------------------------------------------------------
    # Problems: one activity each, closed on recovery
    # ------------------------------------------------------------------
    def _integration_admins(self):
        """Active integration administrators of this row's company, oldest account first."""
        self.ensure_one()
        group = self.env.ref(ADMIN_GROUP)
        return group.users.filtered(
            lambda user: user.active and not user.share and self.company_id in user.company_ids
        ).sorted("id")

    def _sync_problems(self, found):
        """Open the problems of ``found`` ({row: {code: (severity, summary)}}) not open yet,
        update the summaries of those still there, and close the others."""
        Problem = self.env["construction.integration.problem"].sudo()
        open_problems = Problem.search([("health_id", "in", self.ids), ("resolved_at", "=", False)])
        by_key = {(problem.health_id.id, problem.code): problem for problem in open_problems}
        for row, problems in found.items():
            for code, (severity, summary) in problems.items():
                problem = by_key.pop((row.id, code), None)
                if problem:
                    if problem.summary != summary or problem.severity != severity:
                        problem.write({"summary": summary, "severity": severity})
                    continue
                row._open_problem(code, severity, summary)
        for problem in by_key.values():
            problem._resolve()

    def _open_problem(self, code, severity, summary):
        self.ensure_one()
        admins = self._integration_admins()
        problem = (
            self.env["construction.integration.problem"]
            .sudo()
            .create({"health_id": self.id, "code": code, "severity": severity, "summary": summary})
        )
        if admins:
            problem.activity_id = self.sudo().activity_schedule(
                ACTIVITY_TYPE,
                summary=summary[:250],
                note=Markup("<p>%s</p>") % summary,
                user_id=admins[0].id,
            )
        self._subject().sudo().message_post(
            body=Markup("<p><b>%s</b> %s</p>") % (self.env._("Integration problem:"), summary),
            subtype_xmlid="mail.mt_note",
            partner_ids=admins.partner_id.ids,
        )
        return problem
