from odoo import api, models


class ConstructionCachedConfigMixin(models.AbstractModel):
    """Configuration that an ``ormcache`` is built from: any change clears the caches.

    The telematics hot paths read plans (``construction.maintenance.plan._plan_map``)
    and declared sensor ranges (``construction.telematics.sensor._ranges``) from
    the registry's cache instead of querying them for every batch; clearing it on
    every create, write and unlink keeps them right, in this worker and, through
    the registry's signaling, in every other.
    """

    _name = "construction.cached.config.mixin"
    _description = "Configuration read through a cache"

    def _clear_config_cache(self):
        self.env.registry.clear_cache()

    # Cleared after the change, not before: a cache filled while the change was
    # being made (by what the write itself computes) would hold the old values.
    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self._clear_config_cache()
        return records

    def write(self, vals):
        result = super().write(vals)
        self._clear_config_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self._clear_config_cache()
        return result
