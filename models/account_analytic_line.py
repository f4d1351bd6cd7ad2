import functools
import uuid

from odoo import fields, models

# Context key naming one call of ``_create_imported_timesheets``.
PLANS_READ_ONCE = "construction_analytic_plans_read_once"


class AccountAnalyticLine(models.Model):
    _inherit = "account.analytic.line"

    odyssee_usage_line_id = fields.Many2one(
        "construction.odyssee.usage.line",
        string="Odyssee line",
        index="btree_not_null",
        ondelete="set null",
        copy=False,
    )
    odyssee_approval_guid = fields.Char(related="odyssee_usage_line_id.approval_guid")
    odyssee_price = fields.Float(related="odyssee_usage_line_id.price", string="Odyssee price")
    odyssee_under_warranty = fields.Boolean(
        related="odyssee_usage_line_id.is_under_warranty", string="Under warranty"
    )
    odyssee_invoiceable = fields.Boolean(
        related="odyssee_usage_line_id.invoiceable", string="Invoiceable (Odyssee)"
    )

    def _create_imported_timesheets(self, vals_list):
        """Create an import's timesheets in one call, the mandatory analytic plans read once.

        hr_timesheet asks, for each timesheet it creates, which analytic plans
        are mandatory (a search of the plans and their applicability each time)
        and which plan columns exist, with the same answers for every timesheet
        of a page. The answers are kept for this call only.
        """
        token = uuid.uuid4().hex
        cache = self.env.cr.cache
        cache[PLANS_READ_ONCE, token] = {}
        try:
            sheets = self.with_context(**{PLANS_READ_ONCE: token}).create(vals_list)
        finally:
            del cache[PLANS_READ_ONCE, token]
        return sheets.with_env(self.env)

    def _read_once(self, what, read):
        """``read()``, once per ``_create_imported_timesheets`` call (a copy each time)."""
        token = self.env.context.get(PLANS_READ_ONCE)
        answers = self.env.cr.cache.get((PLANS_READ_ONCE, token)) if token else None
        if answers is None:  # not in such a call, or after it
            return read()
        if what not in answers:
            answers[what] = read()
        return [dict(item) if isinstance(item, dict) else item for item in answers[what]]

    def _get_mandatory_plans(self, company, business_domain):
        return self._read_once(
            ("mandatory", company.id, business_domain),
            functools.partial(super()._get_mandatory_plans, company, business_domain),
        )

    def _get_plan_fnames(self):
        return self._read_once(("fnames",), super()._get_plan_fnames)
