from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..exceptions import UnknownExternalIdError


class ConstructionExternalId(models.Model):
    """The ID another system gives one of our machines."""

    _name = "construction.external.id"
    _description = "External ID of equipment"
    _order = "system_id, external_id"
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
    external_id = fields.Char(string="External ID", required=True, index=True)
    equipment_id = fields.Many2one(
        "maintenance.equipment",
        required=True,
        ondelete="cascade",
        index=True,
        check_company=True,
    )
    company_id = fields.Many2one(
        related="system_id.company_id", store=True, index=True, precompute=True
    )
    note = fields.Char()

    _sql_constraints = [
        (
            "system_external_id_company_uniq",
            "unique(system_id, external_id, company_id)",
            "This external ID is already mapped to a machine for this system.",
        ),
    ]

    @api.constrains("external_id")
    def _check_external_id(self):
        for mapping in self:
            if mapping.external_id != mapping.external_id.strip():
                raise ValidationError(
                    self.env._(
                        "External ID %(id)r has leading or trailing spaces; "
                        "senders would never match it.",
                        id=mapping.external_id,
                    )
                )

    @api.depends("system_id", "external_id")
    def _compute_display_name(self):
        for mapping in self:
            mapping.display_name = f"{mapping.system_id.name or ''}: {mapping.external_id or ''}"

    @api.model_create_multi
    def create(self, vals_list):
        mappings = super().create(vals_list)
        mappings._requeue_waiting_events()
        return mappings

    def write(self, vals):
        result = super().write(vals)
        if {"external_id", "system_id", "equipment_id"} & set(vals):
            self._requeue_waiting_events()
        return result

    def _requeue_waiting_events(self):
        """Events that waited for these devices are processed now that they are mapped."""
        Event = self.env["construction.telematics.event"].sudo()
        for system in self.system_id:
            Event._requeue_unmapped(
                system, self.filtered(lambda m, s=system: m.system_id == s).mapped("external_id")
            )

    @api.model
    def _lookup_equipment(self, system, external_id):
        """Return the equipment ``system`` calls ``external_id``.

        :raises UnknownExternalIdError: when nothing is mapped; integrations rely
            on this type to park the event until someone maps the device.
        """
        system.ensure_one()
        mapping = self.search(
            [("system_id", "=", system.id), ("external_id", "=", external_id)], limit=1
        )
        if not mapping:
            raise UnknownExternalIdError(system, external_id)
        return mapping.equipment_id
