from odoo import fields, models


class ConstructionTelematicsKeyWizard(models.TransientModel):
    """Shows a new API key once; only its hash is kept on the source."""

    _name = "construction.telematics.key.wizard"
    _description = "New telematics API key"

    source_id = fields.Many2one("construction.telematics.source", required=True, readonly=True)
    api_key = fields.Char(string="API key", readonly=True)
