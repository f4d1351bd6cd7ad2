/** @odoo-module **/
import { registry } from "@web/core/registry";

// The fleet map without tiles: positions and sites drawn, the click through works.
registry.category("web_tour.tours").add("construction_asset_sync_fleet_map", {
    url: "/odoo/action-construction_asset_sync.fleet_map_action",
    steps: () => [
        {
            content: "Without tiles the map says so",
            trigger: ".o_fleet_map_no_tiles",
        },
        {
            content: "The site's geofence is drawn",
            trigger: ".o_fleet_map_canvas path.o_fleet_map_site",
        },
        {
            content: "The machine with an open alert is red on the map",
            trigger: ".o_fleet_map_canvas path.o_fleet_map_machine.o_fleet_map_alert",
            run: "click",
        },
        {
            content: "A click on it opens the machine",
            trigger: ".o_form_view .o_breadcrumb:contains(Map excavator)",
        },
    ],
});
