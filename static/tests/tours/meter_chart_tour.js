/** @odoo-module **/
import { registry } from "@web/core/registry";

// A machine's engine-hours chart: 1,700 -> 1,740 h is drawn on an axis spanning
// that range, read from the Chart.js instance itself (not from the page's text).
registry.category("web_tour.tours").add("construction_asset_sync_meter_chart", {
    steps: () => [
        {
            content: "Open the machine's engine-hours chart",
            trigger: ".o_form_view button[name=action_open_engine_hours_chart]",
            run: "click",
        },
        {
            content: "The chart's y axis spans the meter's range, not 0 to it",
            trigger: ".o_graph_renderer canvas",
            async run() {
                let chart;
                for (let tries = 0; tries < 50 && !chart; tries++) {
                    chart = window.Chart && window.Chart.getChart(this.anchor);
                    if (!chart) {
                        await new Promise((resolve) => setTimeout(resolve, 100));
                    }
                }
                if (!chart) {
                    throw new Error("no chart drawn on the canvas");
                }
                const { min, max } = chart.scales.y;
                const values = chart.data.datasets.flatMap((dataset) => dataset.data);
                if (Math.min(...values) !== 1700 || Math.max(...values) !== 1740) {
                    throw new Error(`unexpected values ${values}`);
                }
                if (!(min > 1600 && min <= 1700 && max >= 1740 && max < 1840)) {
                    throw new Error(`engine hours axis spans ${min} to ${max}`);
                }
                document.body.classList.add("o_meter_chart_checked");
            },
        },
        {
            content: "Checked",
            trigger: "body.o_meter_chart_checked",
        },
    ],
});
