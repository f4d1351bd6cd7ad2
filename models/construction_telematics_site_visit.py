"""Site visits: a machine's arrivals on and departures from job sites, from its positions.

The processor hands each batch's readings, and the positions its alerts carry,
to ``_follow_positions`` (one call per batch). Positions are replayed in time
order against the geofences of the machine's company with hysteresis
(``protocols/geofence.py``); a change of site closes the open visit, opens the
next one and sets the machine's job site and location. A job site set by hand
stays until the machine's next arrival or departure.
"""

from collections import defaultdict

from odoo import api, fields, models
from psycopg2.extras import execute_values

from ..protocols import geofence
from .construction_telematics_processor import READING_COLUMNS

AT, LAT, LON, SUSPECT = (READING_COLUMNS.index(name) for name in ("at", "lat", "lon", "suspect"))


class ConstructionTelematicsSiteVisit(models.Model):
    _name = "construction.telematics.site.visit"
    _description = "Machine visit to a job site"
    _order = "arrived_at desc, id desc"
    _rec_name = "project_id"

    equipment_id = fields.Many2one(
        "maintenance.equipment", string="Machine", required=True, ondelete="cascade", index=True
    )
    project_id = fields.Many2one(
        "project.project", string="Job site", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="equipment_id.company_id", store=True)
    arrived_at = fields.Datetime(required=True, readonly=True)
    left_at = fields.Datetime(readonly=True)
    duration_hours = fields.Float(
        string="Hours on site",
        compute="_compute_duration_hours",
        store=True,
        help="From arrival to departure; empty while the machine is still there.",
    )

    @api.depends("arrived_at", "left_at")
    def _compute_duration_hours(self):
        for visit in self:
            if visit.left_at and visit.arrived_at:
                seconds = (visit.left_at - visit.arrived_at).total_seconds()
                visit.duration_hours = seconds / 3600
            else:
                visit.duration_hours = 0.0

    @api.model
    def _fences_by_company(self, company_ids):
        projects = (
            self.env["project.project"]
            .sudo()
            .search(
                [
                    ("geofence_kind", "!=", "none"),
                    ("company_id", "in", [*company_ids, False]),
                ]
            )
        )
        fences = defaultdict(list)
        for project in projects:
            fence = project._geofence()
            for company_id in company_ids if not project.company_id else [project.company_id.id]:
                fences[company_id].append(fence)
        return fences

    @api.model
    def _follow_positions(self, reading_rows, alert_positions=()):
        """Replay the batch's plausible positions newer than each machine's last one.

        ``alert_positions`` are (machine, at, lat, lon) of the batch's alerts, which
        follow the same path as the readings' positions.
        """
        positions = defaultdict(list)
        for row in reading_rows:
            if not row[SUSPECT] and row[LAT] is not None and row[LON] is not None:
                positions[row[0]].append((row[AT], row[LAT], row[LON]))
        for equipment_id, at, lat, lon in alert_positions:
            positions[equipment_id].append((at, lat, lon))
        if not positions:
            return
        cr = self.env.cr
        self.env["maintenance.equipment"].flush_model(
            ["telematics_site_project_id", "telematics_position_at", "company_id"]
        )
        cr.execute(
            """SELECT id, company_id, telematics_site_project_id, telematics_position_at
               FROM maintenance_equipment WHERE id IN %s""",
            [tuple(positions)],
        )
        machines = cr.fetchall()
        company_ids = sorted({company_id for _id, company_id, _s, _a in machines if company_id})
        fences = self._fences_by_company(company_ids)
        hysteresis = self.env["res.config.settings"]._construction_setting(
            "telematics_geofence_hysteresis_m"
        )
        watermarks, moves = [], []
        for equipment_id, company_id, site_id, position_at in machines:
            current, last_at, last_position = site_id or None, position_at, None
            for at, lat, lon in sorted(positions[equipment_id]):
                if last_at and at <= last_at:
                    continue  # older than a position already followed: history only
                last_at = at
                if (lat, lon) == last_position:
                    # A machine standing still: the site it is on after a position is
                    # where that position leaves it again (next_site is idempotent).
                    continue
                last_position = (lat, lon)
                site = geofence.next_site(current, fences.get(company_id, []), lat, lon, hysteresis)
                if site != current:
                    moves.append((equipment_id, at, current, site))
                    current = site
            if last_at != position_at:
                watermarks.append((equipment_id, last_at, current, current is None))
        if watermarks:
            execute_values(
                cr._obj,
                """UPDATE maintenance_equipment e
                   SET telematics_position_at = v.at, telematics_site_project_id = v.site,
                       telematics_outside_sites = v.outside
                   FROM (VALUES %s) AS v(id, at, site, outside) WHERE e.id = v.id""",
                watermarks,
                template="(%s, %s::timestamp, %s::int, %s::bool)",
            )
            self.env["maintenance.equipment"].invalidate_model(
                ["telematics_position_at", "telematics_site_project_id", "telematics_outside_sites"]
            )
        if moves:
            self._record_moves(moves)
            # Readings already rolled up after a move now belong to another site.
            self.env["construction.telematics.usage"]._mark_dirty_from(
                (equipment_id, at) for equipment_id, at, _left, _site in moves
            )

    def _record_moves(self, moves):
        """Close and open visits, and move each machine's job site to where it went."""
        open_visits = {
            (visit.equipment_id.id, visit.project_id.id): visit
            for visit in self.search(
                [("equipment_id", "in", list({m[0] for m in moves})), ("left_at", "=", False)]
            )
        }
        to_create = []
        last_site = {}
        for equipment_id, at, left, arrived in moves:
            if left:
                # A stored visit, or one this batch opened (still a dict of values).
                visit = open_visits.pop((equipment_id, left), None)
                if isinstance(visit, dict):
                    visit["left_at"] = at
                elif visit:
                    visit.left_at = at
            if arrived:
                values = {"equipment_id": equipment_id, "project_id": arrived, "arrived_at": at}
                to_create.append(values)
                open_visits[(equipment_id, arrived)] = values
            last_site[equipment_id] = arrived
        if to_create:
            self.create(to_create)
        Equipment = self.env["maintenance.equipment"]
        for equipment_id, site_id in last_site.items():
            values = {"job_site_project_id": site_id or False}
            if site_id:
                values["location"] = self.env["project.project"].browse(site_id).display_name
            Equipment.browse(equipment_id).write(values)
