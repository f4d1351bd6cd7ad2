"""Pull completed work from Odyssee: approvals with their jobs and lines, then PDFs.

The importer of the connector pattern: the adapter
(``protocols/odyssee_adapter.py``) reads pages, the mapper
(``protocols/odyssee_mapper.py``) turns records into values, the binder
(``construction.external.id``) resolves and records ids, and this model writes
Odoo records. Rows are imported a hundred at a time (the pages of 20 Odyssee
serves, joined), each hundred committed together with the watermark that covers
it, so a failure leaves the watermark where the last committed import put it.
"""

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from odoo import api, fields, models

from ..protocols import odata, odyssee_client, odyssee_mapper
from ..protocols.external_ids import normalize
from ..protocols.odyssee_adapter import OdysseeAdapter, batches
from .construction_odyssee_stream import record_error

_logger = logging.getLogger(__name__)
MACHINE = "maintenance.equipment"
APPROVAL = "construction.odyssee.approval"
# Defaults of maintenance.request computed by a search, the same for every request of a page.
REQUEST_SEARCHED_DEFAULTS = ("stage_id", "maintenance_team_id", "employee_id")
# Rows imported in one transaction, with the watermark after them: five of the
# pages of 20 Odyssee serves. A transaction per page of 20 spent a third of an
# import on what each costs once (commit, call log, caches read again).
ROWS_PER_TRANSACTION = 100


