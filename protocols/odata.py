"""OData query options the way the Odyssee API expects them.

Literals: strings single-quoted with quotes doubled, GUIDs bare, booleans bare,
datetimes single-quoted ``YYYY-MM-DDThh:mm:ss.fffZ`` in UTC (the form of
Odyssee's ERP guide). Values are always formatted here, never pasted into the
filter text, so a quote in a customer name cannot change the query.
"""

import re
import uuid
from datetime import date, datetime, timezone
from urllib.parse import quote

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le"}


class Guid(str):
    """A GUID literal (bare in a filter)."""

    def __new__(cls, value):
        return super().__new__(cls, str(uuid.UUID(str(value))))


def format_datetime(value):
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000Z"
    raise TypeError(f"not a date or datetime: {value!r}")


def literal(value):
    """The OData literal of a Python value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Guid | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return f"'{format_datetime(value)}'"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no OData literal for {type(value).__name__}")


def _field(name):
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a property name: {name!r}")
    return name


def cond(field, operator, value):
    """One comparison, e.g. ``cond("modified_dateutc", "gt", watermark)``."""
    if operator not in _OPERATORS:
        raise ValueError(f"unsupported operator {operator!r}")
    return f"{_field(field)} {operator} {literal(value)}"


def any_of(field, values):
    """``field eq a or field eq b ...`` in parentheses (the API documents no ``in``)."""
    values = list(values)
    if not values:
        raise ValueError("any_of needs at least one value")
    return "(" + " or ".join(cond(field, "eq", value) for value in values) + ")"


def all_of(*conditions):
    return " and ".join(c for c in conditions if c)


class Query:
    """``$filter``, ``$orderby``, ``$select``, ``$top`` and ``$skip`` of one request."""

    def __init__(self, filter=None, orderby=None, select=None, top=None, skip=None):
        self.filter = filter
        self.orderby = [orderby] if isinstance(orderby, str) else list(orderby or [])
        self.select = list(select or [])
        self.top = top
        self.skip = skip
        for item in self.orderby:
            name, _, direction = item.partition(" ")
            _field(name)
            if direction not in ("", "asc", "desc"):
                raise ValueError(f"bad $orderby direction in {item!r}")
        for name in self.select:
            _field(name)

    def params(self):
        params = []
        if self.filter:
            params.append(("$filter", self.filter))
        if self.orderby:
            params.append(("$orderby", ",".join(self.orderby)))
        if self.select:
            params.append(("$select", ",".join(self.select)))
        if self.top is not None:
            params.append(("$top", str(int(self.top))))
        if self.skip:
            params.append(("$skip", str(int(self.skip))))
        return params

    def to_string(self):
        # '$' and ',' stay readable; spaces and quotes are percent-encoded.
        return "&".join(f"{key}={quote(value, safe=',$')}" for key, value in self.params())


def parse_timestamp(text):
    """A naive UTC datetime from Odyssee's ``…Z``, ``…+00:00`` or 0-7 fractional digits."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    main, sep, rest = value.partition(".")
    if sep:
        digits = "".join(ch for ch in rest if ch.isdigit())
        value = f"{main}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def normalize_timestamp(text):
    """Odyssee timestamps in one sortable form, ``YYYY-MM-DDThh:mm:ss.fffZ``."""
    return format_datetime(parse_timestamp(text))
