"""Daily utilisation per machine, rolled up set-wise from the readings history.

Each processed batch marks its machines dirty from their earliest new reading
(``_mark_dirty``, one statement per batch); the scheduled action *Telematics:
roll up daily utilisation* then recomputes, per dirty machine, every day from
the marked one on: a handful of queries for a whole chunk of machines, never
one per reading. The definitions are in ``protocols/usage_rollup.py``.

Each rollup keeps the counters' last values of its day, so the next day (and a
recomputation after the raw readings are purged) rises from them exactly.
"""

import logging
import threading
import time
from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from psycopg2.extras import execute_values

from ..protocols import usage_rollup

_logger = logging.getLogger(__name__)

# A rollup chunk holds its machines' lock, and a processing batch of new readings
# for one of them waits until the chunk commits: chunks are sized to take about
# ROLLUP_CHUNK_SECONDS, as the chunk before went. One chunk of 200 machines after
# a burst of 100,000 readings held them 4.7 s, while the benchmark's readings
# run took 8 s instead of 5.
ROLLUP_CHUNK_SECONDS = 0.2
ROLLUP_FIRST_CHUNK = 10
ROLLUP_MAX_CHUNK = 200


def next_rollup_chunk(machines, seconds):
    """How many machines the next rollup chunk takes, after ``machines`` took ``seconds``."""
    scaled = int(machines * ROLLUP_CHUNK_SECONDS / max(seconds, 0.001))
    # At most four times as many: a quick chunk of machines with few readings
    # says little about the next ones.
    return max(1, min(ROLLUP_MAX_CHUNK, machines * 4, scaled))


