from odoo import models


class ConstructionOdysseeBoundMixin(models.AbstractModel):
    """A record that shows its Odyssee id: a view of its binding, stored in the binder.

    The model names the field in ``_odyssee_id_field`` and declares it with
    ``compute="_compute_odyssee_id"``, ``inverse="_inverse_odyssee_id"`` and
    ``search="_search_odyssee_id"``. The id is read and written in the external
    system of the record's Odyssee backend (``_odyssee_systems``).
    """

    _name = "construction.odyssee.bound.mixin"
    _description = "Record with an Odyssee id"
    _odyssee_id_field = None

    def _odyssee_systems(self):
        """``{record id: external system}``; by default, the company's active backend."""
        return self.env["construction.odyssee.backend"]._systems_of(self)

    def _compute_odyssee_id(self):
        self.env["construction.external.id"]._read_into(
            self, self._odyssee_id_field, self._odyssee_systems()
        )

    def _inverse_odyssee_id(self):
        self.env["construction.external.id"]._write_from(
            self, self._odyssee_id_field, self._odyssee_systems()
        )

    def _search_odyssee_id(self, operator, value):
        return self.env["construction.external.id"]._search_bound(self._name, operator, value)
