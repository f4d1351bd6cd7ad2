from odoo import api, fields, models

from ..set_wise_insert import create_records


class ConstructionOdysseeUsageLine(models.Model):
    """One part or one time line a technician recorded in Odyssee.

    Kept whatever happens: a line whose article, technician or machine Odoo does
    not know is stored with its issue and listed for an administrator, never
    dropped. Time lines become timesheets when the technician is known.
    """

    _name = "construction.odyssee.usage.line"
    _description = "Odyssee usage line"
    _inherit = ["construction.odyssee.bound.mixin"]
    _odyssee_id_field = "odyssee_guid"
    _order = "working_date desc, id"
    _rec_name = "name"

    backend_id = fields.Many2one(
        "construction.odyssee.backend", required=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one(related="backend_id.company_id", store=True, index=True)
    # A view of the record's binding in the backend's external system.
    odyssee_guid = fields.Char(
        string="Line GUID",
        compute="_compute_odyssee_id",
        inverse="_inverse_odyssee_id",
        search="_search_odyssee_id",
    )
    kind = fields.Selection([("part", "Part"), ("time", "Time")], required=True)
    approval_id = fields.Many2one("construction.odyssee.approval", index=True, ondelete="set null")
    approval_guid = fields.Char(string="Approval GUID")
    job_guid = fields.Char(string="Job GUID", index=True)
    request_id = fields.Many2one("maintenance.request", index="btree_not_null", ondelete="set null")
    name = fields.Char(required=True)
    code = fields.Char(help="Article code (parts) or Odyssee line code (time).")
    type_code = fields.Char(help="WorkingTime or TravelTime.")
    product_id = fields.Many2one("product.product", ondelete="restrict")
    employee_id = fields.Many2one("hr.employee", ondelete="restrict")
    user_guid = fields.Char(string="Odyssee user GUID")
    working_date = fields.Date()
    # Parts count in their unit, time in hours: a sum over both means nothing.
    quantity = fields.Float(digits="Product Unit of Measure", aggregator=False)
    unit = fields.Char(
        compute="_compute_unit", help="Hours for time, the product's unit for parts."
    )
    price = fields.Float(string="Odyssee unit price", digits="Product Price", aggregator=False)
    currency_id = fields.Many2one(related="company_id.currency_id")
    amount = fields.Monetary(
        compute="_compute_amount",
        store=True,
        currency_field="currency_id",
        help="Quantity times Odyssee unit price; 0 for work under warranty, which is billed at 0.",
    )
    invoice_block_reason = fields.Char(
        string="Left out because",
        compute="_compute_invoice_block_reason",
        help="Why the invoicing wizard leaves this line out; empty when it can be billed.",
    )
    is_under_warranty = fields.Boolean(string="Under warranty")
    invoiceable = fields.Boolean(compute="_compute_invoiceable", store=True)
    timesheet_id = fields.Many2one("account.analytic.line", ondelete="set null")
    issue = fields.Char(help="Why Odoo could not fully link this line.")
    invoice_link_ids = fields.One2many("construction.odyssee.invoice.link", "usage_line_id")
    invoice_status = fields.Selection(
        [("to_invoice", "To invoice"), ("invoiced", "Invoiced"), ("no", "Not invoiceable")],
        compute="_compute_invoice_status",
        store=True,
        index=True,
    )
    invoice_id = fields.Many2one("account.move", compute="_compute_invoice_status", store=True)
    customer_id = fields.Many2one(
        "res.partner",
        compute="_compute_customer",
        store=True,
        index=True,
        help="Who is invoiced: the partner of the machine's job site.",
    )
    project_id = fields.Many2one(
        "project.project", string="Job site", compute="_compute_customer", store=True
    )

    # The stored computes an import gives at create (``_create_imported``).
    COMPUTED_AT_IMPORT = (
        "company_id",
        "amount",
        "invoiceable",
        "invoice_status",
        "invoice_id",
        "project_id",
        "customer_id",
    )

    @api.depends("invoice_link_ids.billing", "invoiceable")
    def _compute_invoice_status(self):
        for line in self:
            billing = line.invoice_link_ids.filtered("billing")[:1]
            line.invoice_id = billing.move_id
            if billing:
                line.invoice_status = "invoiced"
            else:
                line.invoice_status = self._unbilled_status(line.invoiceable)

    @staticmethod
    def _unbilled_status(invoiceable):
        return "to_invoice" if invoiceable else "no"

    @api.depends(
        "request_id.equipment_id.job_site_project_id.partner_id", "backend_id.default_project_id"
    )
    def _compute_customer(self):
        for line in self:
            project = self._job_site(line.request_id, line.backend_id)
            line.project_id = project
            line.customer_id = project.partner_id.commercial_partner_id

    @staticmethod
    def _job_site(request, backend):
        """Where the work was done: the machine's job site, else the backend's default project."""
        return request.equipment_id.job_site_project_id or backend.default_project_id

    @api.depends("is_under_warranty", "quantity")
    def _compute_invoiceable(self):
        for line in self:
            line.invoiceable = self._is_invoiceable(line.quantity)

    @staticmethod
    def _is_invoiceable(quantity):
        return quantity > 0

    @api.depends("kind", "product_id.uom_id")
    def _compute_unit(self):
        for line in self:
            if line.kind == "time":
                line.unit = self.env._("h")
            else:
                line.unit = line.product_id.uom_id.name or self.env._("Units")

    @api.depends("quantity", "price", "is_under_warranty")
    def _compute_amount(self):
        for line in self:
            line.amount = self._amount(line.quantity, line.price, line.is_under_warranty)

    @staticmethod
    def _amount(quantity, price, under_warranty):
        return 0.0 if under_warranty else quantity * price

    @api.model
    def _create_imported(self, vals_list):
        """Create new lines of an import with their stored computes given, as computed.

        An import creates thousands of lines a page: computed after the insert,
        these fields would cost an ``UPDATE`` of every line. A new line has no
        invoice yet; what a line's computes read is in ``vals`` or its request.
        """
        Request = self.env["maintenance.request"].sudo()
        Backend = self.env["construction.odyssee.backend"].sudo()
        # One read of the page's machines, job sites and customers, not one per line.
        requests = Request.browse({vals.get("request_id") for vals in vals_list} - {False, None})
        requests.equipment_id.job_site_project_id.partner_id.commercial_partner_id  # noqa: B018
        values_list = []
        for vals in vals_list:
            backend = Backend.browse(vals["backend_id"])
            project = self._job_site(Request.browse(vals.get("request_id")), backend)
            # As stored: rounded to the fields' digits, which the computes read.
            quantity = self._fields["quantity"].convert_to_cache(vals.get("quantity"), self)
            price = self._fields["price"].convert_to_cache(vals.get("price"), self)
            invoiceable = self._is_invoiceable(quantity)
            values_list.append(
                vals
                | {
                    "company_id": backend.company_id.id,
                    "amount": self._amount(quantity, price, vals.get("is_under_warranty")),
                    "invoiceable": invoiceable,
                    "invoice_status": self._unbilled_status(invoiceable),
                    "invoice_id": False,
                    "project_id": project.id,
                    "customer_id": project.partner_id.commercial_partner_id.id,
                }
            )
        return create_records(self, values_list)

    def _compute_invoice_block_reason(self):
        for line in self:
            line.invoice_block_reason = line._invoice_block_reason()

    def _service_product(self):
        """The product that bills this time line: its hour type's, else the backend's."""
        self.ensure_one()
        backend = self.backend_id
        mapped = backend.hour_product_ids.filtered(lambda m: m.line_code == self.code)[:1]
        return mapped.product_id or backend.service_product_id

    def _invoice_block_reason(self):
        """Why this line cannot be billed, or False."""
        self.ensure_one()
        line = self.sudo()
        if line.invoice_status != "to_invoice":
            return self.env._("already invoiced or not invoiceable")
        if not line.request_id.equipment_id:
            return self.env._("unknown machine: the job is linked to no machine")
        if not line.customer_id:
            return self.env._("no customer: set the partner of the job site")
        if line.kind == "part" and not line.product_id:
            return self.env._("unknown article %(code)s", code=line.code or "")
        if line.kind == "time" and not line._service_product():
            return self.env._("no service product for hour type %(code)s", code=line.code or "")
        return False

    def _odyssee_systems(self):
        return {record.id: record.backend_id.external_system_id for record in self}
