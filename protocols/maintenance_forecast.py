"""When a preventive maintenance item falls due, from a machine's meters (no ``odoo`` import).

An item has up to three triggers: engine ``hours``, ``km`` (odometer) and
calendar ``days``. Each trigger is due at ``baseline + interval`` (the first
service at its own offset), is *soon* from ``due - threshold`` and *overdue*
from ``due``. An item combines its triggers with ``or`` (whichever comes first)
or ``and`` (whichever comes last).

The forecast of a meter trigger projects the meter at today's date from the
last reading and the average use per day, then divides what is left by that
average::

    projected = last reading + days since the reading x average per day
    due date  = today + (due - projected) / average per day

The forecast of a days trigger is its due date. An ``or`` item is forecast at
its earliest trigger, an ``and`` item at its latest (unknown when a meter with
no use per day has not reached its due value yet).
"""

import math
from datetime import date, datetime, timedelta

METERS = ("hours", "km")
TRIGGERS = (*METERS, "days")
STATUS_ORDER = {"ok": 0, "soon": 1, "overdue": 2}
# A meter a hair below its due value reads as reached (senders round their meters).
METER_TOLERANCE = {"hours": 0.01, "km": 0.1}


def initial_due(meter, interval, first=None):
    """The due value of a machine with no completion recorded, from its meter now.

    Below a first-service offset, the offset; otherwise the machine is assumed to
    have been serviced on schedule, so the next multiple of the interval counted
    from the offset (or from zero) is due.
    """
    meter = meter or 0.0
    if first and meter < first:
        return float(first)
    start = first or 0.0
    steps = math.floor((meter - start) / interval + 1e-9) + 1
    return float(start + steps * interval)


def next_due(item, baseline):
    """Due values after a completion at ``baseline`` ({"hours", "km", "days": date})."""
    due = {}
    for meter in METERS:
        if item["interval"].get(meter):
            due[meter] = float((baseline.get(meter) or 0.0) + item["interval"][meter])
    if item["interval"].get("days"):
        due["days"] = baseline["days"] + timedelta(days=item["interval"]["days"])
    return due


def usage_per_day(first_value, first_at, last_value, last_at, min_days=1.0):
    """Average use per day between two readings of a counter; None below ``min_days``."""
    if first_value is None or last_value is None or first_at is None or last_at is None:
        return None
    days = (last_at - first_at).total_seconds() / 86400
    if days < min_days:
        return None
    return max(0.0, (last_value - first_value) / days)


def _as_date(value):
    return value.date() if isinstance(value, datetime) else value


STATUS_NAMES = tuple(STATUS_ORDER)  # by rank
_AT = {meter: f"{meter}_at" for meter in METERS}
_PER_DAY = {meter: f"{meter}_per_day" for meter in METERS}


def evaluate(item, baseline, due, machine, today):
    """Status, progress and forecast of one item on one machine.

    ``item``: {"interval": {trigger: n}, "soon": {trigger: n}, "combine": "or"|"and"};
    ``baseline`` and ``due``: {trigger: value} (days: dates);
    ``machine``: {"hours", "km": last meter values, "hours_at", "km_at": when read,
    "hours_per_day", "km_per_day": average use (None when unknown)}.
    Returns {"status", "progress", "forecast", "triggers": {trigger: status}}.
    """
    if not due:
        return {"status": "ok", "progress": 0.0, "forecast": None, "triggers": {}}
    statuses = {}
    rank, progress, forecast = _fold(item, baseline, due, machine, today, statuses)
    return {
        "status": STATUS_NAMES[rank],
        "progress": max(0.0, progress),
        "forecast": forecast,
        "triggers": statuses,
    }


def status_and_forecast(item, due, machine, today):
    """``(status, forecast)`` as ``evaluate`` gives them, without progress or detail.

    What the evaluation after each telematics batch needs, for every item of every
    machine the batch moved: one pass over the triggers, nothing allocated.
    """
    if not due:
        return "ok", None
    rank, _progress, forecast = _fold(item, None, due, machine, today)
    return STATUS_NAMES[rank], forecast


