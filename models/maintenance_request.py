import json

from odoo import api, fields, models
from odoo.exceptions import AccessError

from ..state_machine import ODYSSEE_PUSH

REQUEST_ORIGINS = [
    ("manual", "Manual"),
    ("telematics_alert", "Telematics alert"),
    ("usage_threshold", "Usage threshold"),
    ("odyssee", "Odyssee"),
]
ALERT_SEVERITIES = [("info", "Info"), ("warning", "Warning"), ("critical", "Critical")]


class MaintenanceRequest(models.Model):
    _name = "maintenance.request"
    _inherit = ["maintenance.request", "construction.odyssee.bound.mixin"]
    _odyssee_id_field = "odyssee_job_guid"

    request_origin = fields.Selection(
        REQUEST_ORIGINS,
        string="Origin",
        required=True,
        default="manual",
        readonly=True,
        index=True,
        copy=False,
        help="Who opened the request: a person, a telematics alert, a usage threshold "
        "or a job created in Odyssee.",
    )

    # The alert that opened the request.
    alert_severity = fields.Selection(ALERT_SEVERITIES, readonly=True, copy=False)
    alert_code = fields.Char(readonly=True, copy=False, index="btree_not_null")
    alert_occurred_at = fields.Datetime(readonly=True, copy=False)
    alert_sensor_snapshot = fields.Json(readonly=True, copy=False)
    alert_repeat_count = fields.Integer(
        string="Alert count",
        readonly=True,
        copy=False,
        default=0,
        help="How many times telematics reported this alert while the request was open.",
    )
    alert_sensor_snapshot_text = fields.Text(
        string="Sensor snapshot", compute="_compute_alert_sensor_snapshot_text"
    )

    # The preventive plan item that opened the request.
    plan_item_id = fields.Many2one(
        "construction.maintenance.plan.item",
        string="Plan item",
        readonly=True,
        copy=False,
        index="btree_not_null",
        ondelete="set null",
    )
    # Stored for the partial unique index: one open request per (machine, plan item).
    plan_open = fields.Boolean(compute="_compute_plan_open", store=True)

    # Link to the job in Odyssee.
    # A view of the request's binding to its job in the company's Odyssee backend.
    odyssee_job_guid = fields.Char(
        string="Odyssee job GUID",
        compute="_compute_odyssee_id",
        inverse="_inverse_odyssee_id",
        search="_search_odyssee_id",
    )
    reference_back_office = fields.Char(
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Our reference for this request as Odyssee stores it on the job.",
    )
    odyssee_status = fields.Char(readonly=True, copy=False)
    odyssee_last_synced_at = fields.Datetime(string="Last synced at", readonly=True, copy=False)
    odyssee_push_state = fields.Selection(
        [("none", "Not sent"), ("pending", "To send"), ("sent", "Sent"), ("error", "Error")],
        string="Sent to Odyssee",
        default="none",
        readonly=True,
        copy=False,
        index=True,
    )
    odyssee_push_error = fields.Text(readonly=True, copy=False)
    odyssee_approval_ids = fields.One2many(
        "construction.odyssee.approval", "request_id", string="Odyssee approvals"
    )
    odyssee_line_ids = fields.One2many(
        "construction.odyssee.usage.line", "request_id", string="Imported work"
    )

    # Review of automatically opened requests.
    to_review = fields.Boolean(
        compute="_compute_to_review",
        store=True,
        index=True,
        help="Opened automatically and not yet reviewed by a maintenance manager.",
    )
    reviewed_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    reviewed_at = fields.Datetime(readonly=True, copy=False)

    _sql_constraints = [
        (
            "reference_back_office_company_uniq",
            "unique(reference_back_office, company_id)",
            "Another maintenance request of this company already uses this back-office reference.",
        ),
    ]

    @api.depends("request_origin", "reviewed_at")
    def _compute_to_review(self):
        for request in self:
            request.to_review = request.request_origin != "manual" and not request.reviewed_at

    @api.depends("plan_item_id", "stage_id.done", "archive")
    def _compute_plan_open(self):
        for request in self:
            request.plan_open = bool(
                request.plan_item_id and not request.stage_id.done and not request.archive
            )

    def init(self):
        super().init()
        # Concurrent batches (or the daily run) may both find an item due: the
        # second insert fails here instead of opening a second request.
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS maintenance_request_plan_open_uniq
               ON maintenance_request (equipment_id, plan_item_id) WHERE plan_open"""
        )

    @api.depends("alert_sensor_snapshot")
    def _compute_alert_sensor_snapshot_text(self):
        for request in self:
            snapshot = request.alert_sensor_snapshot
            request.alert_sensor_snapshot_text = (
                json.dumps(snapshot, indent=2, sort_keys=True) if snapshot else False
            )

    def _odyssee_reference(self):
        """Our key for the request in Odyssee (its reference_back_office), set once."""
        self.ensure_one()
        if not self.reference_back_office:
            self.sudo().reference_back_office = f"MR-{self.id:06d}"
        return self.reference_back_office

    def action_send_to_odyssee(self):
        """Queue the request for Odyssee; the sync sends it within the minute (or now)."""
        if not self.env.user.has_group("construction_asset_sync.group_dispatcher"):
            raise AccessError(self.env._("Only dispatchers send work to Odyssee."))
        self._set_odyssee_push_state("pending")
        self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()
        return True

    def _set_odyssee_push_state(self, state, error=False):
        """The one way the Odyssee push state changes; refuses moves its table does not list."""
        ODYSSEE_PUSH.check([(request.odyssee_push_state, state) for request in self])
        # Not through write(): changing the push state must not queue another push.
        super(MaintenanceRequest, self.sudo()).write(
            {"odyssee_push_state": state, "odyssee_push_error": error}
        )

    def write(self, vals):
        finishing = self.browse()
        if "stage_id" in vals:
            finishing = self.filtered(lambda r: r.plan_item_id and not r.stage_id.done)
        result = super().write(vals)
        completed = finishing.filtered(lambda r: r.stage_id.done)
        if completed:
            self.env["construction.maintenance.schedule"]._record_completion(completed)
        if self.env.context.get("odyssee_no_push"):
            return result  # a change that came from Odyssee does not go back to it
        if "stage_id" in vals or {"name", "description", "equipment_id", "user_id"} & set(vals):
            self._queue_odyssee_push(stage_changed="stage_id" in vals)
        return result

    def _queue_odyssee_push(self, stage_changed):
        backends = (
            self.env["construction.odyssee.backend"]
            .sudo()
            .search([("company_id", "in", self.company_id.ids)])
        )
        to_queue = self.browse()
        for request in self:
            backend = backends.filtered(lambda b, r=request: b.company_id == r.company_id)[:1]
            if not backend or request.odyssee_push_state == "pending":
                continue
            entering = stage_changed and request.stage_id in backend.push_stage_ids
            if request.odyssee_push_state == "sent" or entering:
                to_queue |= request
        if to_queue:
            # Sending happens in the sync job, never inside this transaction.
            to_queue._set_odyssee_push_state("pending")
            self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()

    def action_mark_reviewed(self):
        """Maintenance managers confirm automatically opened requests."""
        if not self.env.user.has_group("maintenance.group_equipment_manager"):
            raise AccessError(
                self.env._("Only maintenance managers can review automatically opened requests.")
            )
        pending = self.filtered("to_review")
        now = fields.Datetime.now()
        pending.write({"reviewed_by_id": self.env.uid, "reviewed_at": now})
        for request in pending:
            request.message_post(
                body=self.env._("Reviewed by %(user)s.", user=self.env.user.name),
                subtype_xmlid="mail.mt_note",
            )
        return True
