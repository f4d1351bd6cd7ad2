import re

from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError

from ..protocols.external_ids import normalize

SENSOR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ConstructionTelematicsSensor(models.Model):
    """A named sensor value readings may carry, with its unit and plausible range.

    Declared for a telematics source, an equipment category, or the whole company;
    the most specific declaration applies (source, then category, then company).
    A value outside the range, or a name without a declaration, is refused at
    receipt like a fixed metric out of its range (``_receipt_errors``); what
    receipt could not decide (a device not mapped yet, a declaration changed
    since) is stored but flagged suspect in processing.
    """

    _name = "construction.telematics.sensor"
    _inherit = ["construction.cached.config.mixin"]
    _description = "Telematics sensor"
    _order = "code, id"

    code = fields.Char(
        required=True, help="Name in the readings' sensors object, e.g. coolant_temp_c."
    )
    name = fields.Char(string="Label", required=True, translate=True)
    unit = fields.Char()
    min_value = fields.Float(string="Plausible from", required=True)
    max_value = fields.Float(string="Plausible to", required=True)
    source_id = fields.Many2one(
        "construction.telematics.source", ondelete="cascade", check_company=True
    )
    category_id = fields.Many2one("maintenance.equipment.category", ondelete="cascade")
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )

    @api.constrains("code", "min_value", "max_value")
    def _check_declaration(self):
        for sensor in self:
            if not SENSOR_CODE.match(sensor.code or ""):
                raise ValidationError(
                    self.env._(
                        "Sensor code %(code)s: lower-case letters, digits and _, "
                        "starting with a letter (at most 64).",
                        code=sensor.code,
                    )
                )
            if sensor.min_value > sensor.max_value:
                raise ValidationError(
                    self.env._("%(code)s: the range ends before it starts.", code=sensor.code)
                )

    @api.model
    @tools.ormcache("company_id")
    def _ranges(self, company_id):
        """{code: {scope: (min, max, unit)}} of a company, cached until a declaration
        changes; scope is ("source", id), ("category", id) or ("company", None).

        Receipt reads it for every readings request that carries sensor values,
        processing once per batch and company.
        """
        self.flush_model()  # declarations written in this transaction, not yet in the table
        self.env.cr.execute(
            """SELECT source_id, category_id, code, min_value, max_value, unit
               FROM construction_telematics_sensor WHERE company_id = %s""",
            [company_id],
        )
        found = {}
        for source_id, category_id, code, low, high, unit in self.env.cr.fetchall():
            if source_id:
                scope = ("source", source_id)
            elif category_id:
                scope = ("category", category_id)
            else:
                scope = ("company", None)
            found.setdefault(code, {})[scope] = (low, high, unit or "")
        return found

    @staticmethod
    def _most_specific(scopes, source_id, category_id):
        """``(min, max, unit)`` of the declaration that applies among ``scopes`` (one
        code's entry of ``_ranges``): the source's, else the machine category's,
        else the company's; None when the sensor is not declared there."""
        return (
            scopes.get(("source", source_id))
            or scopes.get(("category", category_id))
            or scopes.get(("company", None))
        )

    @api.model
    def _receipt_errors(self, source, readings):
        """{index: errors} of the parsed ``readings`` whose sensor values are implausible.

        Each value is checked against the most specific declaration (source, the
        machine's category, the company), as processing does. The machine's
        category is looked up only when a category declaration could apply; for a
        device not mapped yet, a value is refused only when no declaration that
        could apply accepts it (processing checks it again once the device is mapped).
        """
        ranges = self._ranges(source.company_id.id)
        source_scope = ("source", source.id)
        errors, deferred = {}, []
        for reading in readings:
            for code, value in reading["sensors"].items():
                scopes = ranges.get(code, {})
                if source_scope in scopes:
                    declared = scopes[source_scope]
                elif any(scope[0] == "category" for scope in scopes):
                    deferred.append((reading, code, value, scopes))
                    continue
                else:
                    declared = scopes.get(("company", None))
                self._check_value(errors, reading, code, value, declared)
        if deferred:
            category_of = self._categories_of(
                source, {reading["device_id"] for reading, *_rest in deferred}
            )
            for reading, code, value, scopes in deferred:
                device = normalize(reading["device_id"])
                if device in category_of:
                    declared = self._most_specific(scopes, source.id, category_of[device])
                    self._check_value(errors, reading, code, value, declared)
                    continue
                candidates = [
                    declared
                    for scope, declared in scopes.items()
                    if scope[0] in ("category", "company")
                ]
                if not any(low <= value <= high for low, high, _unit in candidates):
                    # Outside every range that could apply: the first one names the bounds.
                    self._check_value(errors, reading, code, value, candidates[0])
        return errors

    @staticmethod
    def _check_value(errors, reading, code, value, declared):
        field = f"sensors.{code}"
        if declared is None:
            message = "is not a declared sensor"
        else:
            low, high, unit = declared
            if low <= value <= high:
                return
            message = f"must be between {low:g} and {high:g} {unit}".rstrip()
        errors.setdefault(reading["_index"], []).append({"field": field, "message": message})

    @api.model
    def _categories_of(self, source, device_ids):
        """{normalised device id: equipment category id} of the source's mapped devices."""
        self.env.cr.execute(
            """SELECT b.external_id, e.category_id
               FROM construction_external_id b
               JOIN maintenance_equipment e ON e.id = b.res_id
               WHERE b.system_id = %s AND b.res_model = 'maintenance.equipment'
                 AND b.external_id = ANY(%s)""",
            [source.sudo().external_system_id.id, [normalize(device) for device in device_ids]],
        )
        return dict(self.env.cr.fetchall())
