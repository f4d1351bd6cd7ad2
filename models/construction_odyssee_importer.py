"""Pull completed work from Odyssee: approvals with their jobs and lines, then PDFs.

Each page of approvals is imported with a few batched calls (jobs, parts and
time lines of all the page's jobs at once) and commits together with the
watermark that covers it. A failure leaves the watermark where the last
committed page put it.
"""

import logging
import time
from datetime import timedelta

from odoo import api, fields, models

from ..protocols import odata, odyssee_client

_logger = logging.getLogger(__name__)
COMPLETED_STATUS = "c0a1e7ed-0000-4000-8000-00000000c0de"


class ConstructionOdysseeImporter(models.AbstractModel):
    _name = "construction.odyssee.importer"
    _description = "Odyssee importer"

    def _pull(self, backend, kind, controller, build_query, import_page, auto_commit, deadline):
        """Run one stream page by page; each page commits with the watermark it moved.

        ``import_page(client, page, stream)`` returns ``(rows imported, go on)``.
        Returns True when done, False on failure, None when ``deadline``
        (monotonic seconds) cut the run short.
        """
        stream = backend.stream_ids.filtered(lambda s: s.kind == kind)
        client = backend._client()
        count = 0
        try:
            for page in client.iter_pages(controller, build_query(stream)):
                with self.env.cr.savepoint():
                    imported, go_on = import_page(client, page, stream)
                count += imported
                backend._flush_call_log(client)
                if auto_commit:
                    self.env.cr.commit()
                    # Memory stays flat however long the backlog: nothing kept across pages.
                    self.env.invalidate_all()
                if not go_on:
                    break
                if deadline and time.monotonic() > deadline:
                    stream._record_success(count, client.calls)
                    return None
        except odyssee_client.OdysseeError as exc:
            backend._flush_call_log(client)
            stream._record_failure(f"{type(exc).__name__}: {exc} {exc.body}".strip(), client.calls)
            _logger.warning("Odyssee %s pull of %s failed: %s", kind, backend.name, exc)
            return False
        stream._record_success(count, client.calls)
        return True

    # -- approvals ---------------------------------------------------------------
    @api.model
    def _pull_approvals(self, backend, auto_commit=False, deadline=None):
        """Import final approvals with their jobs and lines; see ``_pull`` for the result."""

        def build_query(stream):
            return odata.Query(
                filter=odata.all_of(
                    odata.cond("modified_dateutc", "ge", self._since(stream, backend)),
                    odata.cond("is_daily_approval", "eq", False),
                ),
                orderby="modified_dateutc asc",
                top=backend.page_size,
            )

        def import_page(client, page, stream):
            final = [a for a in page if not a.get("ready_for_multi_approval")]
            imported = self._import_approvals(backend, client, final)
            if page:
                newest = max(odata.normalize_timestamp(a["modified_dateutc"]) for a in page)
                stream.watermark = max(stream.watermark, newest)
            return imported, True

        return self._pull(
            backend, "approvals", "JobApproval", build_query, import_page, auto_commit, deadline
        )

    def _since(self, stream, backend):
        moment = odata.parse_timestamp(stream.watermark)
        if moment.year <= 1980:
            return moment
        return moment - timedelta(seconds=backend.overlap_seconds)

    def _import_approvals(self, backend, client, approvals):
        if not approvals:
            return 0
        job_guids = sorted({a["jobs_id"].lower() for a in approvals})
        guids = [odata.Guid(g) for g in job_guids]
        jobs = {
            j["id"].lower(): j
            for j in client.iter_all(
                "Jobs", odata.Query(filter=odata.any_of("id", guids), top=backend.page_size)
            )
        }
        by_job = odata.Query(
            filter=odata.any_of("jobs_id", guids), orderby="id", top=backend.page_size
        )
        parts = list(client.iter_all("JobPartUsage", by_job))
        times = list(client.iter_all("JobNonPartUsage", by_job))

        Approval = self.env["construction.odyssee.approval"].sudo()
        existing = {
            a.odyssee_guid: a
            for a in Approval.search(
                [
                    ("backend_id", "=", backend.id),
                    ("odyssee_guid", "in", [a["id"].lower() for a in approvals]),
                ]
            )
        }
        requests = {
            guid: self._request_for_job(backend, guid, jobs.get(guid)) for guid in job_guids
        }
        records = {}
        for approval in approvals:
            guid, job_guid = approval["id"].lower(), approval["jobs_id"].lower()
            values = {
                "backend_id": backend.id,
                "odyssee_guid": guid,
                "job_guid": job_guid,
                "request_id": requests[job_guid].id,
                "modified_dateutc": odata.normalize_timestamp(approval["modified_dateutc"]),
                "signed_by": approval.get("contact_name") or False,
                "customer_remarks": approval.get("customer_remarks") or False,
                "is_signed": approval.get("is_signed", False),
                "rating": approval.get("rating") or 0,
            }
            record = existing.get(guid)
            if record:
                record.write(values)
            else:
                record = Approval.create(values)
            records[guid] = record
        self._import_lines(backend, parts, times, records, requests)
        return len(approvals)

    def _request_for_job(self, backend, job_guid, job):
        """The request a job belongs to; jobs born in Odyssee get a new one."""
        Request = self.env["maintenance.request"].sudo().with_company(backend.company_id)
        request = Request.browse()
        reference = (job or {}).get("reference_back_office")
        if reference:
            request = Request.search(
                [
                    ("reference_back_office", "=", reference),
                    ("company_id", "=", backend.company_id.id),
                ],
                limit=1,
            )
        if not request:
            request = Request.search(
                [("odyssee_job_guid", "=", job_guid), ("company_id", "=", backend.company_id.id)],
                limit=1,
            )
        status = (
            "Completed"
            if (job or {}).get("job_status_id", "").lower() == COMPLETED_STATUS
            else ("Open" if job else "Unknown")
        )
        values = {
            "odyssee_job_guid": job_guid,
            "odyssee_status": status,
            "odyssee_last_synced_at": fields.Datetime.now(),
        }
        if request:
            request.write(values)
            return request
        equipment = self._equipment_for_installation(backend, (job or {}).get("project_id"))
        return Request.with_context(mail_create_nolog=True, tracking_disable=True).create(
            dict(
                values,
                name=(job or {}).get("name")
                or self.env._("Odyssee job %(guid)s", guid=job_guid[:8]),
                description=(job or {}).get("remark") or False,
                request_origin="odyssee",
                equipment_id=equipment.id,
                company_id=backend.company_id.id,
                maintenance_type="corrective",
            )
        )

    def _equipment_for_installation(self, backend, installation_guid):
        Equipment = self.env["maintenance.equipment"].sudo()
        if not installation_guid or installation_guid == odata.EMPTY_GUID:
            return Equipment.browse()
        equipment = Equipment.search(
            [
                ("odyssee_installation_guid", "=ilike", installation_guid),
                ("company_id", "in", [backend.company_id.id, False]),
            ],
            limit=1,
        )
        if not equipment and backend.external_system_id:
            mapping = (
                self.env["construction.external.id"]
                .sudo()
                .search(
                    [
                        ("system_id", "=", backend.external_system_id.id),
                        ("external_id", "=ilike", installation_guid),
                    ],
                    limit=1,
                )
            )
            equipment = mapping.equipment_id
        return equipment

    def _import_lines(self, backend, parts, times, approvals, requests):
        Line = self.env["construction.odyssee.usage.line"].sudo()
        guids = [row["id"].lower() for row in parts + times]
        existing = {
            line.odyssee_guid: line
            for line in Line.search(
                [("backend_id", "=", backend.id), ("odyssee_guid", "in", guids)]
            )
        }
        codes = {row.get("code") for row in parts if row.get("code")}
        products = {
            p.default_code: p
            for p in self.env["product.product"]
            .sudo()
            .search(
                [
                    ("default_code", "in", list(codes)),
                    ("company_id", "in", [backend.company_id.id, False]),
                ]
            )
        }
        user_guids = {row.get("user_id", "").lower() for row in parts + times}
        employees = {
            e.odyssee_user_guid.lower(): e
            for e in self.env["hr.employee"]
            .sudo()
            .search(
                [
                    ("odyssee_user_guid", "in", list(user_guids)),
                    ("company_id", "in", [backend.company_id.id, False]),
                ]
            )
        }
        extra_approvals = {
            a.odyssee_guid: a
            for a in self.env["construction.odyssee.approval"]
            .sudo()
            .search(
                [
                    ("backend_id", "=", backend.id),
                    (
                        "odyssee_guid",
                        "in",
                        list({r.get("job_approval_id", "").lower() for r in parts + times}),
                    ),
                ]
            )
        }
        approvals = dict(extra_approvals, **approvals)
        for kind, rows in (("part", parts), ("time", times)):
            for row in rows:
                job_guid = row["jobs_id"].lower()
                approval_guid = (row.get("job_approval_id") or "").lower()
                request = requests.get(job_guid)
                values = {
                    "backend_id": backend.id,
                    "odyssee_guid": row["id"].lower(),
                    "kind": kind,
                    "job_guid": job_guid,
                    "approval_guid": approval_guid,
                    "approval_id": approvals[approval_guid].id
                    if approval_guid in approvals
                    else False,
                    "request_id": request.id if request else False,
                    "quantity": row.get("quantity") or 0.0,
                    "price": row.get("price") or 0.0,
                    "is_under_warranty": row.get("is_under_warranty", False),
                    "working_date": odata.parse_timestamp(row["working_date"]).date()
                    if row.get("working_date") and not row["working_date"].startswith("1980")
                    else False,
                    "user_guid": (row.get("user_id") or "").lower(),
                }
                issues = []
                employee = employees.get(values["user_guid"])
                values["employee_id"] = employee.id if employee else False
                if kind == "part":
                    code = row.get("code") or ""
                    product = products.get(code)
                    values.update(
                        name=row.get("name") or code or self.env._("Part"),
                        code=code,
                        product_id=product.id if product else False,
                    )
                    if not product:
                        issues.append(
                            self.env._("Unknown article %(code)s", code=code or "(free text)")
                        )
                else:
                    values.update(
                        name=row.get("description") or row.get("type_code") or self.env._("Time"),
                        code=row.get("line_code") or "",
                        type_code=row.get("type_code") or "",
                    )
                    if not employee:
                        issues.append(
                            self.env._("Unknown technician %(guid)s", guid=values["user_guid"][:8])
                        )
                if request and not request.equipment_id:
                    issues.append(self.env._("Unknown machine"))
                values["issue"] = "; ".join(issues) or False
                line = existing.get(values["odyssee_guid"])
                if line:
                    line.write(values)
                else:
                    line = Line.create(values)
                if kind == "time":
                    self._sync_timesheet(backend, line)

    def _sync_timesheet(self, backend, line):
        """The timesheet of a time line, on the machine's job site (or the default project)."""
        project = line.request_id.equipment_id.job_site_project_id or backend.default_project_id
        if not line.employee_id or not project:
            if not project and not line.issue:
                line.issue = self.env._("No project for the timesheet")
            return
        values = {
            "name": line.name,
            "project_id": project.id,
            "employee_id": line.employee_id.id,
            "unit_amount": line.quantity,
            "date": line.working_date or fields.Date.today(),
            "odyssee_usage_line_id": line.id,
            "company_id": backend.company_id.id,
        }
        if line.timesheet_id:
            line.timesheet_id.sudo().write(values)
        else:
            line.timesheet_id = self.env["account.analytic.line"].sudo().create(values)

    # -- PDFs --------------------------------------------------------------------
    @api.model
    def _pull_pdfs(self, backend, auto_commit=False):
        """Attach approval PDFs; one whose approval is not imported yet waits for a later run."""

        def build_query(stream):
            return odata.Query(
                filter=odata.all_of(
                    odata.cond("modified_dateutc", "ge", self._since(stream, backend)),
                    odata.cond("file_type_name", "eq", "JOB_APPROVAL"),
                    odata.cond("db_table_name", "eq", "job_approval"),
                ),
                orderby="modified_dateutc asc",
                select=["id", "id_in_table", "file_name", "name", "mime_type", "modified_dateutc"],
                top=backend.page_size,
            )

        def import_page(client, page, stream):
            approvals = {
                approval.odyssee_guid: approval
                for approval in self.env["construction.odyssee.approval"]
                .sudo()
                .search(
                    [
                        ("backend_id", "=", backend.id),
                        ("odyssee_guid", "in", [row["id_in_table"].lower() for row in page]),
                    ]
                )
            }
            attached = 0
            for row in page:
                approval = approvals.get(row["id_in_table"].lower())
                if not approval:
                    return attached, False  # the watermark stays before it
                if not approval.pdf_attachment_id:
                    content = client.get("DbFile", row["id"])["file_content"]
                    approval.pdf_attachment_id = self._attach_pdf(backend, approval, row, content)
                    attached += 1
                stream.watermark = max(
                    stream.watermark, odata.normalize_timestamp(row["modified_dateutc"])
                )
            return attached, True

        return self._pull(backend, "pdfs", "DbFile", build_query, import_page, auto_commit, None)

    def _attach_pdf(self, backend, approval, row, content):
        request = approval.request_id
        return (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": row.get("file_name") or f"{row['id']}.pdf",
                    "datas": content,
                    "mimetype": row.get("mime_type") or "application/pdf",
                    "res_model": request._name if request else approval._name,
                    "res_id": request.id or approval.id,
                    "company_id": backend.company_id.id,
                }
            )
        )
