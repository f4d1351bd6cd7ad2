"""Where each machine stands on each item of its maintenance plans.

Evaluated set-wise: for every machine whose counters a telematics batch moved
(``construction.telematics.processor``), and for every machine with a plan once
a day (the days triggers). One evaluation reads the machines, their schedules,
their use per day and their open plan requests in a handful of queries, writes
only the rows whose status or forecast changed, and opens the requests
that fell due.
"""

import logging
from datetime import datetime, timedelta

from markupsafe import Markup
from odoo import api, fields, models
from psycopg2 import errors as pg_errors
from psycopg2.extras import execute_values

from ..pg_settings import without_jit
from ..protocols import maintenance_forecast as forecast

_logger = logging.getLogger(__name__)

DUE_STATUSES = [("ok", "Scheduled"), ("soon", "Due soon"), ("overdue", "Overdue")]
# A machine a plan may apply to (``_plan_map``'s categories and named machines).
FOLLOWS_A_PLAN = "e.active AND (e.category_id = ANY(%(categories)s) OR e.id = ANY(%(named)s))"
# The machines a batch moved that follow a plan (by category or by name), with
# the first plausible reading of each counter inside the usage window, through
# the (equipment_id, at) index: two index probes per machine, whatever the
# history, and none for a machine without a plan. A counter the machine has not
# reported inside the window (an hour meter only machine's km) is not looked
# for: the probe would walk every reading of the window to find nothing.
MACHINES_SQL = f"""
    SELECT e.id, e.engine_hours::float8, e.engine_hours_at, e.odometer_km::float8,
           e.odometer_at, e.estimated_hours_per_day::float8, e.estimated_km_per_day::float8,
           e.company_id, e.category_id, h.at, h.engine_hours::float8, k.at, k.odometer_km::float8
    FROM maintenance_equipment e
    LEFT JOIN LATERAL (
        SELECT r.at, r.engine_hours FROM construction_telematics_reading r
        WHERE e.engine_hours_at >= %(since)s
          AND r.equipment_id = e.id AND r.at >= %(since)s
          AND r.engine_hours IS NOT NULL AND r.suspect IS NOT TRUE
        ORDER BY r.at LIMIT 1) h ON TRUE
    LEFT JOIN LATERAL (
        SELECT r.at, r.odometer_km FROM construction_telematics_reading r
        WHERE e.odometer_at >= %(since)s
          AND r.equipment_id = e.id AND r.at >= %(since)s
          AND r.odometer_km IS NOT NULL AND r.suspect IS NOT TRUE
        ORDER BY r.at LIMIT 1) k ON TRUE
    WHERE e.id = ANY(%(ids)s) AND {FOLLOWS_A_PLAN}
    ORDER BY e.id
"""
# What an evaluation stores. Progress is computed when shown, from the machine's
# meters, so that a batch moving the meters rewrites only the rows whose status,
# forecast date or rounded use per day changed.
EVALUATED = ("due_status", "forecast_date", "hours_per_day", "km_per_day", "usage_source")
# The schedules an evaluation reads: the due values (3 to 5), then
# EVALUATED (6 on), the baselines left out (progress is computed when shown, not
# here). Numbers as float8: a float from the driver, not a Decimal Odoo's cursor
# converts again, for every column of thousands of rows per batch.
SCHEDULES_SQL = """
    SELECT id, equipment_id, item_id, due_hours::float8, due_km::float8, due_date,
           due_status, forecast_date, hours_per_day::float8, km_per_day::float8, usage_source
    FROM construction_maintenance_schedule WHERE equipment_id = ANY(%s)
"""
# After a telematics batch, a row whose status and use source are unchanged is not
# rewritten while its forecast moved by at most this share of the days left to it
# (at least a day) and its use per day by at most this share: rewriting every
# schedule of every machine that reported was most of what plans cost a batch. The
# stored values never drift further than that, and the daily evaluation (and any
# other than a batch's) writes them exactly.
BATCH_TOLERANCE = 0.05


