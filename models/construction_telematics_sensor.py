import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

SENSOR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ConstructionTelematicsSensor(models.Model):
    """A named sensor value readings may carry, with its unit and plausible range.

    Declared for a telematics source, an equipment category, or the whole company;
    the most specific declaration applies (source, then category, then company).
    A value outside the range, or a name without a declaration, is stored but
    flagged suspect, like an implausible counter.
    """

    _name = "construction.telematics.sensor"
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
    def _declarations(self, company_ids):
        """{(company, scope, code): (min, max, unit)}; scope is ("source", id), ("category", id)
        or ("company", None)."""
        self.env.cr.execute(
            """SELECT company_id, source_id, category_id, code, min_value, max_value, unit
               FROM construction_telematics_sensor WHERE company_id = ANY(%s)""",
            [list(company_ids)],
        )
        found = {}
        for company_id, source_id, category_id, code, low, high, unit in self.env.cr.fetchall():
            if source_id:
                scope = ("source", source_id)
            elif category_id:
                scope = ("category", category_id)
            else:
                scope = ("company", None)
            found[(company_id, scope, code)] = (low, high, unit or "")
        return found
