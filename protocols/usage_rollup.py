"""Daily utilisation of one machine: the definitions, with no database.

The addon computes rollups set-wise in SQL (``models/construction_telematics_usage.py``);
this module states what they mean, as a reference computation from raw readings
(tests compare both) and the few steps that follow the SQL aggregation.

Definitions, per machine and local day (the company calendar's time zone), over
the machine's plausible readings (suspect readings are left out) in time order:

- a counter's *use* (engine hours, idle hours, odometer, cumulative fuel) is the
  sum of its rises between consecutive readings that carry it, attributed to the
  day of the later reading; so it telescopes: a day's use is its last value
  minus the last value before the day, and gaps or late readings only move use
  between days, never create or lose it. The first reading a machine ever sent
  has nothing to rise from.
- *fuel used* is the cumulative fuel counter's use when the day carries one
  (ISO 15143-3 FuelUsed); otherwise the fuel level's drops (refuels are rises
  and ignored) times the tank capacity.
- *out-of-hours* and *weekend* hours are engine-hour rises whose later reading
  falls outside the working window of its weekday, or on a weekday without one.
- *first and last activity* are the first and last readings of the day whose
  engine hours rose.
- *hours per job site*: each engine-hour and idle-hour rise goes to the job site
  the machine was on at its later reading, from the site visits (``site_at``);
  None is off site. A day's sites add up to its engine and idle hours exactly.
- a *two-week* calendar (Odoo's ``two_weeks_calendar``) has a working window per
  weekday of each week parity, the parity being Odoo's
  ``resource.calendar.attendance.get_week_type`` of the local day.
"""

from collections import namedtuple
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

COUNTERS = ("engine_hours", "idle_hours", "odometer_km", "fuel_used_l")
# What a day leaves for the next one: each counter's and the fuel level's last value.
END_FIELDS = ("engine_hours", "idle_hours", "odometer_km", "fuel_used_l", "fuel_level_pct")

# What the SQL aggregation returns per machine and day (the reference builds the same).
DayAggregate = namedtuple(
    "DayAggregate",
    "day reading_count engine_rise out_of_hours_rise weekend_rise first_activity_at "
    "last_activity_at level_drops first_idle_hours first_odometer_km first_fuel_used_l "
    "last_engine_hours last_idle_hours last_odometer_km last_fuel_used_l last_fuel_level_pct",
)


def decimal(value):
    """A value as the exact decimal PostgreSQL's ``numeric`` holds.

    Odoo's cursor reads ``numeric`` as ``float``; the shortest text of that float
    is the stored decimal again (readings carry far fewer than 15 digits).
    """
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def working_windows(attendances, week_type=None):
    """Working window per weekday (0 = Monday) from calendar attendances.

    ``attendances`` are (dayofweek, hour_from, hour_to) or (dayofweek, hour_from,
    hour_to, week_type); a day's window spans its first start to its last end, so
    a lunch break counts as working time. The bounds are whole seconds since
    local midnight. Weekdays without attendance are missing (weekend). With
    ``week_type`` (0 or 1), only the attendances of that week of a two-week
    calendar count.
    """
    windows = {}
    for dayofweek, hour_from, hour_to, *rest in attendances:
        if week_type is not None and rest and rest[0] and int(rest[0]) != week_type:
            continue
        start, end = round(float(hour_from) * 3600), round(float(hour_to) * 3600)
        day = int(dayofweek)
        if day in windows:
            start, end = min(start, windows[day][0]), max(end, windows[day][1])
        windows[day] = (start, end)
    return windows


def calendar_windows(attendances, two_weeks=False):
    """(even week's, odd week's) working windows; the same twice for a one-week calendar."""
    attendances = list(attendances)
    if not two_weeks:
        windows = working_windows(item[:3] for item in attendances)
        return windows, windows
    return working_windows(attendances, 0), working_windows(attendances, 1)


