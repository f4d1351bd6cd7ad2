/** @odoo-module */
// Accountant: what Odyssee work is worth, and what the invoices will be before they exist.
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("construction_asset_sync_accountant", {
    url: "/web#action=construction_asset_sync.construction_odyssee_usage_line_to_invoice_action",
    steps: () => [
        {
            content: "The customer's group adds up amounts (the unbillable line included)",
            trigger: ".o_group_header:contains('Builder & Sons tour'):contains('445.75')",
            run: "click",
        },
        {
            content: "Each line has its amount (quantity x price)",
            trigger: ".o_data_row:contains('Oil filter') td[name='amount']:contains('76.00')",
        },
        {
            content: "and its unit",
            trigger: ".o_data_row:contains('Labour') td[name='unit']:contains('h')",
        },
        {
            content: "Select the lines",
            trigger: "thead .o_list_record_selector input",
            run: "click",
        },
        {
            content: "Actions",
            trigger: ".o_cp_action_menus button",
            run: "click",
        },
        {
            content: "Invoice Odyssee work",
            trigger: ".o-dropdown--menu .dropdown-item:contains('Invoice Odyssee work')",
            run: "click",
        },
        {
            content: "The invoice to create and its total, before anything is created",
            trigger: ".modal .o_invoice_preview:contains('Builder & Sons tour') .o_preview_total:contains('369.75')",
        },
        {
            content: "A line without a known machine is left out, with its reason",
            trigger: ".modal .o_data_row:contains('Orphan filter') td[name='invoice_block_reason']:contains('unknown machine')",
        },
        {
            trigger: ".modal .o_invoice_left_out:contains('1')",
            async run() {
                console.log("cas-screenshot:accountant_invoice_preview");
                await new Promise((resolve) => setTimeout(resolve, 1500));
            },
        },
        {
            content: "Create the draft invoice",
            trigger: ".modal button[name='action_create_invoices']",
            run: "click",
        },
        {
            content: "The draft invoice is listed",
            trigger: ".o_list_view .o_data_row:contains('Builder & Sons tour')",
        },
        {
            content: "Back to the work to invoice",
            trigger: ".o_breadcrumb .breadcrumb-item a",
            run: "click",
        },
        {
            content: "What is left: the line Odoo cannot bill",
            trigger: ".o_group_header:contains('Builder & Sons tour (1)'):contains('76.00')",
        },
        {
            content: "with its reason",
            trigger: ".o_data_row:contains('Orphan filter') td[name='invoice_block_reason']:contains('unknown machine')",
        },
    ],
});