class ConstructionOdysseeImporter(models.AbstractModel):
    _name = "construction.odyssee.importer"
    _description = "Odyssee importer"

    # -- the pulls: rows changed since a watermark, then PDFs ----------------------
    # Per stream kind: the adapter's pages and the method importing a batch of them
    # (``ROWS_PER_TRANSACTION`` rows of whole pages; the methods say "page" for it).
    # Jobs: a dispatcher planning or dispatching a job in Odyssee moves its request
    # (status, mapped stage, a chatter note) without waiting for an approval, and a
    # job born in Odyssee becomes a request (a canceled one does not); the approvals
    # pull, which runs next, finds the jobs of its approvals bound already.
    CHANGED_ROWS = {
        "jobs": ("job_pages", "_import_job_page"),
        "approvals": ("final_approval_pages", "_import_approval_page"),
    }

    @api.model
    def _pull_changed(self, stream, client, call_log, auto_commit=False, deadline=None):
        """Read the rows changed since the watermark, each ``ROWS_PER_TRANSACTION`` (whole
        pages) committed with it.

        ``finished`` is False when ``deadline`` (monotonic seconds) cut the run
        short. A batch that fails is imported row by row: the good rows come in,
        the ones at fault are set aside (``construction.odyssee.attention``)
        and the stream goes on; they are tried again on the next runs,
        ``backend.max_attempts`` times, then wait for a person. A failure in
        Odoo is isolated at once; an error Odyssee answers for the page (a
        record it cannot serve) once the stream has failed on it
        ``max_attempts`` times, so that an outage never sets rows aside.
        Returns ``(counts, finished)``.
        """
        backend = stream.backend_id
        adapter = OdysseeAdapter(client, backend.page_size)
        pages_name, import_name = self.CHANGED_ROWS[stream.kind]
        pages_of, import_rows = getattr(adapter, pages_name), getattr(self, import_name)
        counts = {"new": 0, "reread": 0}
        self._retry_failed_rows(stream, adapter, import_rows, counts, auto_commit)
        # Rows that failed max_attempts times wait for a person, even when re-read.
        parked = set(stream._parked().mapped("external_id"))
        if stream.resume_after_id:  # the last run was cut short: go on right after it
            pages = pages_of(odata.parse_timestamp(stream.watermark), stream.resume_after_id)
        else:
            pages = pages_of(self._since(stream))
        stream.resume_after_id = False
        isolate_remote = stream.failed_runs + 1 >= backend.max_attempts
        for batch in batches(pages, ROWS_PER_TRANSACTION):
            rows = [row for row in batch if normalize(row.get("id")) not in parked]
            try:
                with self.env.cr.savepoint():
                    self._add(counts, import_rows(backend, adapter, rows))
            except odyssee_client.OdysseeError as exc:
                if not (isolate_remote and record_error(exc)):
                    raise
                _logger.warning("Odyssee %s batch failed again, row by row: %s", stream.kind, exc)
                self._import_one_by_one(stream, adapter, import_rows, rows, counts)
            except Exception as exc:
                _logger.warning(
                    "Odyssee %s batch failed, importing it row by row: %s", stream.kind, exc
                )
                self._import_one_by_one(stream, adapter, import_rows, rows, counts)
            if batch:
                stream.watermark = max(stream.watermark, odyssee_mapper.newest_timestamp(batch))
            if deadline and time.monotonic() > deadline:
                last = batch[-1] if batch else None
                if last and odata.normalize_timestamp(last["modified_dateutc"]) == stream.watermark:
                    stream.resume_after_id = normalize(last["id"])
                self._commit_page(backend, call_log, auto_commit)
                return counts, False
            self._commit_page(backend, call_log, auto_commit)
        return counts, True

    @staticmethod
    def _add(counts, page_counts):
        for key, value in page_counts.items():
            counts[key] = counts.get(key, 0) + value

    def _import_one_by_one(self, stream, adapter, import_rows, rows, counts):
        """Import each row of a failed page alone; set aside the ones that fail.

        Odyssee unreachable or refusing the credentials is no row's fault: it
        stops the run as a whole.
        """
        for row in rows:
            guid = normalize(row.get("id"))
            try:
                with self.env.cr.savepoint():
                    self._add(counts, import_rows(stream.backend_id, adapter, [row]))
            except Exception as exc:
                if isinstance(exc, odyssee_client.OdysseeError) and not record_error(exc):
                    raise
                error = f"{type(exc).__name__}: {exc}"
                stream._set_aside(
                    "failed",
                    guid or "(no id)",
                    approval_guid=guid if stream.kind == "approvals" else False,
                    modified_dateutc=row.get("modified_dateutc"),
                    error=error,
                )
                counts["error"] = self.env._(
                    "%(row)s %(guid)s set aside: %(error)s",
                    row=stream._row_label(),
                    guid=guid or "(no id)",
                    error=error,
                )
            else:
                stream._set_aside_items("failed", [guid]).unlink()

    def _retry_failed_rows(self, stream, adapter, import_rows, counts, auto_commit):
        """Rows set aside earlier are tried again, ``max_attempts`` times in all."""
        failed = stream._set_aside_items("failed") - stream._parked()
        if not failed:
            return
        controller = {"approvals": "JobApproval", "jobs": "Jobs"}[stream.kind]
        rows = adapter.rows_by_id(controller, failed.mapped("external_id"))
        # A row Odyssee no longer returns is tried as it was, and fails again.
        self._import_one_by_one(stream, adapter, import_rows, list(rows.values()), counts)
        gone = failed.exists().filtered(lambda item: item.external_id not in rows)
        for item in gone:
            item.write(
                {
                    "attempts": item.attempts + 1,
                    "error": self.env._("Odyssee no longer returns it."),
                }
            )
        if auto_commit:
            self.env.cr.commit()

    @api.model
    def _pull_pdfs(self, stream, client, call_log, auto_commit=False, deadline=None):
        """Attach approval PDFs; the pull never stops at a file it cannot attach yet.

        Files of approvals the connector does not import (daily ones) are
        skipped; a file whose approval is not imported yet waits
        (``construction.odyssee.attention``) and is attached by the first run
        after its approval arrives, while the watermark moves on. A page that
        fails is attached file by file, as approval batches are imported row by
        row, and a file that fails is set aside and tried again.
        """
        backend = stream.backend_id
        adapter = OdysseeAdapter(client, backend.page_size)
        counts = {"new": 0, "reread": 0}
        counts["new"] += self._attach_set_aside(stream, adapter)
        self._commit_page(backend, call_log, auto_commit)
        # When the approvals pull stopped short of a backlog, a file newer than its
        # watermark most likely belongs to an approval it has still to read: the
        # pull stops there (no call) and resumes after the approvals caught up.
        behind = self.env.context.get("odyssee_approvals_behind") and (
            backend._stream("approvals").watermark
        )
        isolate_remote = stream.failed_runs + 1 >= backend.max_attempts
        pages = adapter.approval_file_pages(self._since(stream))
        for batch in batches(pages, ROWS_PER_TRANSACTION):
            page_counts = {}
            try:
                with self.env.cr.savepoint():
                    page_counts = self._attach_pdf_page(stream, adapter, batch, behind)
            except odyssee_client.OdysseeError as exc:
                if not (isolate_remote and record_error(exc)):
                    raise
                self._attach_one_by_one(stream, adapter, batch, counts)
            except Exception as exc:
                _logger.warning("Odyssee PDF batch failed, attaching file by file: %s", exc)
                self._attach_one_by_one(stream, adapter, batch, counts)
            self._add(counts, page_counts)
            self._commit_page(backend, call_log, auto_commit)
            if page_counts.get("paused"):
                break
        return counts, True

    def _attach_one_by_one(self, stream, adapter, rows, counts):
        """Attach each file of a failed page alone; set aside the ones that fail."""
        for row in rows:
            try:
                with self.env.cr.savepoint():
                    self._add(counts, self._attach_pdf_page(stream, adapter, [row]))
            except Exception as exc:
                if isinstance(exc, odyssee_client.OdysseeError) and not record_error(exc):
                    raise
                file = odyssee_mapper.approval_file(row)
                error = f"{type(exc).__name__}: {exc}"
                stream._set_aside(
                    "failed", file["file_guid"], **self._file_values(file), error=error
                )
                stream.watermark = max(stream.watermark, file["modified_dateutc"])
                counts["error"] = self.env._(
                    "File %(name)s set aside: %(error)s", name=file["file_name"], error=error
                )

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

    # -- one page of jobs ----------------------------------------------------------
    def _import_job_page(self, backend, adapter, rows):
        """Bind a page of jobs to requests and follow their statuses; returns counts.

        New rows are jobs that became requests or whose status changed; the
        others were re-read. A job born in Odyssee and already canceled there
        stays out.
        """
        jobs = {normalize(row["id"]): odyssee_mapper.job(row) for row in rows}
        bound = self.env["construction.external.id"]._to_internal(
            backend.external_system_id, "maintenance.request", jobs
        )
        statuses = self._statuses(backend, adapter, {job["status_guid"] for job in jobs.values()})
        canceled = {guid for guid, status in statuses.items() if status.is_canceled}
        jobs = {
            guid: job
            for guid, job in jobs.items()
            if guid in bound or job["status_guid"] not in canceled
        }
        moved = set()
        self._requests_for_jobs(backend, jobs, statuses, moved=moved)
        new = len(set(jobs) - set(bound)) + len(moved & set(bound))
        return {"new": new, "reread": len(rows) - new}

    # -- one page of approvals ----------------------------------------------------
    def _import_approval_page(self, backend, adapter, rows):
        """Import a page of approvals; returns ``{"new": n, "reread": m}``."""
        final = [row for row in rows if odyssee_mapper.is_final_approval(row)]
        approvals = [odyssee_mapper.approval(row) for row in final]
        known = self.env["construction.external.id"]._to_internal(
            backend.external_system_id, APPROVAL, [a["odyssee_guid"] for a in approvals]
        )
        # Re-read and unchanged since imported (overlap window): nothing to fetch.
        unchanged = {
            a["odyssee_guid"]
            for a in approvals
            if a["odyssee_guid"] in known
            and known[a["odyssee_guid"]].modified_dateutc == a["modified_dateutc"]
        }
        if unchanged:
            final = [
                r
                for r, a in zip(final, approvals, strict=True)
                if a["odyssee_guid"] not in unchanged
            ]
            approvals = [a for a in approvals if a["odyssee_guid"] not in unchanged]
        if not final:
            return {"reread": len(unchanged)}
        job_guids = {a["job_guid"] for a in approvals}
        # Jobs the jobs pull has bound already are not read again.
        bound = self.env["construction.external.id"]._to_internal(
            backend.external_system_id, "maintenance.request", job_guids
        )
        rows_of_jobs = adapter.jobs_of(final, known_jobs=bound)
        jobs = {guid: odyssee_mapper.job(rows_of_jobs.get(guid)) for guid in job_guids}
        # The status catalogue, read again if a status is unknown, before the thread
        # below starts: the lines it reads are then the page's only calls in flight.
        statuses = self._statuses(backend, adapter, {job["status_guid"] for job in jobs.values()})
        # The part and time lines are read while the requests and approvals are
        # written: the calls wait on Odyssee, the writes on Odoo. Only HTTP runs in
        # the thread; the ORM stays in this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(adapter.lines_of, final)
            requests = self._requests_for_jobs(backend, jobs, statuses)
            approval_records = self._upsert_bound(
                backend,
                APPROVAL,
                [
                    dict(a, backend_id=backend.id, request_id=requests[a["job_guid"]].id)
                    for a in approvals
                ],
                create="_create_imported",
            )
            parts, times = reading.result()
        lines = [odyssee_mapper.usage_line("part", row) for row in parts]
        lines += [odyssee_mapper.usage_line("time", row) for row in times]
        self._import_lines(backend, lines, approval_records, requests)
        new = len({a["odyssee_guid"] for a in approvals} - set(known))
        return {"new": new, "reread": len(approvals) - new + len(unchanged)}

    def _upsert_bound(self, backend, res_model, values_list, create="create"):
        """Create or update one record per ``odyssee_guid``; returns ``{guid: record}``.

        ``create``: the name of the model's method that creates the new ones.
        """
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        by_guid = {values["odyssee_guid"]: values for values in values_list}
        records = Binder._to_internal(system, res_model, by_guid)
        new = [guid for guid in by_guid if guid not in records]
        for guid, record in records.items():
            record.write(self._own_values(by_guid[guid]))
        created = getattr(self.env[res_model].sudo(), create)(
            [self._own_values(by_guid[guid]) for guid in new]
        )
        Binder._bind_new(system, list(zip(created, new, strict=True)))
        records.update(zip(new, created, strict=True))
        return records

    @staticmethod
    def _own_values(values):
        return {key: value for key, value in values.items() if key != "odyssee_guid"}

    def _requests_for_jobs(self, backend, jobs, statuses, moved=None):
        """``{job guid: request}``; a job is linked by its GUID, then by our reference.

        ``jobs``: ``{job guid: odyssee_mapper.job(row)}``, the row None when it
        was not read (a job bound already). A job born in Odyssee gets a new
        request, on the machine bound to its installation. The status of each
        job in ``jobs`` comes back on
        its request (see ``_follow_statuses``; the job guids of the requests
        that changed are added to ``moved``). ``statuses``: what ``_statuses``
        answered for these jobs, asked by the caller before any thread of its
        starts: no call to Odyssee is made here.
        """
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        Request = self.env["maintenance.request"].sudo().with_company(backend.company_id)
        requests = Binder._to_internal(system, "maintenance.request", jobs)
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
        now = fields.Datetime.now()
        found = {
            guid: requests.get(guid) or by_reference.get(job["reference_back_office"])
            for guid, job in jobs.items()
        }
        known = Request.browse([request.id for request in found.values() if request])
        # A stamp no one tracks or follows: the chatter's bookkeeping is skipped.
        known.with_context(tracking_disable=True).write({"odyssee_last_synced_at": now})
        born = [guid for guid, request in found.items() if not request]
        # One create for the page: a request per job is what made big imports slow.
        Creating = Request.with_context(mail_create_nolog=True, tracking_disable=True)
        # The defaults that search (stage, team, employee) are read once for the page,
        # as create would read them for each request: two queries per job otherwise.
        defaults = Creating.default_get(list(REQUEST_SEARCHED_DEFAULTS)) if born else {}
        # The employee (by default the user's, who then follows the request) is
        # written once for the page: given at create, hr_maintenance subscribes its
        # user request by request, 3 queries each; a write subscribes all at once.
        employee = defaults.pop("employee_id", False)
        # (hr_maintenance adds the field; it installs itself beside hr and maintenance.)
        no_employee = {"employee_id": False} if "employee_id" in Request._fields else {}
        created = Creating.create(
            [
                defaults
                | no_employee
                | self._born_request_values(backend, guid, jobs[guid], machines, now)
                for guid in born
            ]
        )
        if employee:
            created.with_context(odyssee_no_push=True).write({"employee_id": employee})
        found.update(zip(born, created, strict=True))
        new_bindings = [(found[guid], guid) for guid in jobs if guid not in requests]
        requests.update(found)
        Binder._bind_new(system, new_bindings)
        changed = self._follow_statuses(jobs, requests, statuses)
        if moved is not None:
            moved.update(changed)
        return requests

    def _born_request_values(self, backend, guid, job, machines, now):
        """A job born in Odyssee as a request, on the machine bound to its installation."""
        machine = machines.get(job["installation_guid"])
        return {
            "odyssee_last_synced_at": now,
            "name": job.get("name") or self.env._("Odyssee job %(guid)s", guid=guid[:8]),
            "description": job.get("remark") or False,
            "request_origin": "odyssee",
            "equipment_id": machine.id if machine else False,
            "company_id": backend.company_id.id,
            "maintenance_type": "corrective",
        }

    def _follow_statuses(self, jobs, requests, statuses):
        """Each request takes its job's Odyssee status, and the stage mapped to it.

        ``statuses``: the backend's catalogue as ``_statuses`` resolved it (read
        from the API, refreshed when a job carries an unknown status, at most
        every few minutes); a change is noted in the request's chatter.
        """
        notes, moves = {}, defaultdict(lambda: self.env["maintenance.request"].sudo())
        for guid, job in jobs.items():
            request, status = requests[guid], statuses.get(job["status_guid"])
            if not status or request.odyssee_status == status.name:
                continue
            moves[(status, "odyssee_status", status.name)] |= request
            if status.is_completed:
                body = self.env._("Completed in Odyssee.")
            else:
                body = self.env._(
                    "Odyssee status: %(old)s → %(new)s",
                    old=request.odyssee_status or self.env._("none"),
                    new=status.name,
                )
            if status.stage_id and request.stage_id != status.stage_id:
                moves[(status, "stage_id", status.stage_id.id)] |= request
                body = self.env._(
                    "%(note)s Stage: %(stage)s.", note=body, stage=status.stage_id.name
                )
            notes[request.id] = body
        # One write per status and stage; our note tells the story, so no tracking
        # message and follower mail per request.
        for (_status, field_name, value), group in moves.items():
            group.with_context(odyssee_no_push=True, tracking_disable=True).write(
                {field_name: value}
            )
        if notes:  # notes without notifications: cheap enough for a backlog of thousands
            self.env["maintenance.request"].sudo().browse(list(notes))._message_log_batch(notes)
        return {guid for guid in jobs if requests[guid].id in notes}

    def _statuses(self, backend, adapter, guids):
        """``{status guid: job status}``, the catalogue read again for an unknown one.

        Read at most every few minutes: a status Odyssee sends that is not in
        its catalogue must not cost a call per page.
        """
        Binder = self.env["construction.external.id"]
        Status = self.env["construction.odyssee.job.status"]
        system = backend.external_system_id
        guids = set(guids) - {""}
        statuses = Binder._to_internal(system, Status._name, guids)
        read_at = backend.job_statuses_read_at
        stale = not read_at or read_at < fields.Datetime.now() - timedelta(minutes=5)
        if guids - set(statuses) and stale:
            Status._refresh(backend, adapter)
            statuses = Binder._to_internal(system, Status._name, guids)
        return statuses

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
        records = self._upsert_bound(
            backend, "construction.odyssee.usage.line", values_list, create="_create_imported"
        )
        self._sync_timesheets(backend, [line for line in records.values() if line.kind == "time"])
        self._update_durations(requests.values())

    def _update_durations(self, requests):
        """A request's duration is the hours imported for it."""
        ids = list({request.id for request in requests})
        if not ids:
            return
        hours = dict(
            self.env["construction.odyssee.usage.line"]
            .sudo()
            ._read_group(
                [("request_id", "in", ids), ("kind", "=", "time")],
                ["request_id"],
                ["quantity:sum"],
            )
        )
        Request = self.env["maintenance.request"].sudo().with_context(odyssee_no_push=True)
        changed = defaultdict(list)
        for request in Request.browse(ids):
            duration = hours.get(request, 0.0)
            if request.duration != duration:
                changed[duration].append(request.id)
        for duration, request_ids in changed.items():  # one write per value, not per request
            Request.browse(request_ids).write({"duration": duration})

    def _sync_timesheets(self, backend, lines):
        """The timesheets of time lines, on the machine's job site (or the default project).

        New timesheets are created in one call for the page.
        """
        new_lines, new_values = [], []
        for line in lines:
            project = line.request_id.equipment_id.job_site_project_id or backend.default_project_id
            if not line.employee_id or not project:
                if not project and not line.issue:
                    line.issue = self.env._("No project for the timesheet")
                continue
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
                new_lines.append(line)
                new_values.append(values)
        sheets = self.env["account.analytic.line"].sudo()._create_imported_timesheets(new_values)
        for line, sheet in zip(new_lines, sheets, strict=True):
            line.timesheet_id = sheet

    # -- one page of PDFs ---------------------------------------------------------
    def _attach_pdf_page(self, stream, adapter, rows, behind=False):
        """Attach the page's PDFs; returns ``{"new": attached, "reread": already there}``.

        A file whose approval is not imported is looked up (one call for the
        page): a daily approval's file is skipped, any other waits. With
        ``behind`` (the approvals watermark of an unfinished approvals pull),
        the page stops at the first unknown file newer than it (``"paused"``).
        """
        files = [odyssee_mapper.approval_file(row) for row in rows]
        approvals = self.env["construction.external.id"]._to_internal(
            stream.backend_id.external_system_id, APPROVAL, [f["approval_guid"] for f in files]
        )
        paused = False
        if behind:
            for index, file in enumerate(files):
                if file["approval_guid"] not in approvals and file["modified_dateutc"] > behind:
                    files, paused = files[:index], True
                    break
        unknown = {f["approval_guid"] for f in files} - set(approvals)
        remote = adapter.approvals_by_id(unknown) if unknown else {}
        counts = {"new": 0, "reread": 0, "skipped": 0, "paused": int(paused)}
        to_attach = []
        for file in files:
            approval = approvals.get(file["approval_guid"])
            row = remote.get(file["approval_guid"])
            if approval and approval.pdf_attachment_id:
                counts["reread"] += 1
            elif approval:
                to_attach.append((approval, file))
                counts["new"] += 1
            elif row and not odyssee_mapper.is_final_approval(row):
                counts["skipped"] += 1  # a daily approval: its work comes with the final one
            else:
                stream._set_aside(
                    "waiting_pdf",
                    file["file_guid"],
                    **self._file_values(file),
                    error=self.env._("Its approval is not imported yet."),
                )
            stream.watermark = max(stream.watermark, file["modified_dateutc"])
        self._attach_files(stream, adapter, to_attach)
        return counts

    def _attach_set_aside(self, stream, adapter):
        """Attach the files set aside; returns how many were attached.

        A waiting file is attached once its approval has come in; a file that
        failed is tried again, ``max_attempts`` times in all.
        """
        waiting = stream._set_aside_items("waiting_pdf")
        failed = stream._set_aside_items("failed") - stream._parked()
        approvals = self.env["construction.external.id"]._to_internal(
            stream.backend_id.external_system_id, APPROVAL, waiting.mapped("approval_guid")
        )
        attached = 0
        for item in waiting:
            approval = approvals.get(item.approval_guid)
            if not approval:
                continue
            with self.env.cr.savepoint():
                if not approval.pdf_attachment_id:
                    self._attach_files(stream, adapter, [(approval, self._item_file(item))])
                    attached += 1
                item.unlink()
        for item in failed:
            file = self._item_file(item)
            row = {
                "id": file["file_guid"],
                "id_in_table": item.approval_guid,
                "file_name": file["file_name"],
                "mime_type": file["mimetype"],
                "modified_dateutc": item.modified_dateutc,
            }
            try:
                with self.env.cr.savepoint():
                    attached += self._attach_pdf_page(stream, adapter, [row])["new"]
            except Exception as exc:
                if isinstance(exc, odyssee_client.OdysseeError) and not record_error(exc):
                    raise
                stream._set_aside("failed", item.external_id, error=f"{type(exc).__name__}: {exc}")
            else:
                item.unlink()
        return attached

    @staticmethod
    def _item_file(item):
        return {
            "file_guid": item.external_id,
            "file_name": item.file_name,
            "mimetype": item.mimetype or "application/pdf",
        }

    @staticmethod
    def _file_values(file):
        """What an attention item keeps of a file, to attach it later without reading it again."""
        return {
            "approval_guid": file["approval_guid"],
            "file_name": file["file_name"],
            "mimetype": file["mimetype"],
            "modified_dateutc": file["modified_dateutc"],
        }

    def _attach_files(self, stream, adapter, pairs):
        """Attach each ``(approval, file)``: one call per file's content, one create in all.

        The contents are read (one call after another, in a thread: HTTP only)
        while the requests' notes are written here; the attachments follow.
        """
        if not pairs:
            return
        backend = stream.backend_id
        guids = [file["file_guid"] for _approval, file in pairs]
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(lambda: [adapter.file_content(guid) for guid in guids])
            notes = {}
            for approval, file in pairs:
                if approval.request_id:
                    note = self.env._(
                        "Signed approval PDF %(name)s attached from Odyssee.",
                        name=file["file_name"],
                    )
                    key = approval.request_id.id
                    notes[key] = f"{notes[key]} {note}" if key in notes else note
            if notes:
                self.env["maintenance.request"].sudo().browse(list(notes))._message_log_batch(notes)
            contents = reading.result()
        values_list = []
        for (approval, file), content in zip(pairs, contents, strict=True):
            request = approval.request_id
            values_list.append(
                {
                    "name": file["file_name"],
                    "datas": content,
                    "mimetype": file["mimetype"],
                    "res_model": request._name if request else approval._name,
                    "res_id": request.id or approval.id,
                    "company_id": backend.company_id.id,
                }
            )
        attachments = self.env["ir.attachment"].sudo().create(values_list)
        for (approval, _file), attachment in zip(pairs, attachments, strict=True):
            approval.pdf_attachment_id = attachment
