from markupsafe import Markup
from odoo import fields, models


class ConstructionIntegrationProblem(models.Model):
    """One thing wrong with a source or stream, from when it was seen until it recovered."""

    _name = "construction.integration.problem"
    _description = "Integration problem"
    _order = "opened_at desc, id desc"

    health_id = fields.Many2one(
        "construction.integration.health", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="health_id.company_id", store=True, index=True)
    code = fields.Char(required=True, readonly=True)
    severity = fields.Selection([("warning", "Warning"), ("error", "Error")], readonly=True)
    summary = fields.Char(readonly=True)
    opened_at = fields.Datetime(default=fields.Datetime.now, readonly=True)
    resolved_at = fields.Datetime(readonly=True)
    activity_id = fields.Many2one("mail.activity", readonly=True, ondelete="set null")

    def _resolve(self):
        now = fields.Datetime.now()
        for problem in self:
            feedback = self.env._("Recovered: %(what)s", what=problem.summary)
            if problem.activity_id.exists() and problem.activity_id.active:
                problem.activity_id.action_feedback(feedback=feedback)
            problem.write({"resolved_at": now})
            problem.health_id._subject().sudo().message_post(
                body=Markup("<p><b>%s</b> %s</p>")
                % (self.env._("Integration problem resolved:"), problem.summary),
                subtype_xmlid="mail.mt_note",
            )
