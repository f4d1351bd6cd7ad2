from odoo import api, fields, models
from odoo.exceptions import UserError

SYSTEM_KINDS = [
    ("telematics", "Telematics source"),
    ("odyssee", "Odyssee field service"),
    ("other_erp", "Other ERP"),
]


class ConstructionExternalSystem(models.Model):
    """A system outside Odoo that names our machines with its own IDs.

    Each telematics sender, each Odyssee tenant and any other ERP is one record,
    so that the same device ID from two vendors never collides.
    """

    _name = "construction.external.system"
    _description = "External system"
    _order = "kind, name"
    _check_company_auto = True

    name = fields.Char(required=True)
    kind = fields.Selection(SYSTEM_KINDS, required=True, default="telematics")
    code = fields.Char(
        required=True,
        help="Short technical name integrations use to find this system, e.g. 'cat-visionlink'.",
    )
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    base_url = fields.Char(string="Base URL")
    auth_username = fields.Char(
        string="User name", groups="construction_asset_sync.group_integration_admin"
    )
    auth_secret = fields.Char(
        string="Secret",
        groups="construction_asset_sync.group_integration_admin",
        copy=False,
        help="Password or token this system needs. Only integration administrators can read it.",
    )
    external_id_ids = fields.One2many(
        "construction.external.id", "system_id", string="External IDs"
    )
    external_id_count = fields.Integer(compute="_compute_external_id_count")
    note = fields.Text()

    _sql_constraints = [
        (
            "code_company_uniq",
            "unique(code, company_id)",
            "An external system with this code already exists in this company.",
        ),
    ]

    @api.depends("external_id_ids")
    def _compute_external_id_count(self):
        counts = dict(
            self.env["construction.external.id"]._read_group(
                [("system_id", "in", self.ids)], ["system_id"], ["__count"]
            )
        )
        for system in self:
            system.external_id_count = counts.get(system, 0)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_mapped(self):
        mapped = self.filtered("external_id_ids")
        if mapped:
            raise UserError(
                self.env._(
                    "%(systems)s still map machines; archive the system instead, "
                    "or delete its external IDs first.",
                    systems=", ".join(mapped.mapped("display_name")),
                )
            )

    def action_open_external_ids(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "construction_asset_sync.construction_external_id_action"
        )
        action["domain"] = [("system_id", "=", self.id)]
        action["context"] = {"default_system_id": self.id}
        return action
