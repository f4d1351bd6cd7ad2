/** @odoo-module */
// Integration administrator: what is failing, and mapping the device that waits.
import { registry } from "@web/core/registry";

const row = (name) => `.o_list_view .o_data_row:contains('${name}')`;

registry.category("web_tour.tours").add("construction_asset_sync_integration_admin", {
    url: "/web#action=construction_asset_sync.construction_integration_health_action",
    steps: () => [
        {
            content: "The stalled source is failing, with what is wrong",
            trigger: `${row("Tour stalled gateway")} td[name='health']:contains('Failing')`,
        },
        {
            content: "It says how long events wait",
            trigger: `${row("Tour stalled gateway")}:contains('Processing is stalled')`,
        },
        {
            content: "The source with an unmapped device needs attention",
            trigger: `${row("Tour gateway")} td[name='health']:contains('Needs attention')`,
        },
        {
            content: "An activity is planned for it",
            trigger: `${row("Tour gateway")} td[name='activity_ids'] .o-mail-ListActivity-summary:contains('unmapped')`,
        },
        {
            content: "Open Integration",
            trigger: ".o_menu_sections button[data-menu-xmlid='construction_asset_sync.menu_integration']",
            run: "click",
        },
        {
            content: "Open the telematics ledger",
            trigger: ".dropdown-item[data-menu-xmlid='construction_asset_sync.menu_telematics_event']",
            run: "click",
        },
        {
            content: "The event has a readable title; map its device",
            trigger: `${row("Alert SPN-TOUR from TOUR-NEW")} button[name='action_map_device']`,
            run: "click",
        },
        {
            content: "The mapping comes prefilled with the device",
            trigger: ".modal .o_field_widget[name='external_id'] input:value(TOUR-NEW)",
        },
        {
            content: "Choose the machine",
            trigger: ".modal .o_field_widget[name='equipment_id'] input",
            run: "edit Loader tour",
        },
        {
            trigger: ".ui-autocomplete .ui-menu-item a:contains('Loader tour')",
            run: "click",
        },
        {
            content: "Save the mapping",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "The event no longer waits for a mapping",
            trigger: `.o_list_view:not(:has(${row("TOUR-NEW")}))`,
        },
        {
            content: "Back to integration health",
            trigger: ".o_menu_sections button[data-menu-xmlid='construction_asset_sync.menu_integration']",
            run: "click",
        },
        {
            trigger: ".dropdown-item[data-menu-xmlid='construction_asset_sync.menu_integration_health']",
            run: "click",
        },
        {
            content: "The health screen lists every source and stream",
            trigger: `${row("Tour stalled gateway")} td[name='health']:contains('Failing')`,
        },
    ],
});
