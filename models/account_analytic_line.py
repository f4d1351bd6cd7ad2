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
        """Create an import's timesheets in one call, the analytic plans read once for it.

        hr_timesheet asks, for each timesheet it creates, which analytic plans
        are mandatory and which plan columns exist: a search and a computation
        per plan each time, with the same answer for every timesheet of a page.
        """
        token = uuid.uuid4().hex
        try:
            sheets = self.with_context(**{PLANS_READ_ONCE: token}).create(vals_list)
        finally:
            cache = self.env.cr.cache
            for key in [
                k for k in cache if isinstance(k, tuple) and k[:2] == (PLANS_READ_ONCE, token)
            ]:
                del cache[key]
        return sheets.with_context(**{PLANS_READ_ONCE: False})

    def _read_once(self, what, read):
        """``read()``, once per ``_create_imported_timesheets`` call (a copy each time)."""
        token = self.env.context.get(PLANS_READ_ONCE)
        if not token:
            return read()
        key = (PLANS_READ_ONCE, token, *what)
        cache = self.env.cr.cache
        if key not in cache:
            cache[key] = read()
        return [dict(item) if isinstance(item, dict) else item for item in cache[key]]

    def _get_mandatory_plans(self, company, business_domain):
        return self._read_once(
            ("mandatory", company.id, business_domain),
            lambda: super(AccountAnalyticLine, self)._get_mandatory_plans(company, business_domain),
        )

    def _get_plan_fnames(self):
        return self._read_once(
            ("fnames",), lambda: super(AccountAnalyticLine, self)._get_plan_fnames()
        )
