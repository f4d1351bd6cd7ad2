from markupsafe import Markup
from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..state_machine import ODYSSEE_PUSH

REQUEST_ORIGINS = [
    ("manual", "Manual"),
    ("telematics_alert", "Telematics alert"),
    ("usage_threshold", "Usage threshold"),
    ("odyssee", "Odyssee"),
]
ALERT_SEVERITIES = [("info", "Info"), ("warning", "Warning"), ("critical", "Critical")]
# How a sensor snapshot's values read: label and unit per key. Other keys are
# shown with their name made readable and no unit.
SNAPSHOT_LABELS = {
    "engine_hours": ("Engine hours", "h"),
    "idle_hours": ("Idle hours", "h"),
    "odometer_km": ("Odometer", "km"),
    "fuel_level_pct": ("Fuel level", "%"),
    "def_level_pct": ("DEF level", "%"),
    "fuel_used_l": ("Fuel used", "l"),
    "speed_kmh": ("Speed", "km/h"),
    "coolant_temp_c": ("Coolant temperature", "°C"),
    "device_id": ("Device", ""),
    "event_id": ("Event", ""),
}


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
    alert_sensor_snapshot_html = fields.Html(
        string="Sensor snapshot",
        compute="_compute_alert_sensor_snapshot_html",
        sanitize=False,  # built here from escaped values only
    )
    job_site_project_id = fields.Many2one(
        related="equipment_id.job_site_project_id", string="Job site"
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
    def _compute_alert_sensor_snapshot_html(self):
        for request in self:
            rows = request._snapshot_rows()
            if not rows:
                request.alert_sensor_snapshot_html = False
                continue
            body = Markup("").join(
                Markup('<tr><th class="fw-normal text-muted pe-3">%s</th><td>%s</td></tr>')
                % (label, value)
                for label, value in rows
            )
            request.alert_sensor_snapshot_html = (
                Markup('<table class="table table-sm o_sensor_snapshot"><tbody>%s</tbody></table>')
                % body
            )

    def _snapshot_rows(self):
        """``[(label, value)]`` of the alert's snapshot, readings first, with units."""
        self.ensure_one()
        snapshot = self.alert_sensor_snapshot
        if not isinstance(snapshot, dict):
            return [(self.env._("Value"), str(snapshot))] if snapshot else []
        values = dict(snapshot.get("readings") or {})
        values.update(
            (key, value)
            for key, value in snapshot.items()
            if key not in ("readings", "location") and value not in (None, "")
        )
        rows = []
        for key, value in values.items():
            label, unit = SNAPSHOT_LABELS.get(key, (key.replace("_", " ").capitalize(), ""))
            if isinstance(value, float):
                value = f"{value:,.2f}".rstrip("0").rstrip(".")
            elif isinstance(value, int) and not isinstance(value, bool):
                value = f"{value:,}"
            rows.append((self.env._(label), f"{value} {unit}".strip()))
        location = snapshot.get("location") or {}
        if isinstance(location, dict) and location.get("lat") is not None:
            lat, lon = location.get("lat"), location.get("lon")
            url = f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=15/{lat}/{lon}"
            rows.append(
                (
                    self.env._("Position"),
                    Markup('<a href="%s" target="_blank">%s, %s</a>') % (url, lat, lon),
                )
            )
        return rows

    @api.model_create_multi
    def create(self, vals_list):
        # Requests opened by telematics or Odyssee run as the superuser (OdooBot):
        # they must not show OdooBot as their creator or technician.
        automatic = [vals for vals in vals_list if vals.get("request_origin", "manual") != "manual"]
        if automatic and self.env.uid == SUPERUSER_ID:
            for vals in automatic:
                vals.setdefault("owner_user_id", False)
        requests = super().create(vals_list)
        for request in requests.filtered(
            lambda r: r.request_origin != "manual" and r.user_id.id == SUPERUSER_ID
        ):
            # A category created at install time names OdooBot as its technician.
            equipment, team = request.equipment_id, request.maintenance_team_id
            people = equipment.technician_user_id | team.member_ids
            request.user_id = people.filtered(lambda user: user.id != SUPERUSER_ID)[:1]
        return requests

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
        plan_keys = {"stage_id", "archive", "equipment_id", "plan_item_id"} & set(vals)
        if plan_keys:
            # What is open before the change is in the table for the check below.
            self.flush_model(["plan_open"])
        result = super().write(vals)
        if plan_keys:
            self._check_one_open_plan_request()
        completed = finishing.filtered(lambda r: r.stage_id.done)
        if completed:
            self.env["construction.maintenance.schedule"]._record_completion(completed)
        if self.env.context.get("odyssee_no_push"):
            return result  # a change that came from Odyssee does not go back to it
        if "stage_id" in vals or {"name", "description", "equipment_id", "user_id"} & set(vals):
            self._queue_odyssee_push(stage_changed="stage_id" in vals)
        return result

    def _check_one_open_plan_request(self):
        """Refuse, in words, what the partial unique index would refuse at flush.

        Reopening a cancelled or done plan request (or moving one to another
        machine) while another request is open for the same machine and plan
        item would otherwise end in a raw database error.
        """
        # plan_open is recomputed in the cache on reading, not written yet.
        reopened = self.filtered(lambda r: r.plan_open and r.equipment_id)
        if not reopened:
            return
        # Plain SQL: a search would flush plan_open first and hit the index.
        self.env.cr.execute(
            """SELECT id, equipment_id, plan_item_id FROM maintenance_request
               WHERE plan_open AND id != ALL(%s)
                 AND (equipment_id, plan_item_id) IN (
                     SELECT * FROM unnest(%s::int[], %s::int[]))""",
            [
                reopened.ids,
                [request.equipment_id.id for request in reopened],
                [request.plan_item_id.id for request in reopened],
            ],
        )
        open_of = {(row[1], row[2]): row[0] for row in self.env.cr.fetchall()}
        seen = {}
        for request in reopened:
            key = (request.equipment_id.id, request.plan_item_id.id)
            other_id = open_of.get(key) or seen.get(key)
            seen.setdefault(key, request.id)
            if not other_id:
                continue
            other = self.browse(other_id).sudo()
            raise UserError(
                self.env._(
                    "%(machine)s already has an open request for the plan item %(item)s: "
                    "%(other)s (#%(other_id)s). Close or cancel it before reopening "
                    "%(request)s.",
                    machine=request.equipment_id.display_name,
                    item=request.plan_item_id.display_name,
                    other=other.name,
                    other_id=other.id,
                    request=request.name,
                )
            )

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
