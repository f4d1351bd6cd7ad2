from datetime import timedelta

from odoo import api, fields, models


class MaintenanceEquipment(models.Model):
    """Utilisation of a machine: its daily rollups and what they need to stay exact."""

    _inherit = "maintenance.equipment"

    fuel_tank_capacity_l = fields.Float(
        string="Fuel tank (L)",
        digits=(16, 1),
        help="Turns drops of the reported fuel level into litres when the machine "
        "does not report cumulative fuel.",
    )
    telematics_usage_ids = fields.One2many(
        "construction.telematics.usage", "equipment_id", string="Daily utilisation"
    )
    # Set by each batch of readings, cleared by the rollup: the earliest reading not
    # yet rolled up.
    usage_dirty_from = fields.Datetime(readonly=True, copy=False, index="btree_not_null")
    # Set by the purge: raw readings before this instant are gone, their days are final.
    usage_raw_since = fields.Datetime(string="Raw readings since", readonly=True, copy=False)
    usage_last_active_day = fields.Date(
        string="Last day used",
        readonly=True,
        copy=False,
        help="The last day the engine ran, from the daily utilisation.",
    )
    usage_unused = fields.Boolean(
        string="Unused",
        compute="_compute_usage_unused",
        search="_search_usage_unused",
        help="The engine has not run for the number of days set in the settings.",
    )

    def _usage_unused_since(self):
        days = self.env["res.config.settings"]._construction_setting("telematics_unused_days")
        return fields.Date.context_today(self) - timedelta(days=days)

    @api.depends("usage_last_active_day")
    def _compute_usage_unused(self):
        since = self._usage_unused_since()
        for equipment in self:
            equipment.usage_unused = (
                not equipment.usage_last_active_day or equipment.usage_last_active_day < since
            )

    def _search_usage_unused(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise NotImplementedError(operator)
        unused = ["|", ("usage_last_active_day", "=", False)]
        unused.append(("usage_last_active_day", "<", self._usage_unused_since()))
        if (operator == "=") == value:
            return unused
        return [("usage_last_active_day", ">=", self._usage_unused_since())]

    def action_open_telematics_usage(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_telematics_usage_action"
        )
        action["domain"] = [("equipment_id", "=", self.id)]
        action["context"] = {"default_equipment_id": self.id}
        return action
