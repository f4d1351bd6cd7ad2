from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import ValidationError


class MaintenanceEquipment(models.Model):
    _name = "maintenance.equipment"
    _inherit = ["maintenance.equipment", "construction.odyssee.bound.mixin"]
    _odyssee_id_field = "odyssee_installation_guid"

    external_id_ids = fields.One2many(
        "construction.external.id", "equipment_id", string="External IDs"
    )

    # Telematics state: the latest values the machine reported.
    telematics_last_seen_at = fields.Datetime(string="Last seen at", readonly=True, copy=False)
    telematics_latitude = fields.Float(string="Latitude", digits=(10, 7), readonly=True, copy=False)
    telematics_connectivity = fields.Selection(
        [("online", "Online"), ("offline", "Offline")],
        string="Gateway",
        readonly=True,
        copy=False,
        help="What the machine's gateway last said on its MQTT status topic (usually its "
        "last will when it drops off).",
    )
    telematics_connectivity_at = fields.Datetime(
        string="Gateway status since", readonly=True, copy=False
    )
    telematics_longitude = fields.Float(
        string="Longitude", digits=(10, 7), readonly=True, copy=False
    )
    engine_hours = fields.Float(readonly=True, copy=False, digits=(16, 2))
    idle_hours = fields.Float(readonly=True, copy=False, digits=(16, 2))
    odometer_km = fields.Float(string="Odometer (km)", readonly=True, copy=False, digits=(16, 1))
    fuel_level_pct = fields.Float(string="Fuel level (%)", readonly=True, copy=False, digits=(5, 1))
    last_fault_code = fields.Char(readonly=True, copy=False)
    telematics_map_url = fields.Char(
        string="Position on map", compute="_compute_telematics_map_url"
    )
    # When the counters were last accepted: the plausibility check measures rates from here.
    engine_hours_at = fields.Datetime(readonly=True, copy=False)
    idle_hours_at = fields.Datetime(readonly=True, copy=False)
    odometer_at = fields.Datetime(readonly=True, copy=False)
    # Reported at its own time, which may be older than the machine's last reading (as
    # may the position: telematics_position_at).
    fuel_level_at = fields.Datetime(string="Fuel level at", readonly=True, copy=False)
    telematics_reading_ids = fields.One2many(
        "construction.telematics.reading", "equipment_id", string="Readings"
    )
    telematics_reading_count = fields.Integer(compute="_compute_telematics_reading_count")
    telematics_silent = fields.Boolean(
        string="Silent",
        compute="_compute_telematics_silent",
        search="_search_telematics_silent",
        help="The machine has reported telematics before and has sent nothing for longer than "
        "the silence setting (Settings > Maintenance).",
    )
    telematics_seen_text = fields.Char(string="Last seen", compute="_compute_telematics_silent")
    open_alert_count = fields.Integer(
        string="Open alerts",
        compute="_compute_open_alert_count",
        help="Open maintenance requests that telematics alerts opened.",
    )

    # Preventive maintenance plans
    maintenance_schedule_ids = fields.One2many(
        "construction.maintenance.schedule", "equipment_id", string="Maintenance plan"
    )
    estimated_hours_per_day = fields.Float(
        string="Estimated engine hours per day",
        help="Forecasts use this until the readings history gives an average.",
    )
    estimated_km_per_day = fields.Float(string="Estimated km per day")
    maintenance_due_status = fields.Selection(
        [("ok", "Scheduled"), ("soon", "Due soon"), ("overdue", "Overdue")],
        string="Preventive maintenance",
        compute="_compute_maintenance_due",
    )
    next_maintenance_forecast_date = fields.Date(
        string="Next service forecast", compute="_compute_maintenance_due"
    )

    # Ownership
    ownership_type = fields.Selection(
        [("owned", "Owned"), ("rented", "Rented"), ("leased", "Leased")],
        string="Ownership",
        required=True,
        default="owned",
        tracking=True,
    )
    rental_vendor_id = fields.Many2one(
        "res.partner", string="Rental vendor", check_company=True, tracking=True
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    rental_rate = fields.Monetary(currency_field="currency_id")
    rental_rate_unit = fields.Selection(
        [("hour", "per hour"), ("day", "per day"), ("week", "per week"), ("month", "per month")],
        string="Rate per",
        default="day",
    )
    rental_start_date = fields.Date(string="Rented from")
    rental_end_date = fields.Date(string="Rented until")

    job_site_project_id = fields.Many2one(
        "project.project",
        string="Job site",
        check_company=True,
        index="btree_not_null",
        tracking=True,
        help="The project of the job site the machine works on; imported timesheets go there.",
    )
    # A view of the machine's binding in its company's Odyssee backend.
    odyssee_installation_guid = fields.Char(
        string="Odyssee installation GUID",
        compute="_compute_odyssee_id",
        inverse="_inverse_odyssee_id",
        search="_search_odyssee_id",
        help="ID of the matching installation (Project) in Odyssee.",
    )

    @api.depends("telematics_latitude", "telematics_longitude", "telematics_last_seen_at")
    def _compute_telematics_map_url(self):
        for equipment in self:
            if equipment.telematics_last_seen_at and (
                equipment.telematics_latitude or equipment.telematics_longitude
            ):
                lat, lon = equipment.telematics_latitude, equipment.telematics_longitude
                equipment.telematics_map_url = (
                    "https://www.openstreetmap.org/"
                    f"?mlat={lat:.6f}&mlon={lon:.6f}#map=15/{lat:.6f}/{lon:.6f}"
                )
            else:
                equipment.telematics_map_url = False

    def _compute_maintenance_due(self):
        rank = {"ok": 0, "soon": 1, "overdue": 2}
        for equipment in self:
            schedules = equipment.maintenance_schedule_ids
            statuses = schedules.mapped("due_status")
            equipment.maintenance_due_status = (
                max(statuses, key=rank.__getitem__) if statuses else False
            )
            dates = [day for day in schedules.mapped("forecast_date") if day]
            equipment.next_maintenance_forecast_date = min(dates) if dates else False

    def _compute_telematics_reading_count(self):
        counts = dict(
            self.env["construction.telematics.reading"]._read_group(
                [("equipment_id", "in", self.ids)], ["equipment_id"], ["__count"]
            )
        )
        for equipment in self:
            equipment.telematics_reading_count = counts.get(equipment, 0)

    def action_open_meter_events(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_meter_event_action"
        )
        action["domain"] = [("equipment_id", "=", self.id)]
        action["context"] = {"default_equipment_id": self.id}
        return action

    def _set_telematics_connectivity(self, connectivity, at):
        """The one writer of ``telematics_connectivity``: from the MQTT status topic."""
        changed = self.filtered(lambda machine: machine.telematics_connectivity != connectivity)
        changed.write({"telematics_connectivity": connectivity, "telematics_connectivity_at": at})
        return changed

    @api.model
    def _silent_cutoff(self):
        hours = self.env["res.config.settings"]._construction_setting("telematics_silent_hours")
        return fields.Datetime.now() - timedelta(hours=hours)

    @api.depends("telematics_last_seen_at")
    def _compute_telematics_silent(self):
        cutoff = self._silent_cutoff()
        now = fields.Datetime.now()
        for equipment in self:
            seen = equipment.telematics_last_seen_at
            equipment.telematics_silent = bool(seen and seen < cutoff)
            if not seen:
                equipment.telematics_seen_text = False
                continue
            minutes = max(0, int((now - seen).total_seconds() // 60))
            if minutes < 60:
                ago = self.env._("%(n)s min ago", n=minutes)
            elif minutes < 48 * 60:
                ago = self.env._("%(n)s h ago", n=minutes // 60)
            else:
                ago = self.env._("%(n)s days ago", n=minutes // (24 * 60))
            equipment.telematics_seen_text = (
                self.env._("Silent, last seen %(ago)s", ago=ago)
                if equipment.telematics_silent
                else self.env._("Seen %(ago)s", ago=ago)
            )

    def _search_telematics_silent(self, operator, value):
        if operator not in ("=", "!="):
            raise NotImplementedError(operator)
        silent = [("telematics_last_seen_at", "<", self._silent_cutoff())]
        if (operator == "=") == bool(value):
            return silent
        return [
            "|",
            ("telematics_last_seen_at", "=", False),
            ("telematics_last_seen_at", ">=", self._silent_cutoff()),
        ]

    def _compute_open_alert_count(self):
        counts = dict(
            self.env["maintenance.request"]._read_group(
                [
                    ("equipment_id", "in", self.ids),
                    ("request_origin", "=", "telematics_alert"),
                    ("stage_id.done", "=", False),
                    ("archive", "=", False),
                ],
                ["equipment_id"],
                ["__count"],
            )
        )
        for equipment in self:
            equipment.open_alert_count = counts.get(equipment, 0)

    def action_open_telematics_readings(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_telematics_reading_action"
        )
        action["domain"] = [("equipment_id", "=", self.id)]
        action["context"] = {"search_default_not_suspect": 1}
        return action

    def action_open_engine_hours_chart(self):
        """The machine's engine hours per day as a chart whose axis spans their range."""
        action = self.action_open_telematics_readings()
        action["name"] = self.env._("Engine hours of %(machine)s", machine=self.display_name)
        action["views"] = [(False, "graph"), (False, "list")]
        action["view_mode"] = "graph,list"
        return action

    def unlink(self):
        ids = self.ids
        result = super().unlink()
        # The readings history has no foreign key to cascade (see HistoryMany2one).
        self.env["construction.telematics.reading"]._unlink_history_of("equipment_id", ids)
        return result

    @api.constrains("ownership_type", "rental_vendor_id", "rental_start_date", "rental_end_date")
    def _check_rental(self):
        for equipment in self:
            if equipment.ownership_type != "owned" and not equipment.rental_vendor_id:
                raise ValidationError(
                    self.env._(
                        "%(machine)s is rented or leased: set its rental vendor.",
                        machine=equipment.display_name,
                    )
                )
            start, end = equipment.rental_start_date, equipment.rental_end_date
            if start and end and end < start:
                raise ValidationError(
                    self.env._(
                        "%(machine)s: the rental ends before it starts.",
                        machine=equipment.display_name,
                    )
                )

    @api.onchange("ownership_type")
    def _onchange_ownership_type(self):
        if self.ownership_type == "owned":
            self.rental_vendor_id = False
            self.rental_rate = 0.0
            self.rental_start_date = False
            self.rental_end_date = False