# The working window per weekday as two int[14] arrays, indexed by Odoo's week
# type (0/1, resource.calendar.attendance.get_week_type) * 7 + ISO weekday
# (1 = Monday); NULL = weekend. One-week calendars repeat their week.
# Each reading carries the job site of the latest site visit begun at or before it
# (unless that visit ended): the visits are merged into the readings' time order
# and the latest one carried forward, an equality join rather than a range join.
AGGREGATE_SQL = """
WITH ranges(equipment_id, start_at, tz, seed_engine, seed_idle, seed_level, win_start, win_end)
    AS (VALUES %s),
visits AS (
    SELECT v.equipment_id, v.project_id, v.arrived_at, v.left_at,
           row_number() OVER (PARTITION BY v.equipment_id ORDER BY v.arrived_at, v.id) AS seq
    FROM construction_telematics_site_visit v
    WHERE v.equipment_id IN (SELECT equipment_id FROM ranges)
),
stream AS (
    SELECT x.*, max(x.visit_seq) OVER (PARTITION BY x.equipment_id ORDER BY x.at, x.kind
                                       ROWS UNBOUNDED PRECEDING) AS seq
    FROM (
        SELECT r.equipment_id, r.at, 1 AS kind, NULL::bigint AS visit_seq, r.engine_hours,
               r.idle_hours, r.odometer_km, r.fuel_used_l, r.fuel_level_pct
        FROM ranges g
        JOIN construction_telematics_reading r
          ON r.equipment_id = g.equipment_id AND r.at >= g.start_at AND NOT r.suspect
        UNION ALL
        SELECT equipment_id, arrived_at, 0, seq, NULL, NULL, NULL, NULL, NULL FROM visits
    ) x
),
pts AS (
    SELECT s.equipment_id, s.at, s.engine_hours, s.idle_hours, s.odometer_km, s.fuel_used_l,
           s.fuel_level_pct, (s.at AT TIME ZONE 'UTC') AT TIME ZONE g.tz AS local_at,
           CASE WHEN v.left_at IS NULL OR s.at < v.left_at THEN v.project_id END AS site
    FROM stream s
    JOIN ranges g ON g.equipment_id = s.equipment_id
    LEFT JOIN visits v ON v.equipment_id = s.equipment_id AND v.seq = s.seq
    WHERE s.kind = 1
),
engine AS (
    SELECT p.equipment_id, p.at, p.local_at, p.site, g.win_start, g.win_end,
           p.engine_hours - COALESCE(lag(p.engine_hours) OVER w, g.seed_engine, p.engine_hours)
               AS rise
    FROM pts p JOIN ranges g ON g.equipment_id = p.equipment_id
    WHERE p.engine_hours IS NOT NULL
    WINDOW w AS (PARTITION BY p.equipment_id ORDER BY p.at)
),
engine_days AS (
    SELECT e.equipment_id, e.local_at::date AS day, sum(e.rise) AS engine_rise,
           COALESCE(sum(e.rise) FILTER (
               WHERE e.win_start[c.dow] IS NOT NULL
                 AND NOT (c.secs >= e.win_start[c.dow] AND c.secs < e.win_end[c.dow])), 0)
               AS out_of_hours_rise,
           COALESCE(sum(e.rise) FILTER (WHERE e.win_start[c.dow] IS NULL), 0) AS weekend_rise,
           min(e.at) FILTER (WHERE e.rise > 0) AS first_activity_at,
           max(e.at) FILTER (WHERE e.rise > 0) AS last_activity_at
    FROM engine e,
         LATERAL (SELECT extract(isodow FROM e.local_at)::int
                         + 7 * ((e.local_at::date - date '0001-01-01') / 7 %% 2) AS dow,
                         extract(epoch FROM e.local_at::time) AS secs) c
    GROUP BY 1, 2
),
idle AS (
    SELECT p.equipment_id, p.local_at, p.site,
           p.idle_hours - COALESCE(lag(p.idle_hours) OVER w, g.seed_idle, p.idle_hours) AS rise
    FROM pts p JOIN ranges g ON g.equipment_id = p.equipment_id
    WHERE p.idle_hours IS NOT NULL
    WINDOW w AS (PARTITION BY p.equipment_id ORDER BY p.at)
),
site_days AS (
    SELECT equipment_id, day, array_agg(site ORDER BY site NULLS FIRST) AS sites,
           array_agg(engine ORDER BY site NULLS FIRST) AS site_engine,
           array_agg(idle ORDER BY site NULLS FIRST) AS site_idle
    FROM (
        SELECT equipment_id, local_at::date AS day, site, sum(engine) AS engine,
               sum(idle) AS idle
        FROM (
            SELECT equipment_id, local_at, site, rise AS engine, 0 AS idle FROM engine
            UNION ALL
            SELECT equipment_id, local_at, site, 0, rise FROM idle
        ) rises
        GROUP BY 1, 2, 3
    ) per_site
    GROUP BY 1, 2
),
level_days AS (
    SELECT equipment_id, local_at::date AS day, sum(fuel_drop) AS level_drops
    FROM (
        SELECT p.equipment_id, p.local_at,
               GREATEST(0, COALESCE(lag(p.fuel_level_pct) OVER w, g.seed_level, p.fuel_level_pct)
                           - p.fuel_level_pct) AS fuel_drop
        FROM pts p JOIN ranges g ON g.equipment_id = p.equipment_id
        WHERE p.fuel_level_pct IS NOT NULL
        WINDOW w AS (PARTITION BY p.equipment_id ORDER BY p.at)
    ) drops
    GROUP BY 1, 2
),
pt_days AS (
    SELECT equipment_id, local_at::date AS day, count(*) AS reading_count,
           (array_agg(idle_hours ORDER BY at)
               FILTER (WHERE idle_hours IS NOT NULL))[1] AS first_idle,
           (array_agg(odometer_km ORDER BY at)
               FILTER (WHERE odometer_km IS NOT NULL))[1] AS first_odometer,
           (array_agg(fuel_used_l ORDER BY at)
               FILTER (WHERE fuel_used_l IS NOT NULL))[1] AS first_fuel_used,
           (array_agg(engine_hours ORDER BY at DESC)
               FILTER (WHERE engine_hours IS NOT NULL))[1] AS last_engine,
           (array_agg(idle_hours ORDER BY at DESC)
               FILTER (WHERE idle_hours IS NOT NULL))[1] AS last_idle,
           (array_agg(odometer_km ORDER BY at DESC)
               FILTER (WHERE odometer_km IS NOT NULL))[1] AS last_odometer,
           (array_agg(fuel_used_l ORDER BY at DESC)
               FILTER (WHERE fuel_used_l IS NOT NULL))[1] AS last_fuel_used,
           (array_agg(fuel_level_pct ORDER BY at DESC)
               FILTER (WHERE fuel_level_pct IS NOT NULL))[1] AS last_fuel_level
    FROM pts
    GROUP BY 1, 2
)
SELECT d.equipment_id, d.day, d.reading_count, COALESCE(e.engine_rise, 0),
       COALESCE(e.out_of_hours_rise, 0), COALESCE(e.weekend_rise, 0),
       e.first_activity_at, e.last_activity_at, COALESCE(l.level_drops, 0),
       d.first_idle, d.first_odometer, d.first_fuel_used, d.last_engine, d.last_idle,
       d.last_odometer, d.last_fuel_used, d.last_fuel_level,
       s.sites, s.site_engine, s.site_idle
FROM pt_days d
LEFT JOIN engine_days e ON e.equipment_id = d.equipment_id AND e.day = d.day
LEFT JOIN level_days l ON l.equipment_id = d.equipment_id AND l.day = d.day
LEFT JOIN site_days s ON s.equipment_id = d.equipment_id AND s.day = d.day
ORDER BY d.equipment_id, d.day
"""
SITE_FIELDS = len(usage_rollup.DayAggregate._fields) + 1  # where the per-site arrays begin

