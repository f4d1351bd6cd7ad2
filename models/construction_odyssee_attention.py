from odoo import fields, models


class ConstructionOdysseeAttention(models.Model):
    """What a stream set aside: a PDF waiting for its approval, or a record that keeps failing.

    A waiting PDF is retried at each run until its approval is imported; a
    failed record stays here, with the error, until someone looks at it (its
    stream went on without it).
    """

    _name = "construction.odyssee.attention"
    _description = "Odyssee item set aside"
    _order = "create_date desc, id desc"

    stream_id = fields.Many2one(
        "construction.odyssee.stream", required=True, index=True, ondelete="cascade"
    )
    backend_id = fields.Many2one(related="stream_id.backend_id", store=True, index=True)
    company_id = fields.Many2one(related="stream_id.company_id", store=True, index=True)
    kind = fields.Selection(
        [("waiting_pdf", "PDF waiting for its approval"), ("failed", "Failed record")],
        required=True,
        index=True,
    )
    external_id = fields.Char(string="Odyssee GUID", required=True, index=True)
    approval_guid = fields.Char(string="Approval GUID", index=True)
    file_name = fields.Char()
    mimetype = fields.Char()
    modified_dateutc = fields.Char(string="Modified in Odyssee (UTC)")
    error = fields.Text()
    attempts = fields.Integer(default=1)
