"""The adapter: what the importer reads from Odyssee, in as few calls as the API allows.

It knows Odyssee's controllers and OData queries, nothing of Odoo. A page of
approvals costs one call, and the jobs, parts and time lines of its jobs are
asked twenty jobs a call (``id eq a or id eq b …``), never a call per approval.
"""

from . import odata, odyssee_client
from .external_ids import normalize

APPROVAL_KIND_FIELDS = ["id", "jobs_id", "is_daily_approval", "ready_for_multi_approval"]
JOB_FIELDS = [
    "id",
    "project_id",
    "job_status_id",
    "reference_back_office",
    "name",
    "remark",
    "modified_dateutc",
]
APPROVAL_FILE_FIELDS = ["id", "id_in_table", "file_name", "name", "mime_type", "modified_dateutc"]


# Rows a page of Odyssee holds when the call does not say (reference 2.4).
SERVER_PAGE_SIZE = 20


class OdysseeAdapter:
    def __init__(self, client, page_size):
        self.client = client
        # $top only to ask for fewer rows a page than Odyssee serves: the reference
        # documents no more than that, and in standard Web API OData $top caps the
        # whole result, so a page of 20 jobs' lines would stop at their 20th line.
        self.top = page_size if page_size and page_size < SERVER_PAGE_SIZE else None

    def final_approval_pages(self, since, after_id=None):
        """Pages of final (not daily) approvals changed since ``since``, oldest first."""
        return self._changed_pages(
            "JobApproval", since, after_id, odata.cond("is_daily_approval", "eq", False)
        )

    def job_pages(self, since, after_id=None):
        """Pages of jobs changed since ``since`` (status, remark…), oldest first."""
        return self._changed_pages("Jobs", since, after_id, select=JOB_FIELDS)

    def _changed_pages(self, controller, since, after_id=None, condition=None, select=None):
        """Pages of ``controller`` rows changed since ``since``, oldest first.

        Ordered by stamp, then id (a stable order under tied stamps). With
        ``after_id`` the pages resume right after that row of stamp ``since``
        (a run cut short continues where it stopped, nothing read twice).
        """
        when = odata.cond("modified_dateutc", "ge", since)
        if after_id:
            same_stamp = odata.all_of(
                odata.cond("modified_dateutc", "eq", since),
                odata.cond("id", "gt", odata.Guid(after_id)),
            )
            when = f"({odata.cond('modified_dateutc', 'gt', since)} or ({same_stamp}))"
        return self._pages_by_stamp(
            controller,
            since,
            lambda stamp_condition: odata.Query(
                filter=odata.all_of(stamp_condition, condition) if condition else stamp_condition,
                orderby=["modified_dateutc asc", "id asc"],
                select=select,
                top=self.top,
            ),
            first=when,
        )

    def _pages_by_stamp(self, controller, since, query_from, first=None):
        """Pages of rows by ascending ``modified_dateutc`` from ``since``, each read afresh.

        Following ``@odata.nextLink`` (``$skip``) misses a row whenever one
        before it changes during the pull (reference 2.4: results shift between
        page requests): the changed row moves to the end, every later one a
        place back, and the one shifted over the page's edge is never read, its
        stamp soon behind the watermark. So each page asks again for the rows
        stamped from the newest stamp of the page before (keyset), leaving out
        the ones of that stamp it gave already. A page whose rows all share one
        stamp (more of them than a page holds) follows its next link instead,
        or, where ``$top`` capped the result and left no link, skips the rows
        of that stamp given already (``may_be_capped``, as ``iter_pages``).
        ``query_from(condition)`` makes the query of a stamp condition;
        ``first`` replaces the condition of the first page (a resume).
        """
        query = query_from(first or odata.cond("modified_dateutc", "ge", since))
        envelope = self.client.get(controller, query=query)
        stamp, given = None, set()
        while True:
            rows = envelope.get("value", [])
            keyed = [
                (odata.normalize_timestamp(row["modified_dateutc"]), normalize(row["id"]), row)
                for row in rows
            ]
            yield [row for at, guid, row in keyed if at != stamp or guid not in given]
            link = odyssee_client.next_link(envelope)
            if not rows or not (link or odyssee_client.may_be_capped(query, rows)):
                return
            newest = max(at for at, _guid, _row in keyed)
            if newest != stamp:
                stamp, given = newest, set()
            given.update(guid for at, guid, _row in keyed if at == stamp)
            if link and all(at == stamp for at, _guid, _row in keyed):
                envelope = self.client.follow(envelope)  # one stamp fills the page
                continue
            query = query_from(odata.cond("modified_dateutc", "ge", odata.parse_timestamp(stamp)))
            if all(at == stamp for at, _guid, _row in keyed):  # and $top capped it
                query.skip = len(given)  # the rows of that stamp after those given
            envelope = self.client.get(controller, query=query)

    def jobs_of(self, approvals, known_jobs=()):
        """``{normalised guid: job row}`` of the jobs of ``approvals`` not in ``known_jobs``."""
        unknown = {normalize(a["jobs_id"]) for a in approvals} - set(known_jobs)
        return self.rows_by_id("Jobs", unknown, select=JOB_FIELDS)

    def lines_of(self, approvals):
        """``(part rows, time rows)`` of the jobs of ``approvals``: a call (or pages) each."""
        parts, times = [], []
        for job_guids in _pages_of(sorted({normalize(a["jobs_id"]) for a in approvals} - {""})):
            by_job = odata.Query(
                filter=odata.any_of("jobs_id", [odata.Guid(g) for g in job_guids]),
                orderby="id",
                top=self.top,
            )
            parts += self.client.iter_all("JobPartUsage", by_job)
            times += self.client.iter_all("JobNonPartUsage", by_job)
        return parts, times

    def approval_file_pages(self, since):
        """Pages of signed approval PDFs (metadata only) changed since ``since``."""
        return self._pages_by_stamp(
            "DbFile",
            since,
            lambda stamp_condition: odata.Query(
                filter=odata.all_of(
                    stamp_condition,
                    odata.cond("file_type_name", "eq", "JOB_APPROVAL"),
                    odata.cond("db_table_name", "eq", "job_approval"),
                ),
                orderby="modified_dateutc asc",
                select=APPROVAL_FILE_FIELDS,
                top=self.top,
            ),
        )

    def file_content(self, file_id):
        """The base64 content of one file (one call: lists do not carry it)."""
        return self.client.get("DbFile", file_id)["file_content"]

    def approvals_by_id(self, guids):
        """``{normalised guid: approval row}`` of ``guids``, with what says whether it is final."""
        return self.rows_by_id("JobApproval", guids, select=APPROVAL_KIND_FIELDS)

    def rows_by_id(self, controller, guids, select=None):
        """``{normalised guid: row}`` of ``guids``, a page's worth a call (unknown ones absent)."""
        found = {}
        # As many ids a call as rows a page, so no $top is needed: a call's rows
        # fit in one page, and its answer never looks capped.
        size = self.top or SERVER_PAGE_SIZE
        for chunk in _pages_of(sorted({normalize(g) for g in guids} - {""}), size):
            query = odata.Query(
                filter=odata.any_of("id", [odata.Guid(g) for g in chunk]), select=select
            )
            found.update(
                (normalize(row["id"]), row) for row in self.client.iter_all(controller, query)
            )
        return found

    def job_statuses(self):
        """Odyssee's job status catalogue: rows with ``id``, ``code`` and ``name``."""
        query = odata.Query(select=["id", "code", "name"], top=self.top)
        return list(self.client.iter_all("JobStatus", query))


