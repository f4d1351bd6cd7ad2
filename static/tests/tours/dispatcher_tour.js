/** @odoo-module */
// Dispatcher: which machines went silent, and each machine's state on its card.
import { registry } from "@web/core/registry";

const card = (name) => `.o_kanban_record:contains('${name}')`;

registry.category("web_tour.tours").add("construction_asset_sync_dispatcher", {
    url: "/web#action=maintenance.hr_equipment_action",
    steps: () => [
        {
            content: "Open Integration",
            trigger: ".o_menu_sections button[data-menu-xmlid='construction_asset_sync.menu_integration']",
            run: "click",
        },
        {
            content: "Open the silent machines",
            trigger: ".dropdown-item[data-menu-xmlid='construction_asset_sync.menu_silent_equipment']",
            run: "click",
        },
        {
            content: "The list is filtered on silent machines",
            trigger: ".o_searchview_facet:contains('Silent')",
        },
        {
            content: "The machine that stopped reporting is listed, flagged silent",
            trigger: `${card("Excavator tour")} .o_equipment_seen.text-bg-danger:contains('Silent, last seen')`,
        },
        {
            content: "The machine that still reports is not",
            trigger: `.o_kanban_view:not(:has(${card("Loader tour")}))`,
        },
        {
            content: "Back to all machines",
            trigger: ".o_menu_sections [data-menu-xmlid='maintenance.menu_equipment_form']",
            run: "click",
        },
        {
            content: "Engine hours on the card",
            trigger: `${card("Excavator tour")} .o_equipment_hours:contains('1,234.50')`,
        },
        {
            content: "Fuel level on the card",
            trigger: `${card("Excavator tour")} .o_equipment_fuel:contains('42')`,
        },
        {
            content: "Job site on the card",
            trigger: `${card("Excavator tour")}:contains('Site A tour')`,
        },
        {
            content: "Open alerts on the card",
            trigger: `${card("Excavator tour")} .o_equipment_alerts:contains('2')`,
        },
        {
            content: "A machine that reports says when it was last seen",
            trigger: `${card("Loader tour")} .o_equipment_seen.text-bg-light:contains('Seen 1 h ago')`,
        },
    ],
});