def week_type(day):
    """Odoo's week parity of a date: ``resource.calendar.attendance.get_week_type``."""
    return (day.toordinal() - 1) // 7 % 2


def local_time(at, tz):
    """Naive UTC ``at`` as a naive local datetime in ``tz``."""
    return at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def seconds_of_day(local):
    return (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()


def classify(local, windows):
    """'weekend', 'out_of_hours' or 'working' for a local time.

    ``windows`` is one week's windows, or the (even, odd) pair of ``calendar_windows``.
    """
    if isinstance(windows, tuple):
        windows = windows[week_type(local.date())]
    window = windows.get(local.weekday())
    if window is None:
        return "weekend"
    seconds = seconds_of_day(local)
    return "working" if window[0] <= seconds < window[1] else "out_of_hours"


def aggregate_days(readings, tz, windows, seed=None):
    """Reference aggregation of a machine's readings into ``DayAggregate`` per day.

    ``readings`` are dicts with ``at`` (naive UTC), ``suspect`` and the counters;
    ``seed`` maps END_FIELDS to the last values before the first reading.
    """
    previous = {name: decimal((seed or {}).get(name)) for name in END_FIELDS}
    days = {}
    for reading in sorted(readings, key=lambda item: item["at"]):
        if reading.get("suspect"):
            continue
        local = local_time(reading["at"], tz)
        day = days.setdefault(
            local.date(),
            {
                "reading_count": 0,
                "engine_rise": Decimal(0),
                "out_of_hours_rise": Decimal(0),
                "weekend_rise": Decimal(0),
                "first_activity_at": None,
                "last_activity_at": None,
                "level_drops": Decimal(0),
                "first": {},
                "last": {},
            },
        )
        day["reading_count"] += 1
        engine = decimal(reading.get("engine_hours"))
        if engine is not None:
            rise = engine - previous["engine_hours"] if previous["engine_hours"] is not None else 0
            day["engine_rise"] += rise
            kind = classify(local, windows)
            if kind != "working":
                day[f"{kind}_rise"] += rise
            if rise > 0:
                day["first_activity_at"] = day["first_activity_at"] or reading["at"]
                day["last_activity_at"] = reading["at"]
        level = decimal(reading.get("fuel_level_pct"))
        if level is not None and previous["fuel_level_pct"] is not None:
            day["level_drops"] += max(Decimal(0), previous["fuel_level_pct"] - level)
        for name in END_FIELDS:
            value = decimal(reading.get(name))
            if value is not None:
                previous[name] = value
                day["first"].setdefault(name, value)
                day["last"][name] = value
    return [
        DayAggregate(
            day=date,
            reading_count=values["reading_count"],
            engine_rise=values["engine_rise"],
            out_of_hours_rise=values["out_of_hours_rise"],
            weekend_rise=values["weekend_rise"],
            first_activity_at=values["first_activity_at"],
            last_activity_at=values["last_activity_at"],
            level_drops=values["level_drops"],
            **{f"first_{name}": values["first"].get(name) for name in COUNTERS[1:]},
            **{f"last_{name}": values["last"].get(name) for name in END_FIELDS},
        )
        for date, values in sorted(days.items())
    ]


def site_at(visits, at):
    """The job site a machine was on at ``at``, or None (off site).

    ``visits`` are (id, project_id, arrived_at, left_at) of the machine: the
    latest visit that began at or before ``at`` (the higher id of two that began
    together), if it had not ended by then.
    """
    latest = None
    for visit in visits:
        if visit[2] <= at and (latest is None or (visit[2], visit[0]) > (latest[2], latest[0])):
            latest = visit
    if latest is None or (latest[3] is not None and at >= latest[3]):
        return None
    return latest[1]


def site_days(readings, tz, visits, seed=None):
    """Reference engine and idle hours per local day and job site.

    Returns {(day, site or None): (engine_hours, idle_hours)} for every day and
    site with a plausible reading carrying engine or idle hours; ``seed`` as for
    ``aggregate_days``.
    """
    previous = {name: decimal((seed or {}).get(name)) for name in ("engine_hours", "idle_hours")}
    result = {}
    for reading in sorted(readings, key=lambda item: item["at"]):
        if reading.get("suspect"):
            continue
        rises = {}
        for name in ("engine_hours", "idle_hours"):
            value = decimal(reading.get(name))
            if value is None:
                continue
            rises[name] = value - previous[name] if previous[name] is not None else Decimal(0)
            previous[name] = value
        if not rises:
            continue
        key = (local_time(reading["at"], tz).date(), site_at(visits, reading["at"]))
        engine, idle = result.get(key, (Decimal(0), Decimal(0)))
        result[key] = (
            engine + rises.get("engine_hours", 0),
            idle + rises.get("idle_hours", 0),
        )
    return result


def finish_days(aggregates, seed=None, tank_capacity_l=None):
    """Daily utilisation values from a machine's day aggregates, in day order.

    Carries each counter's last value across days that lack it, so a day's use
    is its last value minus the one before; ``seed`` holds the values before the
    first day. Returns one dict per day, including the ``end_*`` values the next
    computation starts from.
    """
    ends = {name: decimal((seed or {}).get(name)) for name in END_FIELDS}
    capacity = decimal(tank_capacity_l) if tank_capacity_l else None
    result = []
    for aggregate in sorted(aggregates, key=lambda item: item.day):
        used = {}
        for name in COUNTERS:
            last = decimal(getattr(aggregate, f"last_{name}"))
            if last is None:
                used[name] = Decimal(0)
                continue
            if name == "engine_hours":
                # Summed from its rises, which out-of-hours and weekend hours split.
                ends[name] = last
                continue
            # A machine's very first day rises from its first value of the day.
            before = ends[name] if ends[name] is not None else first_value(aggregate, name)
            used[name] = last - before
            ends[name] = last
        last_level = decimal(aggregate.last_fuel_level_pct)
        if last_level is not None:
            ends["fuel_level_pct"] = last_level
        if aggregate.last_fuel_used_l is not None:
            fuel, fuel_source = used["fuel_used_l"], "counter"
        elif capacity and aggregate.level_drops:
            fuel, fuel_source = decimal(aggregate.level_drops) * capacity / 100, "level"
        else:
            fuel, fuel_source = Decimal(0), False
        engine = decimal(aggregate.engine_rise)
        result.append(
            {
                "day": aggregate.day,
                "reading_count": aggregate.reading_count,
                "engine_hours": engine,
                "idle_hours": used["idle_hours"],
                "idle_share": idle_share(used["idle_hours"], engine),
                "distance_km": used["odometer_km"],
                "fuel_used_l": fuel,
                "fuel_source": fuel_source,
                "out_of_hours_hours": decimal(aggregate.out_of_hours_rise),
                "weekend_hours": decimal(aggregate.weekend_rise),
                "first_activity_at": aggregate.first_activity_at,
                "last_activity_at": aggregate.last_activity_at,
                **{f"end_{name}": ends[name] for name in END_FIELDS},
            }
        )
    return result


def first_value(aggregate, name):
    return decimal(getattr(aggregate, f"first_{name}"))


def idle_share(idle_hours, engine_hours):
    """Idle hours as a percentage of engine hours (0 when the engine did not run)."""
    if not engine_hours or engine_hours <= 0:
        return 0.0
    return round(float(max(Decimal(0), min(idle_hours, engine_hours)) / engine_hours * 100), 1)


def local_day_start(day, tz):
    """The naive UTC instant the local ``day`` (a date) starts in ``tz``."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def next_local_day_start(at, tz):
    """The naive UTC start of the first local day that starts at or after ``at``."""
    local = local_time(at, tz)
    day = local.date()
    if local != datetime(day.year, day.month, day.day):
        day += timedelta(days=1)
    return local_day_start(day, tz)