def batches(pages, rows):
    """Consecutive ``pages`` joined into lists of at least ``rows`` rows (the last one fewer).

    Odyssee serves 20 rows a page; what a run does once per import (a
    transaction, the watermark, the call log) is then shared by several pages.
    """
    batch = []
    for page in pages:
        batch += page
        if len(batch) >= rows:
            yield batch
            batch = []
    if batch:
        yield batch


def _pages_of(guids, size=SERVER_PAGE_SIZE):
    """``guids`` by ``size``: an ``id eq a or id eq b …`` filter of 20 GUIDs stays
    within the 2,048 bytes of query string a default IIS accepts."""
    return [guids[start : start + size] for start in range(0, len(guids), size)]


def find_by_key(client, controller, key_field, value):
    """The ``controller`` rows whose ERP key ``key_field`` (``code``, ``reference_back_office``)
    is ``value``: the lookup that comes before a create, as the API has no upsert."""
    query = odata.Query(filter=odata.cond(key_field, "eq", value), select=["id", key_field])
    return client.get(controller, query=query).get("value", [])


def find_by_keys(client, controller, key_field, values):
    """``find_by_key`` for many ``values``: ``{value: its rows}``, for the values it can tell.

    ``key eq a or key eq b …`` (the form ``rows_by_id`` asks GUIDs in) for up to
    a page of values, fewer when they are long: the query string stays under
    the 2,048 bytes a default IIS accepts. Values that differ only in case are
    asked in different calls, so each row goes to the one value of its call
    whose key it has, whatever its case: a tenant comparing strings without
    case (SQL Server's default) answers ``code eq 'abc'`` with its ``ABC``, as
    ``find_by_key`` would, and one comparing with case answers only ``abc``.
    When a call answers a row whose key no value of the call has even so
    (trailing spaces, which SQL Server ignores, or another collation rule), the
    values of that call that found nothing are left out, for ``find_by_key``.
    """
    found = {}
    for chunk in _key_chunks(key_field, sorted({value for value in values if value})):
        by_fold = {value.casefold(): value for value in chunk}
        rows, unclaimed = {value: [] for value in chunk}, False
        query = odata.Query(
            filter=odata.any_of(key_field, chunk), select=["id", key_field], orderby="id"
        )
        seen = set()
        for row in client.iter_all(controller, query):
            if row["id"] in seen:  # shifted across a page edge (reference 2.4)
                continue
            seen.add(row["id"])
            key = row.get(key_field)
            asked = by_fold.get(key.casefold()) if isinstance(key, str) else None
            if asked is None:
                unclaimed = True
            else:
                rows[asked].append(row)
        found.update(
            (value, matches) for value, matches in rows.items() if matches or not unclaimed
        )
    return found