END_COLUMNS = tuple(f"end_{name}" for name in usage_rollup.END_FIELDS)
ROLLUP_COLUMNS = (
    "equipment_id",
    "company_id",
    "category_id",
    "job_site_project_id",
    "day",
    "reading_count",
    "engine_hours",
    "idle_hours",
    "idle_share",
    "distance_km",
    "fuel_used_l",
    "fuel_source",
    "out_of_hours_hours",
    "weekend_hours",
    "first_activity_at",
    "last_activity_at",
    "idle_exception",
    *END_COLUMNS,
)
SITE_COLUMNS = (
    "equipment_id",
    "company_id",
    "category_id",
    "day",
    "project_id",
    "engine_hours",
    "idle_hours",
)
# An engine that ran less than this is not judged on its idle share.
IDLE_EXCEPTION_MIN_HOURS = 1.0


class ConstructionTelematicsUsage(models.Model):
    _name = "construction.telematics.usage"
    _description = "Daily machine utilisation"
    _order = "day desc, equipment_id"
    _rec_name = "day"
    _log_access = False

    equipment_id = fields.Many2one(
        "maintenance.equipment", string="Machine", required=True, ondelete="cascade"
    )
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    category_id = fields.Many2one("maintenance.equipment.category", readonly=True)
    job_site_project_id = fields.Many2one(
        "project.project",
        string="Assigned job site",
        readonly=True,
        help="The machine's job site when the day was rolled up. The hours spent on each "
        "job site, from the site visits, are in Hours per job site.",
    )
    day = fields.Date(required=True, readonly=True, help="Local day in the company's time zone.")
    reading_count = fields.Integer(string="Readings", readonly=True)
    engine_hours = fields.Float(string="Engine hours", digits=(16, 2), readonly=True)
    idle_hours = fields.Float(string="Idle hours", digits=(16, 2), readonly=True)
    # A float, not a numeric: a ratio, rounded once to 0.1 %.
    idle_share = fields.Float(string="Idle share (%)", readonly=True, aggregator="avg")
    distance_km = fields.Float(string="Distance (km)", digits=(16, 1), readonly=True)
    fuel_used_l = fields.Float(string="Fuel used (L)", digits=(16, 1), readonly=True)
    fuel_source = fields.Selection(
        [("counter", "Fuel counter"), ("level", "Fuel level and tank")],
        readonly=True,
        help="Cumulative fuel from the sender, or drops of the fuel level times the tank size.",
    )
    out_of_hours_hours = fields.Float(
        string="Out-of-hours hours",
        digits=(16, 2),
        readonly=True,
        help="Engine hours outside the working hours of the company calendar, on working days.",
    )
    weekend_hours = fields.Float(
        digits=(16, 2), readonly=True, help="Engine hours on days without working hours."
    )
    first_activity_at = fields.Datetime(string="First activity", readonly=True, aggregator="min")
    last_activity_at = fields.Datetime(string="Last activity", readonly=True, aggregator="max")
    idle_exception = fields.Boolean(
        string="Idle share exceeded", readonly=True, help="Idle share above the threshold."
    )
    # Where the next day rises from; exact decimals like the readings (numeric columns).
    end_engine_hours = fields.Float(digits=(16, 4), readonly=True, aggregator=None)
    end_idle_hours = fields.Float(digits=(16, 4), readonly=True, aggregator=None)
    end_odometer_km = fields.Float(digits=(16, 4), readonly=True, aggregator=None)
    end_fuel_used_l = fields.Float(digits=(16, 4), readonly=True, aggregator=None)
    end_fuel_level_pct = fields.Float(digits=(16, 4), readonly=True, aggregator=None)

    _sql_constraints = [
        ("equipment_day_uniq", "unique(equipment_id, day)", "One rollup per machine and day."),
    ]

    # -- marking -------------------------------------------------------------
    @api.model
    def _mark_dirty(self, reading_rows):
        """Mark machines for rollup from their earliest reading in ``reading_rows``.

        Called by the processor once per batch with its history rows (machine
        first, time fourth); the machines are already locked by the batch.
        """
        self._mark_dirty_from((row[0], row[3]) for row in reading_rows)

    def _mark_dirty_from(self, moments):
        """Mark machines for rollup from the earliest of their ``(machine, time)`` pairs."""
        earliest = {}
        for equipment_id, at in moments:
            if equipment_id not in earliest or at < earliest[equipment_id]:
                earliest[equipment_id] = at
        if not earliest:
            return
        execute_values(
            self.env.cr._obj,
            """UPDATE maintenance_equipment e
               SET usage_dirty_from = LEAST(e.usage_dirty_from, v.at)
               FROM (VALUES %s) AS v(id, at)
               WHERE e.id = v.id""",
            sorted(earliest.items()),
            template="(%s, %s::timestamp)",
        )
        self.env["maintenance.equipment"].invalidate_model(["usage_dirty_from"])

    # -- computing ------------------------------------------------------------
    @api.model
    def _company_calendar(self, company):
        """(time zone, (even week's, odd week's) windows) of ``company``'s working calendar."""
        calendar = company.resource_calendar_id
        tz = calendar.tz or company.partner_id.tz or "UTC"
        windows = usage_rollup.calendar_windows(
            (
                (att.dayofweek, att.hour_from, att.hour_to, att.week_type)
                for att in calendar.attendance_ids
                # An attendance of one resource (an employee's own hours) is not the
                # company's working time, as in Odoo's own planning.
                if not att.display_type and not att.resource_id
            ),
            calendar.two_weeks_calendar,
        )
        return tz, windows

    @api.model
    def _rollup(self, limit=200):
        """Recompute the dirty days of up to ``limit`` machines; returns how many."""
        cr = self.env.cr
        self.env.flush_all()
        # Same lock as the processor: a batch of new readings waits for the rollup of
        # its machine (or the rollup skips it), so no reading is left out unmarked.
        cr.execute(
            """SELECT id, usage_dirty_from, usage_raw_since, company_id, category_id,
                      job_site_project_id, fuel_tank_capacity_l
               FROM maintenance_equipment
               WHERE usage_dirty_from IS NOT NULL
               ORDER BY id LIMIT %s
               FOR NO KEY UPDATE SKIP LOCKED""",
            [limit],
        )
        machines = cr.fetchall()
        if not machines:
            return 0
        companies = {}
        ranges = []
        info = {}
        for eid, dirty_from, raw_since, company_id, category_id, site_id, capacity in machines:
            company = self.env["res.company"].browse(company_id) if company_id else self.env.company
            if company.id not in companies:
                companies[company.id] = self._company_calendar(company)
            tz, windows = companies[company.id]
            start_day = usage_rollup.local_time(dirty_from, tz).date()
            if raw_since:
                # Days before the purge horizon keep their rollups: their raw readings are gone.
                complete_from = usage_rollup.next_local_day_start(raw_since, tz)
                start_day = max(start_day, usage_rollup.local_time(complete_from, tz).date())
            info[eid] = (company.id, category_id, site_id, capacity, start_day, tz, windows)
        seeds = self._seeds({eid: values[4] for eid, values in info.items()})
        for eid, (_c, _cat, _s, _cap, start_day, tz, windows) in info.items():
            seed = seeds.get(eid, {})
            ranges.append(
                (
                    eid,
                    usage_rollup.local_day_start(start_day, tz),
                    tz,
                    seed.get("engine_hours"),
                    seed.get("idle_hours"),
                    seed.get("fuel_level_pct"),
                    [week.get(day, (None, None))[0] for week in windows for day in range(7)],
                    [week.get(day, (None, None))[1] for week in windows for day in range(7)],
                )
            )
        aggregates = defaultdict(list)
        site_hours = defaultdict(list)  # machine -> [(day, sites, engine hours, idle hours)]
        for row in execute_values(
            cr._obj,
            AGGREGATE_SQL,
            ranges,
            template="(%s, %s::timestamp, %s, %s::numeric, %s::numeric, %s::numeric, "
            "%s::int[], %s::int[])",
            fetch=True,
        ):
            aggregates[row[0]].append(usage_rollup.DayAggregate(*row[1:SITE_FIELDS]))
            site_hours[row[0]].append((row[1], *row[SITE_FIELDS:]))
        threshold = self.env["res.config.settings"]._construction_setting(
            "telematics_idle_share_threshold"
        )
        rows = []
        for eid, (company_id, category_id, site_id, capacity, _day, _tz, _w) in info.items():
            for day in usage_rollup.finish_days(aggregates[eid], seeds.get(eid), capacity):
                rows.append(
                    (
                        eid,
                        company_id,
                        category_id,
                        site_id,
                        day["day"],
                        day["reading_count"],
                        day["engine_hours"],
                        day["idle_hours"],
                        day["idle_share"],
                        day["distance_km"],
                        day["fuel_used_l"],
                        day["fuel_source"] or None,
                        day["out_of_hours_hours"],
                        day["weekend_hours"],
                        day["first_activity_at"],
                        day["last_activity_at"],
                        day["engine_hours"] >= IDLE_EXCEPTION_MIN_HOURS
                        and day["idle_share"] > threshold,
                        *(day[column] for column in END_COLUMNS),
                    )
                )
        site_rows = [
            (eid, info[eid][0], info[eid][1], day, site, engine, idle)
            for eid, days in site_hours.items()
            for day, sites, engines, idles in days
            if sites
            for site, engine, idle in zip(sites, engines, idles, strict=True)
        ]
        for table in ("construction_telematics_usage", "construction_telematics_usage_site"):
            execute_values(
                cr._obj,
                f"""DELETE FROM {table} u USING (VALUES %s) AS v(id, day)
                    WHERE u.equipment_id = v.id AND u.day >= v.day""",
                [(eid, values[4]) for eid, values in info.items()],
                template="(%s, %s::date)",
            )
        if rows:
            execute_values(
                cr._obj,
                f"INSERT INTO construction_telematics_usage ({', '.join(ROLLUP_COLUMNS)}) "
                "VALUES %s",
                rows,
                page_size=1000,
            )
        if site_rows:
            execute_values(
                cr._obj,
                f"INSERT INTO construction_telematics_usage_site ({', '.join(SITE_COLUMNS)}) "
                "VALUES %s",
                site_rows,
                page_size=1000,
            )
        cr.execute(
            """UPDATE maintenance_equipment e SET usage_dirty_from = NULL,
                   usage_last_active_day = (
                       SELECT max(day) FROM construction_telematics_usage u
                       WHERE u.equipment_id = e.id AND u.engine_hours > 0)
               WHERE e.id IN %s""",
            [tuple(info)],
        )
        self.invalidate_model()
        self.env["construction.telematics.usage.site"].invalidate_model()
        self.env["maintenance.equipment"].invalidate_model(
            ["usage_dirty_from", "usage_last_active_day"]
        )
        return len(info)

    @api.model
    def _seeds(self, start_days):
        """Each machine's END_FIELDS values before its start day, from its latest rollup."""
        if not start_days:
            return {}
        rows = execute_values(
            self.env.cr._obj,
            f"""SELECT v.id, {", ".join("u." + column for column in END_COLUMNS)}
                FROM (VALUES %s) AS v(id, day)
                JOIN LATERAL (
                    SELECT * FROM construction_telematics_usage u
                    WHERE u.equipment_id = v.id AND u.day < v.day
                    ORDER BY u.day DESC LIMIT 1
                ) u ON true""",
            sorted(start_days.items()),
            template="(%s, %s::date)",
            fetch=True,
        )
        return {row[0]: dict(zip(usage_rollup.END_FIELDS, row[1:], strict=True)) for row in rows}

    @api.model
    def _cron_rollup(self, time_budget=50.0):
        """Roll up dirty machines in committed chunks until none is left or time runs out.

        Chunks are short (``next_rollup_chunk``), so that processing, which waits
        for the machines of a chunk, keeps up while a backlog is rolled up.
        """
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget
        done, chunk = 0, ROLLUP_FIRST_CHUNK
        while time.monotonic() < deadline:
            started = time.monotonic()
            count = self._rollup(limit=chunk)
            done += count
            if auto_commit:
                self.env.cr.commit()
            if not count:
                break
            # By the machines it took: fewer than asked when the others were locked.
            chunk = next_rollup_chunk(count, time.monotonic() - started)
        return done

    # -- retention ------------------------------------------------------------
    @api.model
    def _cron_purge_readings(self, time_budget=50.0, batch_size=10000):
        """Delete raw readings past the retention period, in bounded committed batches.

        Machines are rolled up first; a machine still dirty from before the cutoff
        (locked by a batch) waits for the next run. Each machine's purge horizon is
        a local day boundary: the days before it are final, their rollups are never
        recomputed.
        Returns the number of readings deleted.
        """
        days = self.env["res.config.settings"]._construction_setting(
            "telematics_reading_retention_days"
        )
        if days <= 0:
            return 0
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget
        self._cron_rollup(time_budget=time_budget / 2)
        cr = self.env.cr
        cutoff = fields.Datetime.now() - timedelta(days=days)
        cr.execute(
            """SELECT e.id, e.company_id FROM maintenance_equipment e
               WHERE (e.usage_dirty_from IS NULL OR e.usage_dirty_from >= %s)
                 AND EXISTS (SELECT 1 FROM construction_telematics_reading r
                             WHERE r.equipment_id = e.id AND r.at < %s)
               ORDER BY e.id""",
            [cutoff, cutoff],
        )
        deleted = 0
        calendars = {}
        for equipment_id, company_id in cr.fetchall():
            if time.monotonic() > deadline:
                break
            company = self.env["res.company"].browse(company_id) if company_id else self.env.company
            if company.id not in calendars:
                calendars[company.id] = self._company_calendar(company)[0]
            tz = calendars[company.id]
            horizon = usage_rollup.local_day_start(usage_rollup.local_time(cutoff, tz).date(), tz)
            # The horizon first (days before it become final), then the rows; a run cut
            # short leaves old rows that the next run deletes.
            cr.execute(
                """UPDATE maintenance_equipment
                   SET usage_raw_since = GREATEST(usage_raw_since, %s)
                   WHERE id = %s AND (usage_dirty_from IS NULL OR usage_dirty_from >= %s)
                   RETURNING usage_raw_since""",
                [horizon, equipment_id, cutoff],
            )
            if not cr.fetchone():
                continue  # marked dirty before the horizon since: rolled up first, next run
            if auto_commit:
                cr.commit()
            while time.monotonic() < deadline:
                cr.execute(
                    """DELETE FROM construction_telematics_reading WHERE id IN (
                           SELECT id FROM construction_telematics_reading
                           WHERE equipment_id = %s AND at < %s LIMIT %s)""",
                    [equipment_id, horizon, batch_size],
                )
                deleted += cr.rowcount
                if auto_commit:
                    cr.commit()
                if cr.rowcount < batch_size:
                    break
        self.env["construction.telematics.reading"].invalidate_model()
        self.env["maintenance.equipment"].invalidate_model(["usage_raw_since"])
        if deleted:
            _logger.info("purged %s telematics readings past %s days", deleted, days)
        return deleted
