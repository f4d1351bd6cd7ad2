from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestSecurityCoverage(TransactionCase):
    """Every model of the addon has access rights, and every company-bound one a company rule."""

    def _addon_models(self):
        data = self.env["ir.model.data"].search(
            [("module", "=", "construction_asset_sync"), ("model", "=", "ir.model")]
        )
        return self.env["ir.model"].browse(data.mapped("res_id"))

    def test_every_model_has_access_rights(self):
        models = self._addon_models().filtered(lambda m: not self.env[m.model]._abstract)
        self.assertGreater(len(models), 15)
        missing = models.filtered(lambda m: not m.access_ids)
        self.assertFalse(missing.mapped("model"))

    def test_every_company_bound_model_has_a_company_rule(self):
        bound = self._addon_models().filtered(
            lambda m: not self.env[m.model]._abstract
            and not self.env[m.model]._transient
            and "company_id" in self.env[m.model]._fields
        )
        self.assertGreater(len(bound), 12)
        missing = bound.filtered(
            lambda m: not m.rule_ids.filtered(lambda r: "company_ids" in (r.domain_force or ""))
        )
        self.assertFalse(missing.mapped("model"))