def _key_chunks(key_field, values, most=SERVER_PAGE_SIZE, budget=1500):
    """``values`` in runs of at most ``most``, no two alike but for case, whose encoded
    filter stays within ``budget``."""
    chunks = []
    for value in values:
        chunk = chunks[-1] if chunks else []
        if (
            chunk
            and len(chunk) < most
            and value.casefold() not in {other.casefold() for other in chunk}
            and len(odata.Query(filter=odata.any_of(key_field, [*chunk, value])).to_string())
            <= budget
        ):
            chunk.append(value)
        else:
            chunks.append([value])
    return chunks


def default_installation_status(client):
    """The GUID of the status a new installation gets, or None when the tenant has none open.

    An installation's status is required (reference 5.7, ``project_status``
    opt-req). Odyssee pre-selects its ``is_default`` status on new
    installations; without an open default, the first open status by name.
    """
    query = odata.Query(
        filter=odata.cond("is_closed", "eq", False),
        select=["id", "name", "is_default"],
        orderby="name",
    )
    statuses = list(client.iter_all("ProjectStatus", query))
    chosen = next((s for s in statuses if s.get("is_default")), statuses[0] if statuses else None)
    return normalize(chosen["id"]) if chosen else None


def default_job_type(client):
    """The GUID of the job type Odyssee pre-selects on new jobs, or None when it has none.

    A job's type is required (reference 5.2, ``job_type`` opt-req) and its
    ``code`` is an ERP key, which job types set up in Odyssee's own screens
    do not have; ``is_default`` marks the one new jobs get (5.11). No
    ``$select``: ``archived`` exists on Wello v5/v6 and not on v4.
    """
    query = odata.Query(filter=odata.cond("is_default", "eq", True), orderby="name")
    types = [t for t in client.iter_all("JobType", query) if not t.get("archived")]
    return normalize(types[0]["id"]) if types else None
