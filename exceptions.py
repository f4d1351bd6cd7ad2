from odoo.exceptions import UserError


class UnknownExternalIdError(UserError):
    """Raised when an external system names a machine Odoo has no mapping for.

    Integrations catch it to park the event as unmapped; in the UI it reads as a
    plain user error. ``system`` and ``external_id`` say what was looked up.
    """

    def __init__(self, system, external_id):
        self.system = system
        self.external_id = external_id
        super().__init__(
            system.env._(
                "No equipment is mapped to ID %(external_id)r of the external system "
                "%(system)r. Add it on the equipment's 'Telematics & IDs' tab.",
                external_id=external_id,
                system=system.display_name,
            )
        )
