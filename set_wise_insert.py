"""One INSERT for a page of new records of an import's own model, as ``create`` makes them.

``create`` converts each value through its field, and two conversions cost more
than the insert: a float reads its field's decimal precision (a cached lookup
through a signature binding), and an amount builds a new record to find its
currency, value by value. For the thousands of usage lines of an Odyssee page
that was a fifth of the import. Here each field's conversion is made ready
once for the page, and what ``create`` does after its INSERT is done the same
way: inverse caches updated, dependents marked for recomputation, constraints
and access checked.

Only what this can write exactly as ``create`` would is written: a model with a
field of another kind, a value for a field that is not a column, or a stored
computed field left to compute, makes ``insert_records`` answer None, and the
caller creates through the ORM.
"""

from odoo.models import LOG_ACCESS_COLUMNS
from odoo.tools import float_repr, float_round
from psycopg2.extras import execute_values

# Field types whose column value is converted here or by the field's own cheap
# conversion (company-dependent fields are not columns of their own: refused).
WRITABLE_TYPES = {
    "boolean",
    "char",
    "date",
    "datetime",
    "float",
    "integer",
    "many2one",
    "monetary",
    "selection",
    "text",
}


def insert_records(model, vals_list):
    """Create records of ``model`` from ``vals_list`` in one INSERT; returns them.

    Every stored computed field must be given in each of ``vals_list``, as its
    compute would set it (the caller knows it for an import); defaults are
    read once for the page. Returns None when ``create`` must do it (see the
    module's docstring).
    """
    if not vals_list:
        return model.browse()
    columns = {
        name: field
        for name, field in model._fields.items()
        if field.store and field.column_type and name != "id"
    }
    given = set().union(*vals_list)
    computed = [f for n, f in columns.items() if f.compute and n not in LOG_ACCESS_COLUMNS]
    if (
        any(name not in columns or name in LOG_ACCESS_COLUMNS for name in given)
        or any(f.type not in WRITABLE_TYPES or f.company_dependent for f in columns.values())
        or any(field.name not in vals for field in computed for vals in vals_list)
        or model._parent_store
    ):
        return None
    defaults = model.default_get([name for name in columns if name not in LOG_ACCESS_COLUMNS])
    names = [name for name in columns if name not in LOG_ACCESS_COLUMNS]
    convert = {name: _converter(model, columns[name]) for name in names}
    now, uid = model.env.cr.now(), model.env.uid
    rows = []
    for vals in vals_list:
        row = dict(defaults, **vals)
        rows.append(
            (
                *(convert[name](row[name], row) if name in row else None for name in names),
                uid,
                now,
                uid,
                now,
            )
        )
    query = 'INSERT INTO "{}" ({}) VALUES %s RETURNING id'.format(
        model._table, ", ".join(f'"{name}"' for name in [*names, *LOG_ACCESS_COLUMNS])
    )
    ids = [
        row[0]
        for row in execute_values(model.env.cr._obj, query, rows, page_size=len(rows), fetch=True)
    ]
    records = model.browse(ids)
    _update_inverses(model, records, vals_list, defaults)
    with model.env.protecting(computed, records):
        records.modified(model._fields, create=True)
    records._validate_fields(given | set(defaults))
    records.check_access("create")
    return records


def _converter(model, field):
    """``convert(value, row)``: the column value ``create`` would write for ``field``."""
    if field.type == "float":
        digits = field.get_digits(model.env)
        if not digits:
            return lambda value, row: float(value or 0.0)
        scale = digits[1]
        return lambda value, row: float_repr(
            float_round(float(value or 0.0), precision_digits=scale), precision_digits=scale
        )
    if field.type == "monetary":
        return _monetary_converter(model, field)
    return lambda value, row: field.convert_to_column_insert(value, model, row)


def _monetary_converter(model, field):
    """Rounded to the currency of the row, found once per currency or first hop to it."""
    currency_name = field.get_currency_field(model)
    currency_field = model._fields[currency_name]
    hop = currency_field.related.split(".")[0] if currency_field.related else None
    currencies = {}

    def currency_of(row):
        if currency_name in row:
            key = (currency_name, row[currency_name])
        elif hop and hop in row:
            key = (hop, row[hop])
        else:  # as ``create``: the currency of no record, so no rounding
            return None
        if key not in currencies:
            currencies[key] = model.new({key[0]: key[1]})[currency_name]
        return currencies[key]

    def convert(value, row):
        value = float(value or 0.0)
        currency = currency_of(row)
        if currency:
            return float_repr(currency.round(value), currency.decimal_places)
        return value

    return convert


def _update_inverses(model, records, vals_list, defaults):
    """As ``create``: the one2many caches of the records the new ones point to learn them."""
    for name, field in model._fields.items():
        if field.type != "many2one" or not model.pool.field_inverses[field]:
            continue
        by_value = {}
        for record_id, vals in zip(records._ids, vals_list, strict=True):
            value = vals.get(name, defaults.get(name))
            value = field.convert_to_cache(value, model) if value else None
            by_value.setdefault(value, []).append(record_id)
        for value, ids in by_value.items():
            field._update_inverses(model.browse(ids), value)
