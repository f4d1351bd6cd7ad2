"""One INSERT for a page of new records of an import's own model, as ``create`` makes them.

``create`` converts each value through its field, and two conversions cost more
than the insert: a float reads its field's decimal precision (a cached lookup
through a signature binding), and an amount builds a new record to find its
currency, value by value. For the thousands of usage lines of an Odyssee page
that was a fifth of the import. Here each field's conversion is made ready
once for the page, and what ``create`` does after its INSERT is done the same
way: inverse caches updated, dependents marked for recomputation, constraints
and access checked.

Only what this can write exactly as ``create`` would is written. ``insert_records``
answers None, and ``create_records`` creates through the ORM, when the model overrides
``create`` (an ``_inherit`` adding ``mail.thread``, say), delegates to a parent
(``_inherits``), checks companies or keeps a parent path, has a field of a kind
converted here with no certainty (company-dependent, binary, html…) or computed
at create (``precompute``); when a value is given for a field that is not a
column or has an inverse; when a stored computed field is left to compute; or
when a default would apply (``create`` evaluates defaults record by record).
"""

from odoo.models import LOG_ACCESS_COLUMNS, BaseModel
from odoo.tools import SQL, float_repr, float_round, split_every
from psycopg2.extensions import encodings

# Rows per INSERT statement.
INSERT_BATCH_SIZE = 1000
# Field types whose column value is converted here or by the field's own cheap
# conversion (company-dependent fields, jsonb columns of values per company: refused).
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


def create_records(model, vals_list):
    """``insert_records``, else ``create``: the records of ``vals_list``, their stored
    computes as given (not computed again after a ``create``, which would write
    them a second time)."""
    records = insert_records(model, vals_list)
    if records is None:
        records = model.create(vals_list)
        given = set().union(*vals_list)
        for field in model._fields.values():
            if field.store and field.compute and field.name in given:
                model.env.remove_to_compute(field, records)
    return records


def insert_records(model, vals_list):
    """Create records of ``model`` from ``vals_list``, an INSERT per thousand; returns them.

    Every stored computed field must be given in each of ``vals_list``, as its
    compute would set it (the caller knows it for an import). Returns None when
    ``create`` must do it (see the module's docstring).
    """
    if not vals_list:
        return model.browse()
    columns = {
        name: field
        for name, field in model._fields.items()
        if field.store and field.column_type and name not in ("id", *LOG_ACCESS_COLUMNS)
    }
    given = set().union(*vals_list)
    computed = [field for field in columns.values() if field.compute]
    if not _writable(model, columns, given) or any(
        field.name not in vals for field in computed for vals in vals_list
    ):
        return None
    missing = [name for name in model._fields if any(name not in vals for vals in vals_list)]
    if model.default_get(missing):
        return None
    model.check_access("create")
    names = list(columns)
    convert = {name: _converter(model, columns[name]) for name in names}
    now, uid = model.env.cr.now(), model.env.uid
    rows = [
        (
            *(convert[name](vals[name], vals) if name in vals else None for name in names),
            uid,
            now,
            uid,
            now,
        )
        for vals in vals_list
    ]
    # Through Odoo's cursor, as ``_create``: its query log, counters and test savepoints.
    # The rows are quoted by psycopg2's ``mogrify`` (C), a row at a time: given as
    # parameters, each value went through psycopg2's Python adapter of tuples, a
    # tenth of the time here. The statement then has no parameters, so psycopg2
    # reads it as it is (a ``%`` in a value stays one).
    cr = model.env.cr
    encoding = encodings[cr._obj.connection.encoding]
    head = SQL(
        "INSERT INTO %s (%s) VALUES ",
        SQL.identifier(model._table),
        SQL(", ").join(map(SQL.identifier, [*names, *LOG_ACCESS_COLUMNS])),
    )
    row_template = "({})".format(", ".join(["%s"] * (len(names) + len(LOG_ACCESS_COLUMNS))))
    ids = []
    for batch in split_every(INSERT_BATCH_SIZE, rows):
        values = b", ".join(cr._obj.mogrify(row_template, row) for row in batch)
        cr.execute(f"{head.code}{values.decode(encoding)} RETURNING id")
        ids.extend(id_ for (id_,) in cr.fetchall())
    records = model.browse(ids)
    _update_inverses(model, records, vals_list)
    with model.env.protecting(computed, records):
        records.modified(model._fields, create=True)
    records._validate_fields(given)
    records.check_access("create")
    return records


def _writable(model, columns, given):
    """Whether ``create`` of ``model`` with values for ``given`` is what this does."""
    cls = type(model)
    return (
        cls.create is BaseModel.create
        and cls._create is BaseModel._create
        and model._log_access
        and not (model._inherits or model._parent_store or model._check_company_auto)
        and all(name in columns and not columns[name].inverse for name in given)
        and all(
            field.type in WRITABLE_TYPES and not field.company_dependent and not field.precompute
            for field in columns.values()
        )
    )


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


def _update_inverses(model, records, vals_list):
    """As ``create``: the one2many caches of the records the new ones point to learn them."""
    for name, field in model._fields.items():
        if field.type != "many2one" or not model.pool.field_inverses[field]:
            continue
        by_value = {}
        for record_id, vals in zip(records._ids, vals_list, strict=True):
            value = vals.get(name)
            value = field.convert_to_cache(value, model) if value else None
            by_value.setdefault(value, []).append(record_id)
        for value, ids in by_value.items():
            field._update_inverses(model.browse(ids), value)
