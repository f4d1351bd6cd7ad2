"""The binder: which Odoo record another system means by one of its ids.

One row binds (external system, kind of record, external id) to one Odoo
record: a telematics device to a machine, an Odyssee installation to a
machine, an Odyssee user to an employee, a company to a customer, an article
to a product, a job to a maintenance request, an approval or a usage line to
its imported record. In the manner of OCA connector's binder component, every
integration translates ids here and only here, in batches:

* ``_to_internal(system, model, external_ids)``: external id -> record;
* ``_to_external(system, records)``: record id -> external id;
* ``_bind(system, pairs)``: remember (record, external id) pairs.

Ids are normalised at this boundary (``protocols.external_ids.normalize``:
GUIDs in lower case), so Odyssee's upper- and lower-case GUIDs are one id.
A binding also keeps a fingerprint of what was last sent for its record, so an
unchanged record costs no call when it is pushed again.
"""

import hashlib
import json
from collections import defaultdict

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..exceptions import UnknownExternalIdError
from ..protocols import external_ids

MACHINE = "maintenance.equipment"


class ConstructionExternalId(models.Model):
    _name = "construction.external.id"
    _description = "External ID binding"
    _order = "system_id, res_model, external_id"
    _rec_name = "external_id"
    _check_company_auto = True

    system_id = fields.Many2one(
        "construction.external.system",
        required=True,
        ondelete="restrict",
        index=True,
        check_company=True,
    )
    system_kind = fields.Selection(related="system_id.kind", store=True)
    res_model = fields.Char(
        string="Kind of record", required=True, index=True, default=MACHINE, readonly=True
    )
    res_id = fields.Many2oneReference(
        string="Record ID", model_field="res_model", required=True, index=True, readonly=True
    )
    external_id = fields.Char(string="External ID", required=True, index=True)
    # The binding of a machine, editable in the mapping screens; bindings of
    # other records leave it empty. Deleting the machine deletes the binding.
    equipment_id = fields.Many2one(
        "maintenance.equipment",
        compute="_compute_equipment_id",
        store=True,
        readonly=False,
        precompute=True,
        ondelete="cascade",
        index="btree_not_null",
        check_company=True,
    )
    company_id = fields.Many2one(
        related="system_id.company_id", store=True, index=True, precompute=True
    )
    fingerprint = fields.Char(readonly=True, copy=False, help="SHA-256 of the values last sent.")
    synced_at = fields.Datetime(string="Last sent at", readonly=True, copy=False)
    pending = fields.Boolean(
        readonly=True,
        copy=False,
        help="The external id was chosen and stored before the record was created in the "
        "external system, and the creation is not confirmed yet; the next push confirms "
        "or adopts it.",
    )
    note = fields.Char()

    _sql_constraints = [
        (
            "system_model_external_id_uniq",
            "unique(system_id, res_model, external_id)",
            "This external ID is already bound to a record of this kind for this system.",
        ),
    ]

    @api.depends("res_model", "res_id")
    def _compute_equipment_id(self):
        for binding in self:
            # res_id is 0 on a new binding: that is no machine (record 0 breaks the form).
            machine = binding.res_model == MACHINE and binding.res_id
            binding.equipment_id = machine or False

    @api.depends("system_id", "external_id")
    def _compute_display_name(self):
        for binding in self:
            binding.display_name = f"{binding.system_id.name or ''}: {binding.external_id or ''}"

    @api.constrains("external_id", "system_id")
    def _check_external_id(self):
        for binding in self:
            self._check_id_of_kind(binding.system_kind, binding.external_id)

    @api.model
    def _check_id_of_kind(self, system_kind, external_id):
        if system_kind == "odyssee" and not external_ids.is_guid(external_id):
            raise ValidationError(
                self.env._(
                    "%(id)r is not an Odyssee GUID (expected 8-4-4-4-12 hexadecimal digits).",
                    id=external_id,
                )
            )

    @api.model
    def _normalized(self, vals):
        vals = dict(vals)
        if vals.get("equipment_id"):
            vals.update(res_model=MACHINE, res_id=vals["equipment_id"])
        if "external_id" in vals:
            raw = vals["external_id"] or ""
            if raw != raw.strip():
                raise ValidationError(
                    self.env._(
                        "External ID %(id)r has leading or trailing spaces; "
                        "senders would never match it.",
                        id=raw,
                    )
                )
            vals["external_id"] = external_ids.normalize(raw)
        return vals

    @api.model_create_multi
    def create(self, vals_list):
        bindings = super().create([self._normalized(vals) for vals in vals_list])
        bindings._requeue_waiting_events()
        return bindings

    def write(self, vals):
        result = super().write(self._normalized(vals))
        if {"external_id", "system_id", "equipment_id", "res_id"} & set(vals):
            self._requeue_waiting_events()
        return result

    def _requeue_waiting_events(self):
        """Telematics events that waited for these devices are processed now they are mapped."""
        machines = self.filtered(lambda b: b.res_model == MACHINE and b.system_kind == "telematics")
        Event = self.env["construction.telematics.event"].sudo()
        for system in machines.system_id:
            Event._requeue_unmapped(
                system,
                machines.filtered(lambda b, s=system: b.system_id == s).mapped("external_id"),
            )

    # ------------------------------------------------------------------
    # The binder API: batch translations, normalised ids
    # ------------------------------------------------------------------
    @api.model
    def _to_internal(self, system, res_model, ids):
        """``{normalised external id: record}`` for the ``ids`` bound in ``system``."""
        keys = {external_ids.normalize(i) for i in ids} - {""}
        if not system or not keys:
            return {}
        bindings = self.sudo().search_fetch(
            [
                ("system_id", "=", system.id),
                ("res_model", "=", res_model),
                ("external_id", "in", list(keys)),
            ],
            ["external_id", "res_id"],
        )
        existing = set(self.env[res_model].sudo().browse(bindings.mapped("res_id")).exists().ids)
        # Records taken from one recordset share its prefetch: reading a field of one
        # reads it for all of them, not one query per record.
        records = self.env[res_model].browse([b.res_id for b in bindings if b.res_id in existing])
        by_id = {record.id: record for record in records}
        return {b.external_id: by_id[b.res_id] for b in bindings if b.res_id in existing}

    @api.model
    def _to_internal_ids(self, res_model, pairs):
        """``{(system id, normalised external id): record id}`` across systems, in one query.

        The set-wise form of ``_to_internal`` for callers that resolve a whole
        batch of mixed systems at once (the telematics processor).
        """
        keys = {(system_id, external_ids.normalize(i)) for system_id, i in pairs if i}
        if not keys:
            return {}
        self.flush_model(["system_id", "res_model", "external_id", "res_id"])
        self.env.cr.execute(
            """SELECT b.system_id, b.external_id, b.res_id
               FROM construction_external_id b
               JOIN unnest(%s::int[], %s::varchar[]) AS k(system_id, external_id)
                 ON k.system_id = b.system_id AND k.external_id = b.external_id
               WHERE b.res_model = %s""",
            [[k[0] for k in keys], [k[1] for k in keys], res_model],
        )
        return {(system_id, key): res_id for system_id, key, res_id in self.env.cr.fetchall()}

    @api.model
    def _to_external(self, system, records):
        """``{record id: external id}`` for the ``records`` bound in ``system``."""
        if not system or not records:
            return {}
        bindings = self.sudo().search_fetch(
            [
                ("system_id", "=", system.id),
                ("res_model", "=", records._name),
                ("res_id", "in", records.ids),
            ],
            ["external_id", "res_id"],
            order="id",
        )
        return {b.res_id: b.external_id for b in bindings}

    @api.model
    def _binding(self, system, record):
        """The binding of ``record`` in ``system`` (empty when it has none)."""
        return self._to_bindings(system, record)[:1]

    @staticmethod
    def _wanted(pairs):
        """``{normalised external id: record}`` of ``(record, external id)`` pairs."""
        wanted = {}
        for record, external_id in pairs:
            key = external_ids.normalize(external_id)
            if key:
                wanted[key] = record
        return wanted

    @api.model
    def _bind(self, system, pairs, replace=False, **values):
        """Bind each ``(record, external id)`` of ``pairs`` in ``system``; returns the bindings.

        An external id already bound to another record is refused (ValidationError).
        With ``replace``, a record keeps only the id given here (the fields that
        show one id per record, e.g. a machine's Odyssee installation GUID).
        """
        Binding = self.sudo()
        wanted = self._wanted(pairs)
        if not wanted:
            return Binding
        res_models = {record._name for record in wanted.values()}
        existing = Binding.search(
            [
                ("system_id", "=", system.id),
                ("res_model", "in", list(res_models)),
                ("external_id", "in", list(wanted)),
            ]
        )
        by_key = {(b.res_model, b.external_id): b for b in existing}
        taken = [
            (key, record, by_key[(record._name, key)])
            for key, record in wanted.items()
            if (record._name, key) in by_key and by_key[(record._name, key)].res_id != record.id
        ]
        if taken:
            key, record, binding = taken[0]
            raise ValidationError(
                self.env._(
                    "%(system)s ID %(id)s already belongs to %(other)s; it cannot also name "
                    "%(record)s.",
                    system=system.display_name,
                    id=key,
                    other=self.env[record._name].browse(binding.res_id).display_name,
                    record=record.display_name,
                )
            )
        if replace:
            records_by_model = {}
            for record in wanted.values():
                records_by_model.setdefault(record._name, set()).add(record.id)
            for res_model, ids in records_by_model.items():
                Binding.search(
                    [
                        ("system_id", "=", system.id),
                        ("res_model", "=", res_model),
                        ("res_id", "in", list(ids)),
                        ("external_id", "not in", list(wanted)),
                    ]
                ).unlink()
        result, to_create = Binding, []
        for key, record in wanted.items():
            binding = by_key.get((record._name, key))
            if binding:
                if values:
                    binding.write(values)
                result |= binding
            else:
                to_create.append(
                    dict(
                        values,
                        system_id=system.id,
                        res_model=record._name,
                        res_id=record.id,
                        external_id=key,
                    )
                )
        return result | Binding.create(to_create)

    @api.model
    def _bind_new(self, system, pairs):
        """Bind records just created to ids no binding of their model holds: one INSERT.

        What ``_bind`` stores for them (normalised id, the GUID check, company
        and kind of the system), without the ORM's cost per row: an import
        binds each of its thousands of lines. Anything else goes through
        ``_bind``: a machine (its binding requeues telematics events), or an id
        some binding holds already (the INSERT skips it; ``_bind`` says to which
        record it belongs).
        """
        wanted = self._wanted(pairs)
        res_models = {record._name for record in wanted.values()}
        if not wanted or len(res_models) != 1 or MACHINE in res_models:
            return self._bind(system, pairs)
        (res_model,) = res_models
        for key in wanted:
            self._check_id_of_kind(system.kind, key)
        # Rows the ORM has yet to write must be there for ON CONFLICT to see them.
        self.flush_model(["system_id", "res_model", "external_id"])
        now, uid = self.env.cr.now(), self.env.uid
        self.env.cr.execute(
            """INSERT INTO construction_external_id (system_id, system_kind, company_id,
                   res_model, res_id, external_id, create_uid, create_date, write_uid, write_date)
               SELECT %s, %s, %s, %s, k.res_id, k.external_id, %s, %s, %s, %s
               FROM unnest(%s::int[], %s::varchar[]) AS k(res_id, external_id)
               ON CONFLICT (system_id, res_model, external_id) DO NOTHING
               RETURNING id, external_id""",
            [
                system.id,
                system.kind,
                system.company_id.id or None,
                res_model,
                uid,
                now,
                uid,
                now,
                [record.id for record in wanted.values()],
                list(wanted),
            ],
        )
        rows = self.env.cr.fetchall()
        system.invalidate_recordset(["external_id_ids"])  # the ORM did not see the new rows
        bindings = self.sudo().browse([row[0] for row in rows])
        taken = set(wanted) - {row[1] for row in rows}
        if taken:  # bound already: _bind keeps a binding of the same record, refuses another
            bindings |= self._bind(system, [(wanted[key], key) for key in taken])
        return bindings

    @api.model
    def _unbind(self, system, records):
        self._to_bindings(system, records).unlink()

    @api.model
    def _to_bindings(self, system, records):
        """The bindings of ``records`` in ``system``, oldest first."""
        return self.sudo().search(
            [
                ("system_id", "=", system.id),
                ("res_model", "=", records._name),
                ("res_id", "in", records.ids),
            ],
            order="id",
        )

    # ------------------------------------------------------------------
    # Fields that show one binding per record (a machine's installation GUID…)
    # ------------------------------------------------------------------
    @api.model
    def _read_into(self, records, field_name, systems):
        """Set ``field_name`` of each record to its external id.

        ``systems`` says in which system each record is looked up:
        ``{record id: external system}``.
        """
        by_system = defaultdict(list)
        for record in records:
            by_system[systems.get(record.id)].append(record.id)
        for system, ids in by_system.items():
            group = records.browse(ids)
            # Records being edited in a form are NewIds standing for their origin.
            origins = group._origin.filtered("id")
            known = self._to_external(system, origins) if system and origins else {}
            for record in group:
                record[field_name] = known.get(record._origin.id, False)

    @api.model
    def _write_from(self, records, field_name, systems):
        """Bind each record to the id typed in ``field_name`` (empty: unbind)."""
        for record in records:
            system, value = systems.get(record.id), record[field_name]
            if not system:
                if value:
                    raise UserError(
                        self.env._(
                            "%(record)s belongs to a company without an Odyssee backend: "
                            "configure one before entering Odyssee IDs.",
                            record=record.display_name,
                        )
                    )
                continue
            if value:
                self._bind(system, [(record, value)], replace=True)
            else:
                self._unbind(system, record)

    @api.model
    def _search_bound(self, res_model, operator, value, system_kind="odyssee"):
        """A domain on ``res_model`` for a search on the id its ``system_kind`` system uses.

        Backs the search of the fields that show a binding (e.g. ``odyssee_job_guid``).
        """
        domain = [("res_model", "=", res_model), ("system_kind", "=", system_kind)]
        if operator in ("=", "!=") and not value:
            ids = self.sudo().search(domain).mapped("res_id")
            return [("id", "not in" if operator == "=" else "in", ids)]
        if operator in ("in", "not in"):
            value = [external_ids.normalize(v) for v in value if v]
        elif isinstance(value, str):
            value = external_ids.normalize(value)
        positive = {"!=": "=", "not in": "in", "not ilike": "ilike"}.get(operator, operator)
        ids = self.sudo().search([*domain, ("external_id", positive, value)]).mapped("res_id")
        return [("id", "not in" if positive != operator else "in", ids)]

    @api.model
    def _fingerprint(self, values):
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()

    @api.model
    def _lookup_equipment(self, system, external_id):
        """Return the machine ``system`` calls ``external_id``.

        :raises UnknownExternalIdError: when nothing is mapped; integrations rely
            on this type to park the event until someone maps the device.
        """
        system.ensure_one()
        machine = self._to_internal(system, MACHINE, [external_id]).get(
            external_ids.normalize(external_id)
        )
        if not machine:
            raise UnknownExternalIdError(system, external_id)
        return machine