def _within_tolerance(stored, computed, today):
    """Whether a batch may leave ``stored`` (the EVALUATED values) for ``computed``."""
    status, day, hours, km, source = computed
    old_status, old_day, old_hours, old_km, old_source = stored
    if (status, source) != (old_status, old_source) or (day is None) != (old_day is None):
        return False
    if day is not None:
        slack = max(1, int(BATCH_TOLERANCE * max(0, (old_day - today).days)))
        if abs((day - old_day).days) > slack:
            return False
    for new, old in ((hours, old_hours), (km, old_km)):
        if (new is None) != (old is None):
            return False
        if new is not None and abs(new - old) > BATCH_TOLERANCE * abs(old):
            return False
    return True


class ConstructionMaintenanceSchedule(models.Model):
    _name = "construction.maintenance.schedule"
    _description = "Upcoming preventive maintenance of a machine"
    _order = "forecast_date, id"
    _rec_name = "item_id"

    equipment_id = fields.Many2one(
        "maintenance.equipment", required=True, ondelete="cascade", readonly=True
    )
    item_id = fields.Many2one(
        "construction.maintenance.plan.item",
        string="Task",
        required=True,
        ondelete="cascade",
        readonly=True,
        index=True,
    )
    plan_id = fields.Many2one(related="item_id.plan_id", store=True)
    company_id = fields.Many2one(related="equipment_id.company_id", store=True, index=True)
    maintenance_team_id = fields.Many2one(
        related="equipment_id.maintenance_team_id", string="Team", store=True
    )
    job_site_project_id = fields.Many2one(
        related="equipment_id.job_site_project_id", string="Job site", store=True
    )
    combine = fields.Selection(related="item_id.combine")
    # Where the interval counts from: the last completion (or the start of tracking).
    baseline_hours = fields.Float(string="Last service (h)", digits=(16, 2), readonly=True)
    baseline_km = fields.Float(string="Last service (km)", digits=(16, 1), readonly=True)
    baseline_date = fields.Date(string="Last service on", readonly=True)
    last_request_id = fields.Many2one(
        "maintenance.request", string="Last completed by", readonly=True, ondelete="set null"
    )
    due_hours = fields.Float(string="Due at (h)", digits=(16, 2), readonly=True)
    due_km = fields.Float(string="Due at (km)", digits=(16, 1), readonly=True)
    due_date = fields.Date(string="Due on", readonly=True)
    hours_per_day = fields.Float(string="Engine hours per day", digits=(16, 1), readonly=True)
    km_per_day = fields.Float(string="Km per day", digits=(16, 0), readonly=True)
    usage_source = fields.Selection(
        [("readings", "Readings history"), ("estimate", "Estimate"), ("none", "Unknown")],
        string="Use per day from",
        readonly=True,
        default="none",
    )
    forecast_date = fields.Date(string="Forecast due date", readonly=True, index=True)
    progress = fields.Float(string="Progress to due (%)", compute="_compute_progress")
    due_status = fields.Selection(DUE_STATUSES, default="ok", readonly=True, index=True)
    open_request_id = fields.Many2one(
        "maintenance.request", string="Open request", compute="_compute_open_request_id"
    )

    _sql_constraints = [
        (
            "equipment_item_uniq",
            "unique(equipment_id, item_id)",
            "A machine follows each plan item once.",
        ),
    ]

    @api.depends(
        "equipment_id.engine_hours", "equipment_id.odometer_km", "baseline_hours", "due_hours"
    )
    def _compute_progress(self):
        today = fields.Date.context_today(self)
        for schedule in self:
            shape = schedule.item_id._forecast_item()
            baseline = {
                "hours": schedule.baseline_hours,
                "km": schedule.baseline_km,
                "days": schedule.baseline_date or today,
            }
            machine = {
                "hours": schedule.equipment_id.engine_hours,
                "km": schedule.equipment_id.odometer_km,
            }
            due = self._due_of(shape, schedule.due_hours, schedule.due_km, schedule.due_date)
            result = forecast.evaluate(shape, baseline, due, machine, today)
            schedule.progress = round(min(result["progress"], 9.99) * 100, 1)

    def _compute_open_request_id(self):
        requests = self.env["maintenance.request"].search(
            [("plan_open", "=", True), ("equipment_id", "in", self.equipment_id.ids)]
        )
        by_key = {(r.equipment_id.id, r.plan_item_id.id): r for r in requests}
        for schedule in self:
            schedule.open_request_id = by_key.get(
                (schedule.equipment_id.id, schedule.item_id.id), False
            )

    # -- evaluation ----------------------------------------------------------
    @api.model
    def _cron_evaluate(self, chunk=1000):
        """Daily: days triggers and forecasts move with the calendar, not with readings."""
        plans = self.env["construction.maintenance.plan"]._plan_map()
        if not plans["items"]:
            return 0
        # The machines a plan may apply to; _evaluate matches them to the plans'
        # items (and companies), as after a batch.
        self.env.cr.execute(
            f"SELECT e.id FROM maintenance_equipment e WHERE {FOLLOWS_A_PLAN} ORDER BY e.id",
            {"categories": plans["categories"], "named": plans["machines"]},
        )
        equipment_ids = [row[0] for row in self.env.cr.fetchall()]
        for start in range(0, len(equipment_ids), chunk):
            self._evaluate(equipment_ids[start : start + chunk])
            self.env["ir.cron"]._notify_progress(
                done=min(start + chunk, len(equipment_ids)),
                remaining=max(0, len(equipment_ids) - start - chunk),
            )
        return len(equipment_ids)

    @api.model
    def _evaluate(self, equipment_ids, today=None, tolerant=False):
        """Bring the schedules of ``equipment_ids`` up to date; open requests that fell due.

        ``tolerant`` (after a telematics batch): a row whose forecast and use per day
        moved within ``BATCH_TOLERANCE`` is left as stored; statuses, and so the
        requests they open, always follow the exact computation.

        Returns the requests opened. The plans come from a cache
        (``construction.maintenance.plan._plan_map``): a batch reads the machines
        that follow a plan with the start of their usage window, then their
        schedules (two queries), and writes only what changed.
        """
        Request = self.env["maintenance.request"]
        if not equipment_ids:
            return Request
        plans = self.env["construction.maintenance.plan"]._plan_map()
        if not plans["items"]:
            return Request  # no active plan: no query at all
        self = self.sudo()
        cr = self.env.cr
        today = today or fields.Date.context_today(self)
        machines = self._machines(sorted(set(equipment_ids)), plans, today)
        by_category, by_machine = plans["by_category"], plans["by_machine"]
        pairs = []
        for equipment_id, machine in machines.items():
            company_id = machine["company_id"]
            item_ids = by_category.get((company_id, machine["category_id"]), ())
            named = by_machine.get((company_id, equipment_id))
            if named:
                item_ids = sorted({*item_ids, *named})
            pairs.extend((equipment_id, item_id) for item_id in item_ids)
        if not pairs:
            return Request
        machines = {equipment_id: machines[equipment_id] for equipment_id, _item in pairs}
        machine_ids = list(machines)
        items = plans["items"]
        self.flush_model()
        cr.execute(SCHEDULES_SQL, [machine_ids])
        rows = {(row[1], row[2]): row for row in cr.fetchall()}
        missing = [pair for pair in pairs if pair not in rows]
        if missing:
            shapes = {item_id: shape for item_id, (shape, _horizon) in items.items()}
            self._start_tracking(missing, machines, shapes, today)
            return self._evaluate(equipment_ids, today, tolerant)
        status_and_forecast, due_of = forecast.status_and_forecast, self._due_of
        horizon_end = {
            item_id: today + timedelta(days=horizon) if horizon else None
            for item_id, (_shape, horizon) in items.items()
        }
        results, updates = {}, []  # results: the due pairs only
        for pair in pairs:
            row = rows[pair]
            machine = machines[pair[0]]
            shape = items[pair[1]][0]
            due = due_of(shape, *row[3:6])
            status, day = status_and_forecast(shape, due, machine, today)
            if status == "ok" and day and horizon_end[pair[1]] and day <= horizon_end[pair[1]]:
                status = "soon"
            if status != "ok":
                results[pair] = (due, {"status": status, "forecast": day})
            values = (status, day, *machine["stored_usage"])
            if values != row[6:] and not (tolerant and _within_tolerance(row[6:], values, today)):
                updates.append((row[0], *values))
        if updates:
            execute_values(
                cr._obj,
                """UPDATE construction_maintenance_schedule s
                   SET due_status = v.due_status, forecast_date = v.forecast_date,
                       hours_per_day = v.hours_per_day, km_per_day = v.km_per_day,
                       usage_source = v.usage_source, write_date = now() at time zone 'UTC'
                   FROM (VALUES %s) AS v(id, due_status, forecast_date,
                                         hours_per_day, km_per_day, usage_source)
                   WHERE s.id = v.id""",
                updates,
                template="(%s, %s::varchar, %s::date, %s::float8, %s::float8, %s::varchar)",
                page_size=len(updates),  # one statement, one join, for the whole batch
            )
            self.invalidate_model(list(EVALUATED))
        return self._open_requests(results, machines)

    def _machines(self, machine_ids, plans, today):
        """The active machines among ``machine_ids`` that a plan may apply to, with what
        evaluation reads of them and their average use per day (see ``_usage``)."""
        window = self.env["res.config.settings"]._construction_setting("maintenance_usage_days")
        self.env["maintenance.equipment"].flush_model(
            [
                "engine_hours",
                "engine_hours_at",
                "odometer_km",
                "odometer_at",
                "estimated_hours_per_day",
                "estimated_km_per_day",
                "category_id",
                "active",
            ]
        )
        cr = self.env.cr
        # Without JIT: the probe of a counter a machine does not report (the km of an
        # hour-meter-only fleet) is never run, but the planner costs it as a walk
        # through the window's readings, so that past a few weeks of history the
        # statement's estimate passes jit_above_cost and PostgreSQL compiled it
        # (16 ms, measured) before running it (3 ms) after every telematics batch.
        with without_jit(cr):
            cr.execute(
                MACHINES_SQL,
                {
                    "ids": machine_ids,
                    "since": datetime.combine(today - timedelta(days=window), datetime.min.time()),
                    "categories": plans["categories"],
                    "named": plans["machines"],
                },
            )
            rows = cr.fetchall()
        machines = {}
        for row in rows:
            machine = {
                "hours": row[1] or 0.0,
                "hours_at": row[2],
                "km": row[3] or 0.0,
                "km_at": row[4],
                "company_id": row[7],
                "category_id": row[8],
            }
            self._usage(machine, row[9:], (row[5] or 0.0, row[6] or 0.0))
            machines[row[0]] = machine
        return machines

    @staticmethod
    def _usage(machine, start, estimate):
        """Average use per day over the window, else the estimate typed on the machine.

        ``start``: (at, engine hours, at, km) of the window's first plausible readings.
        """
        hours_at, hours, km_at, km = start
        per_day = {
            "hours": forecast.usage_per_day(hours, hours_at, machine["hours"], machine["hours_at"]),
            "km": forecast.usage_per_day(km, km_at, machine["km"], machine["km_at"]),
        }
        estimate_hours, estimate_km = estimate
        source = "readings" if any(value is not None for value in per_day.values()) else None
        if per_day["hours"] is None and estimate_hours:
            per_day["hours"], source = estimate_hours, source or "estimate"
        if per_day["km"] is None and estimate_km:
            per_day["km"], source = estimate_km, source or "estimate"
        machine["hours_per_day"] = per_day["hours"]
        machine["km_per_day"] = per_day["km"]
        machine["usage_source"] = source or "none"
        # As stored (the fields' digits), to compare with the stored row's last
        # three EVALUATED columns.
        machine["stored_usage"] = (
            round(per_day["hours"] or 0.0, 1),
            float(round(per_day["km"] or 0.0)),
            machine["usage_source"],
        )

    @staticmethod
    def _due_of(shape, due_hours, due_km, due_date):
        """The due values of the intervals ``shape`` has."""
        due = {}
        if shape["interval"]["hours"]:
            due["hours"] = due_hours
        if shape["interval"]["km"]:
            due["km"] = due_km
        if shape["interval"]["days"]:
            due["days"] = due_date
        return due

    def _start_tracking(self, pairs, machines, shapes, today):
        """Schedules for (machine, item) pairs seen for the first time.

        With no completion recorded, the machine is taken as serviced on schedule:
        the next multiple of each interval above its meter is due (see
        ``maintenance_forecast.initial_due``), and the days count from today.
        """
        values = []
        for equipment_id, item_id in pairs:
            machine, shape = machines[equipment_id], shapes[item_id]
            row = {"equipment_id": equipment_id, "item_id": item_id, "baseline_date": today}
            for meter in forecast.METERS:
                interval = shape["interval"][meter]
                if not interval:
                    continue
                due = forecast.initial_due(machine[meter], interval, shape["first"][meter])
                row[f"due_{meter}"] = due
                row[f"baseline_{meter}"] = max(0.0, due - interval)
            if shape["interval"]["days"]:
                row["due_date"] = today + timedelta(days=shape["interval"]["days"])
            values.append(row)
        self.create(values)
        self.flush_model()

    def _open_requests(self, results, machines):
        """One preventive request per due (machine, item) without an open one."""
        Request = self.env["maintenance.request"]
        due_pairs = list(results)
        if not due_pairs:
            return Request
        items = self.env["construction.maintenance.plan.item"].browse(
            sorted({item_id for _e, item_id in due_pairs})
        )
        Request.flush_model(["plan_open"])  # a request closed or cancelled in this transaction
        self.env.cr.execute(
            """SELECT equipment_id, plan_item_id FROM maintenance_request
               WHERE plan_open AND equipment_id = ANY(%s)""",
            [sorted({equipment_id for equipment_id, _i in due_pairs})],
        )
        open_pairs = set(self.env.cr.fetchall())
        items_by_id = {item.id: item for item in items}
        to_create = []
        for pair in due_pairs:
            equipment_id, item_id = pair
            if pair in open_pairs:
                continue
            item = items_by_id[item_id]
            due, result = results[pair]
            if self._covered(equipment_id, item, due, results):
                continue
            to_create.append(self._request_values(machines[equipment_id], pair, item, due, result))
        if not to_create:
            return Request
        Request = Request.with_context(
            mail_create_nolog=True, mail_notrack=True, tracking_disable=True
        )
        try:
            with self.env.cr.savepoint():
                created = Request.create(to_create)
                created.flush_recordset()
        except pg_errors.UniqueViolation:
            # Another transaction opened one of them first: open the others one by one.
            created = Request
            for values in to_create:
                try:
                    with self.env.cr.savepoint():
                        request = Request.create(values)
                        request.flush_recordset()
                        created |= request
                except pg_errors.UniqueViolation:
                    _logger.info(
                        "plan request for machine %s item %s already opened by another worker",
                        values["equipment_id"],
                        values["plan_item_id"],
                    )
        self._queue_for_odyssee(created)
        return created

    @staticmethod
    def _covered(equipment_id, item, due, results):
        """A larger package of the same machine due at the same point replaces this item."""
        for package in item._ancestors():
            other = results.get((equipment_id, package.id))  # results hold due pairs only
            if other and forecast.is_covered(due, other[0], item._forecast_item()["soon"]):
                return True
        return False

    def _request_values(self, machine, pair, item, due, result):
        equipment_id, item_id = pair
        combine = dict(item._fields["combine"]._description_selection(self.env))[item.combine]
        now = [f"{machine['hours']:,.1f} h"] if "hours" in due else []
        if "km" in due:
            now.append(f"{machine['km']:,.0f} km")
        lines = [
            self.env._(
                "Due at %(due)s (%(combine)s).",
                due=forecast.due_description(due, item.combine),
                combine=combine.lower(),
            ),
        ]
        if now:
            lines.append(self.env._("Meters now: %(now)s.", now=", ".join(now)))
        if result["forecast"]:
            lines.append(
                self.env._("Forecast due date: %(day)s.", day=result["forecast"].isoformat())
            )
        description = Markup("").join(Markup("<p>%s</p>") % line for line in lines)
        if item.instructions:
            description += item.instructions
        return {
            "name": item.name,
            "equipment_id": equipment_id,
            "company_id": machine["company_id"],
            "maintenance_type": "preventive",
            "request_origin": "usage_threshold",
            "plan_item_id": item_id,
            "priority": "2" if result["status"] == "overdue" else "1",
            "description": description,
        }

    def _queue_for_odyssee(self, requests):
        to_send = requests.filtered(lambda r: r.plan_item_id.plan_id.send_to_odyssee)
        if not to_send:
            return
        companies = (
            self.env["construction.odyssee.backend"]
            .sudo()
            .search([("company_id", "in", to_send.company_id.ids)])
            .company_id
        )
        to_send = to_send.filtered(lambda r: r.company_id in companies)
        if to_send:
            to_send._set_odyssee_push_state("pending")
            self.env.ref("construction_asset_sync.ir_cron_odyssee_sync").sudo()._trigger()

    # -- completion ----------------------------------------------------------
    @api.model
    def _record_completion(self, requests):
        """Done plan requests: the machine's meters now become the items' new baseline.

        Completing a package completes the items it includes.
        """
        self = self.sudo()
        for request in requests:
            equipment = request.equipment_id
            items = request.plan_item_id | request.plan_item_id._descendants()
            schedules = self.search(
                [("equipment_id", "=", equipment.id), ("item_id", "in", items.ids)]
            )
            day = request.close_date or fields.Date.context_today(self)
            for schedule in schedules:
                baseline = {
                    "hours": equipment.engine_hours,
                    "km": equipment.odometer_km,
                    "days": day,
                }
                due = forecast.next_due(schedule.item_id._forecast_item(), baseline)
                schedule.write(
                    {
                        "baseline_hours": baseline["hours"],
                        "baseline_km": baseline["km"],
                        "baseline_date": day,
                        "last_request_id": request.id,
                        "due_hours": due.get("hours", 0.0),
                        "due_km": due.get("km", 0.0),
                        "due_date": due.get("days", False),
                    }
                )
            request.message_post(
                body=self.env._(
                    "Completion recorded at %(hours)s h, %(km)s km on %(day)s; next due: %(due)s.",
                    hours=f"{equipment.engine_hours:,.1f}",
                    km=f"{equipment.odometer_km:,.0f}",
                    day=day.isoformat(),
                    due=forecast.due_description(
                        forecast.next_due(
                            request.plan_item_id._forecast_item(),
                            {
                                "hours": equipment.engine_hours,
                                "km": equipment.odometer_km,
                                "days": day,
                            },
                        ),
                        request.plan_item_id.combine,
                    ),
                ),
                subtype_xmlid="mail.mt_note",
            )
        self._evaluate(requests.equipment_id.ids)
