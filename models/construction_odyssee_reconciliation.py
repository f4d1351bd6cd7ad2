from odoo import fields, models, tools


class ConstructionOdysseeReconciliation(models.Model):
    """Per job: hours recorded in Odyssee, invoiced, left to invoice, and engine hours."""

    _name = "construction.odyssee.reconciliation"
    _description = "Odyssee work reconciliation"
    _auto = False
    _order = "last_date desc"

    request_id = fields.Many2one("maintenance.request", string="Job", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    customer_id = fields.Many2one("res.partner", readonly=True)
    equipment_id = fields.Many2one("maintenance.equipment", readonly=True)
    first_date = fields.Date(readonly=True)
    last_date = fields.Date(readonly=True)
    hours_recorded = fields.Float(readonly=True)
    hours_invoiced = fields.Float(readonly=True)
    hours_to_invoice = fields.Float(readonly=True)
    parts_to_invoice = fields.Integer(readonly=True)
    engine_hours = fields.Float(
        string="Engine hours (telematics)",
        readonly=True,
        help="Rise of the machine's hour meter over the job's dates, when telematics reports it.",
    )
    difference_hours = fields.Float(string="Recorded minus engine hours", readonly=True)
    mismatch = fields.Boolean(readonly=True, help="Recorded and engine hours differ by over 20 %.")

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(f"""
            CREATE VIEW {self._table} AS
            WITH per_job AS (
                SELECT l.request_id,
                       max(l.company_id) AS company_id,
                       max(l.customer_id) AS customer_id,
                       min(l.working_date) AS first_date,
                       max(l.working_date) AS last_date,
                       sum(l.quantity) FILTER (WHERE l.kind = 'time') AS hours_recorded,
                       sum(l.quantity) FILTER (
                           WHERE l.kind = 'time' AND l.invoice_status = 'invoiced'
                       ) AS hours_invoiced,
                       sum(l.quantity) FILTER (
                           WHERE l.kind = 'time' AND l.invoice_status = 'to_invoice'
                       ) AS hours_to_invoice,
                       count(*) FILTER (WHERE l.kind = 'part' AND l.invoice_status = 'to_invoice')
                           AS parts_to_invoice
                FROM construction_odyssee_usage_line l
                WHERE l.request_id IS NOT NULL
                GROUP BY l.request_id
            ), with_engine AS (
                SELECT j.*, r.equipment_id,
                       (SELECT max(t.engine_hours) - min(t.engine_hours)
                        FROM construction_telematics_reading t
                        WHERE t.equipment_id = r.equipment_id AND NOT t.suspect
                          AND t.at >= j.first_date AND t.at < j.last_date + 1) AS engine_hours
                FROM per_job j JOIN maintenance_request r ON r.id = j.request_id
            )
            SELECT request_id AS id, request_id, company_id, customer_id, equipment_id,
                   first_date, last_date,
                   coalesce(hours_recorded, 0) AS hours_recorded,
                   coalesce(hours_invoiced, 0) AS hours_invoiced,
                   coalesce(hours_to_invoice, 0) AS hours_to_invoice,
                   parts_to_invoice, engine_hours,
                   coalesce(hours_recorded, 0) - engine_hours AS difference_hours,
                   coalesce(engine_hours IS NOT NULL
                            AND abs(coalesce(hours_recorded, 0) - engine_hours)
                                > greatest(0.5, 0.2 * engine_hours), false) AS mismatch
            FROM with_engine
        """)
