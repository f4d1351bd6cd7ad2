/** @odoo-module **/
import { registry } from "@web/core/registry";

// The fleet map without tiles: positions and sites drawn, the click through works.
registry.category("web_tour.tours").add("construction_asset_sync_fleet_map", {
    url: "/web#action=construction_asset_sync.fleet_map_action",
    steps: () => [
        {
            content: "Without tiles the map says so",
            trigger: ".o_fleet_map_no_tiles",
        },
        {
            content: "A job site's geofence is drawn",
            trigger: ".o_fleet_map_canvas path.o_fleet_map_site",
        },
        {
            content: "A machine with an open alert is red on the map: click it",
            trigger: ".o_fleet_map_canvas path.o_fleet_map_machine.o_fleet_map_alert",
            run: "click",
        },
        {
            content: "The machine opens; back to the map",
            trigger: ".o_control_panel .o_breadcrumb a:contains(Fleet map)",
            run: "click",
        },
        {
            content: "The side list names the test machine: click it",
            trigger: ".o_fleet_map_row:contains(Map excavator)",
            run: "click",
        },
        {
            content: "Its form opens",
            trigger: ".o_control_panel .o_breadcrumb:contains(Map excavator)",
        },
    ],
});