def _fold(item, baseline, due, machine, today, statuses=None):
    """``(status rank, progress, forecast)`` of the triggers in ``due`` (not empty).

    Without ``baseline`` (None) progress is 0.0; ``statuses``, when given, is
    filled with each trigger's status.
    """
    combine_and = item.get("combine", "or") == "and"
    soon_of = item["soon"]
    rank = progress = forecast = None
    forecast_unknown = False
    for trigger, due_value in due.items():
        soon = soon_of.get(trigger) or 0
        if trigger == "days":
            # Dates as day numbers: the same thresholds and progress as a meter's.
            position, due_at, tolerance = today.toordinal(), due_value.toordinal(), 0
            start = baseline["days"].toordinal() if baseline is not None else None
            day = due_value
        else:
            position, due_at = machine.get(trigger) or 0.0, due_value
            tolerance = METER_TOLERANCE[trigger]
            start = (baseline.get(trigger) or 0.0) if baseline is not None else None
            day = forecast_meter(
                position,
                _as_date(machine.get(_AT[trigger])),
                due_value,
                machine.get(_PER_DAY[trigger]),
                today,
            )
        if position >= due_at - tolerance:
            status = 2
        elif position >= due_at - soon - tolerance:
            status = 1
        else:
            status = 0
        if start is None:
            trigger_progress = 0.0
        else:
            span = due_at - start
            trigger_progress = (position - start) / span if span > 0 else 1.0
        if statuses is not None:
            statuses[trigger] = STATUS_NAMES[status]
        if rank is None:
            rank, progress = status, trigger_progress
        elif combine_and:
            rank, progress = min(rank, status), min(progress, trigger_progress)
        else:
            rank, progress = max(rank, status), max(progress, trigger_progress)
        if day is None:
            forecast_unknown = True
        elif forecast is None:
            forecast = day
        elif combine_and:
            forecast = max(forecast, day)
        else:
            forecast = min(forecast, day)
    if combine_and and forecast_unknown:
        forecast = None
    return rank, progress, forecast


def forecast_meter(value, read_on, due_value, per_day, today):
    """The date a meter reaches ``due_value``; today when reached, None without use."""
    if value >= due_value:
        return today
    if not per_day or per_day <= 0:
        return None
    elapsed = max(0, (today - read_on).days) if read_on else 0
    projected = value + elapsed * per_day
    if projected >= due_value:
        return today
    days = (due_value - projected) / per_day
    if days > 36500:  # beyond a century is no date anyone plans for
        return None
    return today + timedelta(days=math.ceil(days))


def is_covered(due, package_due, soon=None):
    """Whether a larger package falling due at the same point replaces this item.

    "The same point" is within this item's due-soon threshold of each trigger the
    two share (at least the meter tolerance), so that an item done a little late or
    early still lines up with the package that includes it.
    """
    soon = soon or {}
    for meter in METERS:
        if meter in due and meter in package_due:
            margin = max(soon.get(meter) or 0, METER_TOLERANCE[meter])
            if abs(due[meter] - package_due[meter]) <= margin:
                return True
    if "days" in due and "days" in package_due:
        return abs((due["days"] - package_due["days"]).days) <= (soon.get("days") or 0)
    return False


def due_description(due, combine):
    """Plain words for the due values: ``4,250 h or 2027-02-01``."""
    parts = []
    if "hours" in due:
        parts.append(f"{due['hours']:,.0f} h")
    if "km" in due:
        parts.append(f"{due['km']:,.0f} km")
    if "days" in due:
        day = due["days"]
        parts.append(day.isoformat() if isinstance(day, date) else str(day))
    return f" {'and' if combine == 'and' else 'or'} ".join(parts)
