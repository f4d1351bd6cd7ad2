from collections import defaultdict

from markupsafe import Markup
from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import format_amount

SOURCES = {
    "construction.odyssee.usage.line": lambda records: records,
    "construction.odyssee.approval": lambda records: records.line_ids,
    "maintenance.request": lambda records: records.odyssee_line_ids,
    "account.analytic.line": lambda records: records.odyssee_usage_line_id,
}


class ConstructionOdysseeInvoiceWizard(models.TransientModel):
    """Draft customer invoices from imported Odyssee work that is not billed yet."""

    _name = "construction.odyssee.invoice.wizard"
    _description = "Invoice Odyssee work"

    line_ids = fields.Many2many(
        "construction.odyssee.usage.line",
        "construction_odyssee_invoice_wizard_line_rel",
        string="Work to invoice",
    )
    split_by = fields.Selection(
        [
            ("customer", "One invoice per customer"),
            ("job", "One invoice per job"),
            ("project", "One invoice per job-site project"),
        ],
        required=True,
        default="customer",
    )
    price_source = fields.Selection(
        [("odyssee", "Odyssee's price"), ("product", "The product's sales price")],
        required=True,
        default="odyssee",
    )
    invoice_date = fields.Date()
    billable_count = fields.Integer(compute="_compute_summary")
    skipped_count = fields.Integer(compute="_compute_summary")
    skipped_summary = fields.Text(compute="_compute_summary")
    preview_html = fields.Html(
        string="Invoices to create",
        compute="_compute_summary",
        sanitize=False,  # built here from escaped values only
        help="One row per draft invoice the wizard will create, with its untaxed total.",
    )

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        model, ids = self.env.context.get("active_model"), self.env.context.get("active_ids")
        if model in SOURCES and ids:
            lines = SOURCES[model](self.env[model].browse(ids))
            values["line_ids"] = [
                Command.set(lines.filtered(lambda line: line.invoice_status == "to_invoice").ids)
            ]
        return values

    @api.depends("line_ids", "price_source", "split_by")
    def _compute_summary(self):
        for wizard in self:
            billable, skipped = wizard._sort_lines()
            wizard.billable_count = len(billable)
            wizard.skipped_count = len(skipped)
            wizard.skipped_summary = "\n".join(
                f"{line.display_name}: {reason}" for line, reason in skipped
            )
            wizard.preview_html = wizard._preview_html(billable)

    def _sort_lines(self):
        """Billable lines, and the others with the reason they cannot be billed here."""
        billable, skipped = self.env["construction.odyssee.usage.line"].sudo(), []
        for line in self.line_ids.sudo():
            reason = line._invoice_block_reason()
            if not reason and line.company_id != self.env.company:
                reason = self.env._("belongs to another company")
            if reason:
                skipped.append((line, reason))
            else:
                billable |= line
        return billable, skipped

    def _invoice_groups(self, billable):
        """``{key: lines}``: the lines of each invoice to create, by the chosen split."""
        groups = defaultdict(lambda: self.env["construction.odyssee.usage.line"].sudo())
        # In the form (an onchange) the lines are new records: order by their real id.
        for line in billable.sorted(lambda line: line._origin.id or 0):
            key = line.customer_id
            if self.split_by == "job":
                key = (key, line.request_id)
            elif self.split_by == "project":
                key = (key, line.project_id)
            groups[key] |= line
        return groups

    def _line_total(self, line):
        product = line.product_id if line.kind == "part" else line._service_product()
        return line.quantity * self._price(line, product)

    def _preview_html(self, billable):
        if not billable:
            return False
        rows, grand_total = [], 0.0
        currency = self.env.company.currency_id
        for key, lines in self._invoice_groups(billable).items():
            customer, detail = (key, "") if not isinstance(key, tuple) else (key[0], key[1])
            total = sum(self._line_total(line) for line in lines)
            grand_total += total
            rows.append(
                Markup(
                    "<tr><td>%s</td><td>%s</td><td class='text-end'>%s</td>"
                    "<td class='text-end o_preview_total'>%s</td></tr>"
                )
                % (
                    customer.display_name,
                    detail.display_name if detail else "",
                    len(lines),
                    format_amount(self.env, total, currency),
                )
            )
        header = Markup(
            "<thead><tr><th>%s</th><th>%s</th><th class='text-end'>%s</th>"
            "<th class='text-end'>%s</th></tr></thead>"
        ) % (
            self.env._("Customer"),
            {"job": self.env._("Job"), "project": self.env._("Job site")}.get(self.split_by, ""),
            self.env._("Lines"),
            self.env._("Untaxed total"),
        )
        footer = Markup(
            "<tfoot><tr><th colspan='3'>%s</th><th class='text-end o_preview_grand_total'>%s</th>"
            "</tr></tfoot>"
        ) % (
            self.env._("%(n)s draft invoice(s)", n=len(rows)),
            format_amount(self.env, grand_total, currency),
        )
        table = Markup(
            "<table class='table table-sm o_invoice_preview'>%s<tbody>%s</tbody>%s</table>"
        )
        return table % (
            header,
            Markup("").join(rows),
            footer,
        )

    def action_create_invoices(self):
        self.ensure_one()
        if not self.env.user.has_group("account.group_account_invoice"):
            raise AccessError(self.env._("Only invoicing users create invoices from Odyssee work."))
        # Lock the lines, in id order so that two wizards never deadlock: a
        # concurrent one waits here, then finds them billed.
        lines = self.line_ids
        if lines:
            self.env.cr.execute(
                """SELECT id FROM construction_odyssee_usage_line
                   WHERE id IN %s ORDER BY id FOR UPDATE""",
                [tuple(lines.ids)],
            )
            lines.invalidate_recordset()
            self.env["construction.odyssee.invoice.link"].invalidate_model()
        # Accountants need not follow the maintenance requests they bill: the work
        # lines they may read say which job, machine and PDF; read those as sudo.
        billable, _skipped = self._sort_lines()
        billable = billable.sudo()
        if not billable:
            raise UserError(self.env._("Nothing left to invoice in this selection."))
        groups = self._invoice_groups(billable)
        invoices = self.env["account.move"]
        for group_lines in groups.values():
            invoices |= self._create_invoice(group_lines)
        return {
            "type": "ir.actions.act_window",
            "res_model": "account.move",
            "name": self.env._("Invoices from Odyssee work"),
            "domain": [("id", "in", invoices.ids)],
            "view_mode": "list,form",
            "context": {"default_move_type": "out_invoice"},
        }

    def _price(self, line, product):
        if line.is_under_warranty:
            return 0.0
        return line.price if self.price_source == "odyssee" else product.lst_price

    def _label(self, line, detail):
        job = line.request_id.reference_back_office or line.request_id.name or line.job_guid[:8]
        label = self.env._(
            "Job %(job)s, approval %(approval)s: %(detail)s",
            job=job,
            approval=(line.approval_guid or "")[:8],
            detail=detail,
        )
        if line.is_under_warranty:
            label += self.env._(" (under warranty)")
        return label

    def _create_invoice(self, lines):
        planned = []  # (invoice line values, usage lines it bills)
        for line in lines.filtered(lambda line: line.kind == "part").sorted("id"):
            planned.append(
                (
                    {
                        "product_id": line.product_id.id,
                        "quantity": line.quantity,
                        "price_unit": self._price(line, line.product_id),
                        "name": self._label(line, line.name),
                    },
                    line,
                )
            )
        time_groups = defaultdict(lambda: self.env["construction.odyssee.usage.line"])
        for line in lines.filtered(lambda line: line.kind == "time"):
            product = line._service_product()
            key = (
                line.request_id,
                line.approval_guid,
                product,
                self._price(line, product),
                line.is_under_warranty,
                line.code,
            )
            time_groups[key] |= line
        for (_request, _approval, product, price, _warranty, _code), group in time_groups.items():
            first = group[:1]
            planned.append(
                (
                    {
                        "product_id": product.id,
                        "quantity": sum(group.mapped("quantity")),
                        "price_unit": price,
                        "product_uom_id": product.uom_id.id,
                        "name": self._label(first, first.name),
                    },
                    group,
                )
            )
        for values, billed in planned:
            account = billed[:1].project_id.account_id
            if account:
                values["analytic_distribution"] = {str(account.id): 100}
        customer = lines[:1].customer_id
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": customer.id,
                "invoice_date": self.invoice_date or False,
                "invoice_origin": ", ".join(sorted(set(lines.request_id.mapped("display_name"))))[
                    :250
                ],
                "invoice_line_ids": [Command.create(values) for values, _billed in planned],
            }
        )
        move_lines = invoice.invoice_line_ids.sorted("id")
        self.env["construction.odyssee.invoice.link"].create(
            [
                {"usage_line_id": usage.id, "move_line_id": move_line.id}
                for move_line, (_values, billed) in zip(move_lines, planned, strict=True)
                for usage in billed
            ]
        )
        # The final approval's PDF of every job billed, also for lines a daily
        # approval signed earlier (those carry no imported approval).
        finals = self.env["construction.odyssee.approval"].search(
            [
                ("backend_id", "in", lines.backend_id.ids),
                ("job_guid", "in", lines.mapped("job_guid")),
            ]
        )
        for attachment in (lines.approval_id | finals).pdf_attachment_id:
            attachment.sudo().copy({"res_model": "account.move", "res_id": invoice.id})
        return invoice
