"""Pull completed work from Odyssee: approvals with their jobs and lines, then PDFs.

The importer of the connector pattern: the adapter
(``protocols/odyssee_adapter.py``) reads pages, the mapper
(``protocols/odyssee_mapper.py``) turns records into values, the binder
(``construction.external.id``) resolves and records ids, and this model writes
Odoo records. Each page commits together with the watermark that covers it, so
a failure leaves the watermark where the last committed page put it.
"""

import time
from datetime import timedelta

from odoo import api, fields, models

from ..protocols import odata, odyssee_mapper
from ..protocols.odyssee_adapter import OdysseeAdapter

MACHINE = "maintenance.equipment"


class ConstructionOdysseeImporter(models.AbstractModel):
    _name = "construction.odyssee.importer"
    _description = "Odyssee importer"

    # -- the two pulls: one method per stream ---------------------------------------
    @api.model
    def _pull_approvals(self, stream, client, call_log, auto_commit=False, deadline=None):
        """Import final approvals page by page; returns ``(approvals, finished)``.

        ``finished`` is False when ``deadline`` (monotonic seconds) cut the run short.
        """
        backend = stream.backend_id
        adapter = OdysseeAdapter(client, backend.page_size)
        count = 0
        for page in adapter.final_approval_pages(self._since(stream)):
            with self.env.cr.savepoint():
                count += self._import_approval_page(backend, adapter, page)
                if page:
                    stream.watermark = max(stream.watermark, odyssee_mapper.newest_timestamp(page))
            self._commit_page(backend, call_log, auto_commit)
            if deadline and time.monotonic() > deadline:
                return count, False
        return count, True

    @api.model
    def _pull_pdfs(self, stream, client, call_log, auto_commit=False, deadline=None):
        """Attach approval PDFs; one whose approval is not imported yet waits for a later run."""
        backend = stream.backend_id
        adapter = OdysseeAdapter(client, backend.page_size)
        count = 0
        for page in adapter.approval_file_pages(self._since(stream)):
            with self.env.cr.savepoint():
                attached, blocked = self._attach_pdf_page(stream, adapter, page)
            count += attached
            self._commit_page(backend, call_log, auto_commit)
            if blocked:
                break
        return count, True

    def _since(self, stream):
        moment = odata.parse_timestamp(stream.watermark)
        if moment.year <= 1980:
            return moment
        # Re-read a little: clock skew, and rows sharing a timestamp at a page edge.
        return moment - timedelta(seconds=stream.backend_id.overlap_seconds)

    def _commit_page(self, backend, call_log, auto_commit):
        backend._write_call_log(call_log)
        if auto_commit:
            self.env.cr.commit()
            # Memory stays flat however long the backlog: nothing kept across pages.
            self.env.invalidate_all()

    # -- one page of approvals ----------------------------------------------------
    def _import_approval_page(self, backend, adapter, rows):
        final = [row for row in rows if odyssee_mapper.is_final_approval(row)]
        if not final:
            return 0
        work = adapter.work_of(final)
        approvals = [odyssee_mapper.approval(row) for row in final]
        requests = self._requests_for_jobs(backend, {a["job_guid"] for a in approvals}, work.jobs)
        approval_records = self._upsert_bound(
            backend,
            "construction.odyssee.approval",
            [
                dict(a, backend_id=backend.id, request_id=requests[a["job_guid"]].id)
                for a in approvals
            ],
        )
        lines = [odyssee_mapper.usage_line("part", row) for row in work.parts]
        lines += [odyssee_mapper.usage_line("time", row) for row in work.times]
        self._import_lines(backend, lines, approval_records, requests)
        return len(final)

    def _upsert_bound(self, backend, res_model, values_list):
        """Create or update one record per ``odyssee_guid``; returns ``{guid: record}``."""
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        by_guid = {values["odyssee_guid"]: values for values in values_list}
        records = Binder._to_internal(system, res_model, by_guid)
        new = [guid for guid in by_guid if guid not in records]
        for guid, record in records.items():
            record.write(self._own_values(by_guid[guid]))
        created = (
            self.env[res_model].sudo().create([self._own_values(by_guid[guid]) for guid in new])
        )
        Binder._bind(system, list(zip(created, new, strict=True)))
        records.update(zip(new, created, strict=True))
        return records

    @staticmethod
    def _own_values(values):
        return {key: value for key, value in values.items() if key != "odyssee_guid"}

    def _requests_for_jobs(self, backend, job_guids, jobs):
        """``{job guid: request}``; a job is linked by its GUID, then by our reference.

        A job born in Odyssee gets a new request, on the machine bound to its installation.
        """
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        Request = self.env["maintenance.request"].sudo().with_company(backend.company_id)
        jobs = {guid: odyssee_mapper.job(jobs.get(guid)) for guid in job_guids}
        requests = Binder._to_internal(system, "maintenance.request", job_guids)
        references = [
            j["reference_back_office"]
            for guid, j in jobs.items()
            if guid not in requests and j["reference_back_office"]
        ]
        by_reference = {
            r.reference_back_office: r
            for r in Request.search(
                [
                    ("reference_back_office", "in", references),
                    ("company_id", "=", backend.company_id.id),
                ]
            )
        }
        machines = Binder._to_internal(
            system, MACHINE, [j["installation_guid"] for j in jobs.values()]
        )
        now, new_bindings = fields.Datetime.now(), []
        for guid, job in jobs.items():
            values = {"odyssee_status": job["status"], "odyssee_last_synced_at": now}
            request = requests.get(guid) or by_reference.get(job["reference_back_office"])
            if request:
                request.write(values)
            else:
                machine = machines.get(job["installation_guid"])
                request = Request.with_context(
                    mail_create_nolog=True, tracking_disable=True
                ).create(
                    dict(
                        values,
                        name=job.get("name") or self.env._("Odyssee job %(guid)s", guid=guid[:8]),
                        description=job.get("remark") or False,
                        request_origin="odyssee",
                        equipment_id=machine.id if machine else False,
                        company_id=backend.company_id.id,
                        maintenance_type="corrective",
                    )
                )
            if guid not in requests:
                new_bindings.append((request, guid))
            requests[guid] = request
        Binder._bind(system, new_bindings)
        return requests

    def _import_lines(self, backend, lines, approvals, requests):
        """Parts and time lines, kept whatever Odoo does not know (with the issue written)."""
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        codes = {line["article_code"] for line in lines if line.get("article_code")}
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
        employees = Binder._to_internal(system, "hr.employee", {ln["user_guid"] for ln in lines})
        missing = {ln["approval_guid"] for ln in lines} - set(approvals) - {""}
        approvals = dict(approvals) | Binder._to_internal(
            system, "construction.odyssee.approval", missing
        )
        values_list = []
        for line in lines:
            request = requests.get(line["job_guid"])
            approval = approvals.get(line["approval_guid"])
            employee = employees.get(line["user_guid"])
            values = {key: value for key, value in line.items() if key not in ("article_code",)} | {
                "backend_id": backend.id,
                "approval_id": approval.id if approval else False,
                "request_id": request.id if request else False,
                "employee_id": employee.id if employee else False,
            }
            issues = []
            if line["kind"] == "part":
                product = products.get(line["article_code"])
                values["product_id"] = product.id if product else False
                values["name"] = line["name"] or self.env._("Part")
                if not product:
                    issues.append(
                        self.env._(
                            "Unknown article %(code)s", code=line["article_code"] or "(free text)"
                        )
                    )
            else:
                values["name"] = line["name"] or self.env._("Time")
                if not employee:
                    issues.append(
                        self.env._("Unknown technician %(guid)s", guid=line["user_guid"][:8])
                    )
            if request and not request.equipment_id:
                issues.append(self.env._("Unknown machine"))
            values["issue"] = "; ".join(issues) or False
            values_list.append(values)
        records = self._upsert_bound(backend, "construction.odyssee.usage.line", values_list)
        for line in records.values():
            if line.kind == "time":
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

    # -- one page of PDFs ---------------------------------------------------------
    def _attach_pdf_page(self, stream, adapter, rows):
        """Attach the page's PDFs; returns ``(attached, blocked)``.

        ``blocked``: a file's approval is not imported yet, so the watermark
        stays before it and the next run tries again.
        """
        files = [odyssee_mapper.approval_file(row) for row in rows]
        approvals = self.env["construction.external.id"]._to_internal(
            stream.backend_id.external_system_id,
            "construction.odyssee.approval",
            [f["approval_guid"] for f in files],
        )
        attached = 0
        for file in files:
            approval = approvals.get(file["approval_guid"])
            if not approval:
                return attached, True
            if not approval.pdf_attachment_id:
                content = adapter.file_content(file["file_guid"])
                approval.pdf_attachment_id = self._attach_pdf(
                    stream.backend_id, approval, file, content
                )
                attached += 1
            stream.watermark = max(stream.watermark, file["modified_dateutc"])
        return attached, False

    def _attach_pdf(self, backend, approval, file, content):
        request = approval.request_id
        return (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": file["file_name"],
                    "datas": content,
                    "mimetype": file["mimetype"],
                    "res_model": request._name if request else approval._name,
                    "res_id": request.id or approval.id,
                    "company_id": backend.company_id.id,
                }
            )
        )
