/** @odoo-module **/
/**
 * A graph view for meters (engine hours, odometer): the y axis spans the data's
 * real range instead of starting at 0, so 1,700 -> 1,740 h is not a flat line.
 * Odoo's graph renderer forces the axis to 0 (beginAtZero, suggestedMin 0); this
 * one lets Chart.js fit the axis to the values, with a little room around them.
 * Used as ``js_class="construction_meter_graph"`` on a graph view.
 */
import { registry } from "@web/core/registry";
import { graphView } from "@web/views/graph/graph_view";
import { GraphRenderer } from "@web/views/graph/graph_renderer";

export class MeterGraphRenderer extends GraphRenderer {
    getScaleOptions() {
        const scales = super.getScaleOptions();
        if (scales.y) {
            scales.y.beginAtZero = false;
            delete scales.y.suggestedMin;
            delete scales.y.suggestedMax;
            scales.y.grace = "5%";
        }
        return scales;
    }
}

export const meterGraphView = { ...graphView, Renderer: MeterGraphRenderer };

registry.category("views").add("construction_meter_graph", meterGraphView);
