from datetime import timedelta

from odoo import api, fields, models


class MaintenanceEquipment(models.Model):
    """Utilisation of a machine: its daily rollups, what they need to stay exact, its site."""

    _inherit = "maintenance.equipment"

    fuel_tank_capacity_l = fields.Float(
        string="Fuel tank (L)",
        digits=(16, 1),
        help="Turns drops of the reported fuel level into litres when the machine "
        "does not report cumulative fuel.",
    )
    telematics_usage_ids = fields.One2many(
        "construction.telematics.usage", "equipment_id", string="Daily utilisation"
    )
    # Set by each batch of readings, cleared by the rollup: the earliest reading not
    # yet rolled up.
    usage_dirty_from = fields.Datetime(readonly=True, copy=False, index="btree_not_null")
    # Set by the purge: raw readings before this instant are gone, their days are final.
    usage_raw_since = fields.Datetime(string="Raw readings since", readonly=True, copy=False)
    usage_last_active_day = fields.Date(
        string="Last day used",
        readonly=True,
        copy=False,
        help="The last day the engine ran, from the daily utilisation.",
    )
    usage_unused = fields.Boolean(
        string="Unused",
        compute="_compute_usage_unused",
        search="_search_usage_unused",
        help="The machine reports, but its engine has not run for the number of days "
        "set in the settings.",
    )

    # Where the machine is by its positions (geofences with hysteresis), not by hand.
    telematics_site_project_id = fields.Many2one(
        "project.project", string="On site (by position)", readonly=True, copy=False
    )
    # The time of the position shown, which may be older than the machine's last
    # reading: processing moves the machine and the site following (geofences) from
    # the same plausible positions, and both keep this stamp to the same time.
    telematics_position_at = fields.Datetime(string="Position at", readonly=True, copy=False)
    telematics_outside_sites = fields.Boolean(
        string="Outside every site",
        readonly=True,
        copy=False,
        help="Its last position is outside every geofenced job site of its company.",
    )
    site_visit_ids = fields.One2many(
        "construction.telematics.site.visit", "equipment_id", string="Site visits"
    )

    def _usage_unused_since(self):
        days = self.env["res.config.settings"]._construction_setting("telematics_unused_days")
        return fields.Date.context_today(self) - timedelta(days=days)

    @api.depends("usage_last_active_day", "telematics_last_seen_at")
    def _compute_usage_unused(self):
        since = self._usage_unused_since()
        for equipment in self:
            equipment.usage_unused = bool(equipment.telematics_last_seen_at) and (
                not equipment.usage_last_active_day or equipment.usage_last_active_day < since
            )

    def _search_usage_unused(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise NotImplementedError(operator)
        # Machines that report but whose engine has not run; not those without telematics.
        since = self._usage_unused_since()
        unused = [
            ("telematics_last_seen_at", "!=", False),
            "|",
            ("usage_last_active_day", "=", False),
            ("usage_last_active_day", "<", since),
        ]
        if (operator == "=") == value:
            return unused
        return ["!", *unused]

    def action_open_telematics_usage(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_telematics_usage_action"
        )
        action["domain"] = [("equipment_id", "=", self.id)]
        action["context"] = {"default_equipment_id": self.id}
        return action

    @api.model
    def fleet_map_data(self):
        """What the fleet map draws: machines with a position, their state, the job sites.

        A machine's state is, in this order: an open telematics alert request;
        silent (not seen for the configured hours); working (its engine hours rose
        within the last hour); idle.
        """
        setting = self.env["res.config.settings"]._construction_setting
        labels = {
            "alert": self.env._("Open alert"),
            "silent": self.env._("Silent"),
            "working": self.env._("Working"),
            "idle": self.env._("Idle"),
        }
        machines = self.search([("telematics_last_seen_at", "!=", False)])
        placed = machines.filtered(lambda m: m.telematics_latitude or m.telematics_longitude)
        now = fields.Datetime.now()
        alerts = set(
            self.env["maintenance.request"]
            .search(
                [
                    ("equipment_id", "in", placed.ids),
                    ("request_origin", "=", "telematics_alert"),
                    ("stage_id.done", "=", False),
                    ("archive", "=", False),
                ]
            )
            .equipment_id.ids
        )
        working = set()
        if placed:
            # The first plausible engine hours of the last hour, per machine (one index scan each).
            self.env.cr.execute(
                """SELECT DISTINCT ON (equipment_id) equipment_id, engine_hours
                   FROM construction_telematics_reading
                   WHERE equipment_id IN %s AND at >= %s AND NOT suspect
                     AND engine_hours IS NOT NULL
                   ORDER BY equipment_id, at""",
                [tuple(placed.ids), now - timedelta(hours=1)],
            )
            first = dict(self.env.cr.fetchall())
            working = {m.id for m in placed if m.id in first and m.engine_hours > first[m.id]}
        silent_before = now - timedelta(hours=setting("telematics_silent_hours"))
        rows = []
        for machine in placed:
            if machine.id in alerts:
                state = "alert"
            elif machine.telematics_last_seen_at < silent_before:
                state = "silent"
            elif machine.id in working:
                state = "working"
            else:
                state = "idle"
            rows.append(
                {
                    "id": machine.id,
                    "name": machine.display_name,
                    "lat": machine.telematics_latitude,
                    "lon": machine.telematics_longitude,
                    "state": state,
                    "state_label": labels[state],
                    "site": machine.job_site_project_id.display_name or False,
                }
            )
        sites = []
        for project in self.env["project.project"].search([("geofence_kind", "!=", "none")]):
            fence = project._geofence()
            sites.append(
                {
                    "id": project.id,
                    "name": project.display_name,
                    "kind": fence.kind,
                    "center": fence.center,
                    "radius_m": fence.radius_m,
                    "vertices": fence.vertices,
                }
            )
        return {
            "machines": rows,
            "sites": sites,
            "without_position": len(machines) - len(placed),
            "legend": [
                {
                    "state": state,
                    "label": label,
                    "count": sum(1 for row in rows if row["state"] == state),
                }
                for state, label in labels.items()
            ],
            "tile_url": setting("telematics_map_tile_url"),
            "tile_attribution": setting("telematics_map_tile_attribution"),
        }
