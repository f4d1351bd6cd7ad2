/** @odoo-module **/
/**
 * Fleet map: the machines' last positions coloured by state, and the job sites'
 * geofences, on Leaflet (vendored under static/lib/leaflet, loaded on demand).
 * Without tiles (no network, tile server down) the shapes still show on a blank
 * background, and the side list works as the map's text version.
 */
import { Component, onMounted, onWillStart, onWillUnmount, useRef, useState } from "@odoo/owl";
import { loadCSS, loadJS } from "@web/core/assets";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";

const LEAFLET = "/construction_asset_sync/static/lib/leaflet/";
export const STATE_COLOURS = {
    alert: "#d9534f",
    silent: "#6c757d",
    working: "#28a745",
    idle: "#f0ad4e",
};

export class FleetMap extends Component {
    static template = "construction_asset_sync.FleetMap";
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.mapRef = useRef("map");
        this.colours = STATE_COLOURS;
        this.state = useState({ tilesFailed: false });
        onWillStart(async () => {
            await Promise.all([loadCSS(`${LEAFLET}leaflet.css`), loadJS(`${LEAFLET}leaflet.js`)]);
            this.data = await this.orm.call("maintenance.equipment", "fleet_map_data", []);
        });
        onMounted(() => this.renderMap());
        onWillUnmount(() => this.map?.remove());
    }

    renderMap() {
        const L = window.L;
        const map = L.map(this.mapRef.el);
        this.map = map;
        if (this.data.tile_url) {
            const tiles = L.tileLayer(this.data.tile_url, {
                maxZoom: 19,
                attribution: this.data.tile_attribution,
            });
            tiles.on("tileerror", () => {
                this.state.tilesFailed = true;
            });
            tiles.addTo(map);
        } else {
            this.state.tilesFailed = true;
        }
        const points = [];
        for (const site of this.data.sites) {
            const style = { color: "#2c6fbb", weight: 2, fillOpacity: 0.08, className: "o_fleet_map_site" };
            const shape =
                site.kind === "circle"
                    ? L.circle(site.center, { ...style, radius: site.radius_m })
                    : L.polygon(site.vertices, style);
            shape.bindTooltip(site.name).addTo(map);
            points.push(...(site.kind === "circle" ? [site.center] : site.vertices));
        }
        for (const machine of this.data.machines) {
            const marker = L.circleMarker([machine.lat, machine.lon], {
                radius: 9,
                color: "#333",
                weight: 1,
                fillColor: STATE_COLOURS[machine.state],
                fillOpacity: 0.9,
                className: `o_fleet_map_machine o_fleet_map_${machine.state}`,
            });
            marker.bindTooltip(`${machine.name}: ${machine.state_label}`);
            marker.on("click", () => this.openMachine(machine.id));
            marker.addTo(map);
            points.push([machine.lat, machine.lon]);
        }
        if (points.length) {
            map.fitBounds(points, { padding: [40, 40], maxZoom: 16 });
        } else {
            map.setView([46.5, 2.5], 5);
        }
    }

    openMachine(id) {
        this.action.doAction({
            type: "ir.actions.act_window",
            res_model: "maintenance.equipment",
            res_id: id,
            views: [[false, "form"]],
        });
    }
}

registry.category("actions").add("construction_asset_sync.fleet_map", FleetMap);
