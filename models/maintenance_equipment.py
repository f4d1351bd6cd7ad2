import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..protocols import telematics_payloads

ALERT_PRIORITY = {"warning": "2", "critical": "3"}

GUID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class MaintenanceEquipment(models.Model):
    _inherit = "maintenance.equipment"

    external_id_ids = fields.One2many(
        "construction.external.id", "equipment_id", string="External IDs"
    )

    # Telematics state: the latest values the machine reported.
    telematics_last_seen_at = fields.Datetime(string="Last seen at", readonly=True, copy=False)
    telematics_latitude = fields.Float(string="Latitude", digits=(10, 7), readonly=True, copy=False)
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
    odometer_at = fields.Datetime(readonly=True, copy=False)
    telematics_reading_ids = fields.One2many(
        "construction.telematics.reading", "equipment_id", string="Readings"
    )
    telematics_reading_count = fields.Integer(compute="_compute_telematics_reading_count")

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
    odyssee_installation_guid = fields.Char(
        string="Odyssee installation GUID",
        copy=False,
        index="btree_not_null",
        help="ID of the matching installation (Project) in Odyssee.",
    )

    _sql_constraints = [
        (
            "odyssee_installation_guid_company_uniq",
            "unique(odyssee_installation_guid, company_id)",
            "Another machine of this company already has this Odyssee installation GUID.",
        ),
    ]

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

    def _compute_telematics_reading_count(self):
        counts = dict(
            self.env["construction.telematics.reading"]._read_group(
                [("equipment_id", "in", self.ids)], ["equipment_id"], ["__count"]
            )
        )
        for equipment in self:
            equipment.telematics_reading_count = counts.get(equipment, 0)

    def action_open_telematics_readings(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_telematics_reading_action"
        )
        action["domain"] = [("equipment_id", "=", self.id)]
        action["context"] = {"search_default_not_suspect": 1}
        return action

    def _telematics_write_state(self, state, counters, last_seen):
        """Write the latest accepted values; counters is counter -> (value, at)."""
        self.ensure_one()
        values = {}
        if last_seen and last_seen != self.telematics_last_seen_at:
            values["telematics_last_seen_at"] = last_seen
        if "lat" in state and "lon" in state:
            values["telematics_latitude"] = state["lat"]
            values["telematics_longitude"] = state["lon"]
        if "fuel_level_pct" in state:
            values["fuel_level_pct"] = state["fuel_level_pct"]
        for counter, stamp_field in (
            ("engine_hours", "engine_hours_at"),
            ("idle_hours", None),
            ("odometer_km", "odometer_at"),
        ):
            if counter in counters:
                value, at = counters[counter]
                if value != self[counter]:
                    values[counter] = value
                if stamp_field and at != self[stamp_field]:
                    values[stamp_field] = at
        if values:
            self.write(values)

    @api.model
    def _telematics_apply_alert(self, equipment, payload, event):
        """Apply one alert: update the machine's state and open or annotate a request.

        Returns the ledger values describing the outcome.
        """
        alert, errors = telematics_payloads.parse_alert(payload)
        if errors:
            raise ValueError(f"stored alert no longer validates: {errors}")
        at = alert["occurred_at"]
        state, counters = {}, {}
        if not equipment.telematics_last_seen_at or at >= equipment.telematics_last_seen_at:
            if alert["location"]:
                state.update(alert["location"])
            if alert["readings"].get("fuel_level_pct") is not None:
                state["fuel_level_pct"] = alert["readings"]["fuel_level_pct"]
        last = {}
        if equipment.engine_hours_at:
            last["engine_hours"] = (equipment.engine_hours, equipment.engine_hours_at)
        if equipment.odometer_at:
            last["odometer_km"] = (equipment.odometer_km, equipment.odometer_at)
        Reading = self.env["construction.telematics.reading"]
        if not Reading._check_counters(alert["readings"], at, last, Reading._plausibility_limits()):
            for counter in ("engine_hours", "odometer_km"):
                value = alert["readings"].get(counter)
                if value is not None and (counter not in last or at > last[counter][1]):
                    counters[counter] = (value, at)
        last_seen = max(filter(None, [equipment.telematics_last_seen_at, at]))
        equipment._telematics_write_state(state, counters, last_seen)

        severity, code, active = alert["severity"], alert["code"], alert["state"] == "active"
        if severity != "info" and active and equipment.last_fault_code != code:
            equipment.last_fault_code = code
        elif not active and equipment.last_fault_code == code:
            equipment.last_fault_code = False
        if severity == "info":
            return {"result": self.env._("State updated (info alert)")}

        Request = self.env["maintenance.request"]
        open_request = Request.search(
            [
                ("equipment_id", "=", equipment.id),
                ("request_origin", "=", "telematics_alert"),
                ("alert_code", "=", code),
                ("stage_id.done", "=", False),
                ("archive", "=", False),
            ],
            limit=1,
            order="id desc",
        )
        when = fields.Datetime.to_string(at)
        if not active:
            if not open_request:
                return {"result": self.env._("Alert cleared; no open request")}
            open_request.message_post(
                body=self.env._(
                    "Telematics reports alert %(code)s cleared at %(when)s UTC.",
                    code=code,
                    when=when,
                ),
                subtype_xmlid="mail.mt_note",
            )
            return {"request_id": open_request.id, "result": self.env._("Cleared note posted")}
        if open_request:
            values = {"alert_repeat_count": open_request.alert_repeat_count + 1}
            if severity == "critical" and open_request.alert_severity != "critical":
                values.update({"alert_severity": "critical", "priority": "3"})
            open_request.write(values)
            open_request.message_post(
                body=self.env._(
                    "Alert %(code)s repeated at %(when)s UTC (%(count)s times so far): %(message)s",
                    code=code,
                    when=when,
                    count=values["alert_repeat_count"],
                    message=alert["message"] or "",
                ),
                subtype_xmlid="mail.mt_note",
            )
            return {"request_id": open_request.id, "result": self.env._("Repeat noted")}
        request = Request.with_context(mail_create_nolog=True, tracking_disable=True).create(
            {
                "name": f"{code}: {alert['message']}" if alert["message"] else code,
                "equipment_id": equipment.id,
                "company_id": equipment.company_id.id or event.company_id.id,
                "maintenance_type": "corrective",
                "priority": ALERT_PRIORITY[severity],
                "request_origin": "telematics_alert",
                "alert_severity": severity,
                "alert_code": code,
                "alert_occurred_at": at,
                "alert_sensor_snapshot": {
                    "readings": alert["readings"],
                    "location": alert["location"],
                    "device_id": alert["device_id"],
                    "event_id": alert["event_id"],
                },
                "alert_repeat_count": 1,
                "description": alert["message"] or False,
            }
        )
        return {"request_id": request.id, "result": self.env._("Maintenance request opened")}

    @api.constrains("odyssee_installation_guid")
    def _check_odyssee_installation_guid(self):
        for equipment in self:
            guid = equipment.odyssee_installation_guid
            if guid and not GUID_PATTERN.match(guid):
                raise ValidationError(
                    self.env._(
                        "%(guid)r is not an Odyssee GUID "
                        "(expected 8-4-4-4-12 hexadecimal digits).",
                        guid=guid,
                    )
                )

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
