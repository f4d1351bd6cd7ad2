/** @odoo-module */
// Maintenance manager: review what telematics opened, with what it needs to decide.
import { registry } from "@web/core/registry";

const row = (name) => `.o_list_view .o_data_row:contains('${name}')`;

registry.category("web_tour.tours").add("construction_asset_sync_maintenance_manager", {
    url: "/web#action=construction_asset_sync.maintenance_request_action_to_review",
    steps: () => [
        {
            content: "The machine and the alert code of each request",
            trigger: `${row("Tour DEF sensor fault")} td[name='equipment_id']:contains('Excavator tour')`,
        },
        {
            content: "Its severity",
            trigger: `${row("Tour DEF sensor fault")} td[name='alert_severity']:contains('Critical')`,
        },
        {
            content: "Its code and job site",
            trigger: `${row("Tour DEF sensor fault")}:contains('SPN3031-FMI9'):contains('Site A tour')`,
        },
        {
            content: "Its priority",
            trigger: `${row("Tour DEF sensor fault")} td[name='priority'] .o_priority`,
        },
        {
            content: "When the alert happened",
            trigger: `${row("Tour DEF sensor fault")} td[name='alert_occurred_at']:contains('2026')`,
        },
        {
            content: "Open the request",
            trigger: `${row("Tour DEF sensor fault")} td[name='name']`,
            run: "click",
        },
        {
            content: "Open the field service tab",
            trigger: ".o_form_view .nav-link:contains('Field service')",
            run: "click",
        },
        {
            content: "The sensor snapshot reads as values with units",
            trigger: ".o_sensor_snapshot:contains('Fuel level'):contains('42 %'):contains('Engine hours')",
        },
        {
            content: "Review it",
            trigger: ".o_form_view button[name='action_mark_reviewed']",
            run: "click",
        },
        {
            content: "Reviewed: the ribbon is gone",
            trigger: ".o_form_view:not(:has(.ribbon:contains('To review'))) .o_field_widget[name='reviewed_by_id']",
        },
        {
            content: "Back to the list",
            trigger: ".o_breadcrumb .o_back_button, .o_breadcrumb .breadcrumb-item a",
            run: "click",
        },
        {
            content: "The reviewed request left the list; the other one waits",
            trigger: `.o_list_view:not(:has(.o_data_row:contains('Tour DEF sensor fault'))) .o_data_row:contains('Tour coolant warning')`,
        },
    ],
});
