"""A local emulator of the Odyssee (Wello) ERP REST API, for tests, demo and benchmarks.

Plain Python, standard library only. Run it standalone::

    python -m odyssee_emulator --port 8765 --scenario demo   # from the repository root

It implements the controllers the connector uses (Company, Project, Article,
ArticleCategory, User, JobType, Jobs, JobApproval, JobPartUsage,
JobNonPartUsage, DbFile) with the documented conventions: Basic auth with
``user:password@domain``, GUID keys, ``modified_dateutc`` stamped on every
write (strictly increasing, or tied on purpose), no NULLs (``""``, ``0``,
``false``, empty GUID, ``1980-01-01T00:00:00.000``), pages of 20 with
``@odata.nextLink``, ``201`` with the new entity on POST, 400 for invalid and
422 for unresolvable values, and a strict refusal of query syntax the real
API is not documented to accept. Faults are injectable per run (see ``Faults``).
Choices the documentation leaves open follow its section 7 and are noted below.
"""

import argparse
import base64
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
NO_DATE = "1980-01-01T00:00:00.000"
PAGE_SIZE = 20
# Odyssee is an ASP.NET Web API service (reference 2.1); the IIS hosting it by
# default refuses a query string longer than 2,048 bytes (maxQueryString).
MAX_QUERY_STRING = 2048
GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# The job status catalogue (reference section 5.14): (code, name, published GUID). The
# GUIDs the reference could not read are drawn per tenant, so a client must read
# the catalogue (``GET JobStatus``) and match statuses by code or name.
JOB_STATUSES = [
    ("WAITING", "Waiting", "69268600-D3E0-4222-859F-06E47CF4041E"),
    ("OPEN", "Open", "8BA9DA71-EF32-423A-BB50-AE767315F55C"),
    ("TOBEPLANNED", "To be Planned", "497ACFF2-9FF6-4C94-85DD-DAA0689553E2"),
    ("POOLING", "Pooling", "8ADBC894-D612-DE11-BD84-0030488C6C36"),
    ("SUGGESTED", "Suggested", "143CF9CD-C3C1-406A-A19A-58D766D9DDA9"),
    ("DISPATCHED", "Dispatched", "A60BC691-AB2F-42F5-8A5B-998A29A27537"),
    ("DISPATCHREJECTED", "Dispatch - Rejected", "EB014DA9-5850-4E16-B1E9-527162F1A9E0"),
    ("WORKSHOP", "Workshop", "E2BC66AF-BD10-4035-8AA1-7AD88CB35723"),
    ("WORKSHOPQUEUE", "Workshop in queue", "41A3718F-EAA1-4EF4-9A82-2CCF3FA92BCC"),
    ("PLANNED", "Planned", "10F456D2-000E-48EA-93D7-E016107B7A98"),
    ("INPROGRESS", "In Progress", None),
    ("WAITINGFURTHER", "Waiting Further Actions", None),
    ("COMPLETED", "Completed", None),
    ("CANCELED", "Canceled", None),
]

# type codes: s string, g guid, b bool, n number, d datetime, x bytes
SCHEMAS = {
    "Company": {
        "fields": {
            "id": "g",
            "code": "s",
            "name": "s",
            "vat_reg_code": "s",
            "phone": "s",
            "email": "s",
            "street": "s",
            "zip": "s",
            "city": "s",
            "db_country_code": "s",
            "is_client": "b",
            "archived": "b",
            "modified_dateutc": "d",
        },
        "required": ["name"],
        "max": {"name": 64, "code": 50, "vat_reg_code": 50, "email": 250},
        "writable": True,
    },
    "Project": {
        "fields": {
            "id": "g",
            "reference_back_office": "s",
            "name": "s",
            "company_id": "g",
            "project_status_id": "g",
            "serial_number": "s",
            "archived": "b",
            "modified_dateutc": "d",
        },
        "required": ["name"],
        # Reference 5.7: the status and the owning company are both opt-req groups.
        "one_of": [
            ("company_id", "company_code"),
            ("project_status_id", "project_status_code"),
        ],
        "refs": {"company": ("Company", "code"), "project_status": ("ProjectStatus", "code")},
        "max": {"name": 100, "reference_back_office": 50},
        "writable": True,
    },
    "ArticleCategory": {
        "fields": {"id": "g", "code": "s", "name": "s", "parent_id": "g", "modified_dateutc": "d"},
        "required": ["name"],
        "max": {"name": 50, "code": 50},
        "writable": True,
    },
    "Article": {
        "fields": {
            "id": "g",
            "code": "s",
            "name": "s",
            "description_short": "s",
            "entered_price": "n",
            "article_category_id": "g",
            "archived": "b",
            "modified_dateutc": "d",
        },
        "required": ["name"],
        "refs": {"article_category": ("ArticleCategory", "code")},
        "max": {"name": 50, "code": 50, "description_short": 100},
        "writable": True,
    },
    "User": {  # not documented: guessed minimal model (reference section 5.9)
        "fields": {
            "id": "g",
            "code": "s",
            "username": "s",
            "firstname": "s",
            "lastname": "s",
            "email": "s",
            "archived": "b",
            "modified_dateutc": "d",
        },
        "required": ["username"],
        "max": {"username": 100, "code": 50},
        "writable": True,
    },
    "ProjectStatus": {  # reference 5.7: is_default is pre-selected on new installations
        "fields": {
            "id": "g",
            "code": "s",
            "name": "s",
            "is_default": "b",
            "is_closed": "b",
            "modified_dateutc": "d",
        },
    },
    "JobStatus": {  # read-only catalogue; its model page was not readable (section 5.14)
        "fields": {"id": "g", "code": "s", "name": "s", "modified_dateutc": "d"},
    },
    "JobType": {
        "fields": {"id": "g", "code": "s", "name": "s", "is_default": "b", "modified_dateutc": "d"},
        "required": ["name"],
        "max": {"name": 50, "code": 50},
        "writable": True,
    },
    "Jobs": {
        "fields": {
            "id": "g",
            "reference_back_office": "s",
            "name": "s",
            "remark": "s",
            "project_id": "g",
            "job_type_id": "g",
            "job_status_id": "g",
            "modified_dateutc": "d",
        },
        "required": ["name"],
        "one_of": [
            ("project_id", "project_reference_back_office"),
            ("job_type_id", "job_type_code"),
        ],
        "refs": {
            "project": ("Project", "reference_back_office"),
            "job_type": ("JobType", "code"),
            "job_status": ("JobStatus", "code"),
        },
        "max": {"reference_back_office": 50, "name": 255, "remark": 4000},
        "writable": True,
    },
    "JobApproval": {
        "fields": {
            "id": "g",
            "jobs_id": "g",
            "user_id": "g",
            "ready_for_multi_approval": "b",
            "is_daily_approval": "b",
            "contact_name": "s",
            "customer_remarks": "s",
            "date_generated": "d",
            "is_signed": "b",
            "job_status_id": "g",
            "rating": "n",
            "modified_dateutc": "d",
        },
    },
    "JobPartUsage": {
        "fields": {
            "id": "g",
            "jobs_id": "g",
            "article_id": "g",
            "user_id": "g",
            "working_date": "d",
            "code": "s",
            "name": "s",
            "description": "s",
            "quantity": "n",
            "price": "n",
            "remark": "s",
            "signed_by_company": "b",
            "job_approval_id": "g",
            "is_under_warranty": "b",
            "modified_dateutc": "d",
        },
    },
    "JobNonPartUsage": {
        "fields": {
            "id": "g",
            "jobs_id": "g",
            "user_id": "g",
            "working_date": "d",
            "timesheet_date_from": "d",
            "timesheet_date_to": "d",
            "type_code": "s",
            "line_code": "s",
            "description": "s",
            "quantity": "n",
            "price": "n",
            "line_memo": "s",
            "signed_by_company": "b",
            "job_approval_id": "g",
            "is_under_warranty": "b",
            "modified_dateutc": "d",
        },
    },
    "DbFile": {
        "fields": {
            "id": "g",
            "db_table_name": "s",
            "id_in_table": "g",
            "name": "s",
            "file_name": "s",
            "mime_type": "s",
            "file_content": "x",
            "file_type_name": "s",
            "file_size": "n",
            "modified_dateutc": "d",
        },
    },
}
DEFAULTS = {"s": "", "g": EMPTY_GUID, "b": False, "n": 0, "d": NO_DATE, "x": ""}
ROUTES = {name.lower(): name for name in SCHEMAS}


class ApiError(Exception):
    def __init__(self, status, message, model_state=None):
        super().__init__(message)
        self.status, self.message, self.model_state = status, message, model_state


def format_stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_stamp(text):
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1]
    return datetime.fromisoformat(text[:23])


# ----------------------------------------------------------------------------
# $filter: the subset the documentation evidences, parsed strictly
# ----------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>'(?:[^']|'')*')"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<num>-?\d+(?:\.\d+)?(?![\w-]))|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokens(text):
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "bad":
            raise ApiError(
                400, f"The query specified in the URI is not valid: unexpected {value!r}."
            )
        tokens.append((kind, value))
    return tokens


def parse_filter(text, schema):
    """Compile ``$filter`` into a predicate over an entity dict."""
    tokens = _tokens(text)
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else (None, None)

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    # Each step returns (predicate, hint): a hint (field, values) says every matching
    # row has field in values, which lets the emulator use an index.
    def comparison():
        kind, name = take()
        if kind == "lp":
            inner = disjunction()
            if take()[0] != "rp":
                raise ApiError(400, "The query specified in the URI is not valid: ')' expected.")
            return inner
        if kind != "word" or name not in schema["fields"]:
            raise ApiError(400, f"Could not find a property named '{name}' on this entity.")
        op_kind, op = take() if position < len(tokens) else (None, None)
        if op_kind != "word" or op not in _OPS:
            raise ApiError(
                400,
                f"The query specified in the URI is not valid: operator {op!r} is not supported.",
            )
        if position >= len(tokens):
            raise ApiError(400, "The query specified in the URI is not valid: a value is expected.")
        field_type = schema["fields"][name]
        value = _value(take(), field_type, name)
        hint = (name, frozenset([value])) if op == "eq" and field_type in "gsb" else None
        return _compare(name, op, value, field_type), hint

    def conjunction():
        left, hint = comparison()
        while peek() == ("word", "and"):
            take()
            right, right_hint = comparison()
            left = (lambda a, b: lambda e: a(e) and b(e))(left, right)
            hint = hint or right_hint
        return left, hint

    def disjunction():
        left, hint = conjunction()
        while peek() == ("word", "or"):
            take()
            right, right_hint = conjunction()
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
            same_field = hint and right_hint and hint[0] == right_hint[0]
            hint = (hint[0], hint[1] | right_hint[1]) if same_field else None
        return left, hint

    predicate, hint = disjunction()
    if position != len(tokens):
        raise ApiError(
            400, f"The query specified in the URI is not valid near {tokens[position][1]!r}."
        )
    return predicate, hint


def _value(token, field_type, name):
    kind, text = token
    if field_type == "d":
        # The ERP guide's form is a quoted date; bare and datetime'...' forms are refused.
        if kind != "str":
            raise ApiError(
                400, f"{name}: compare dates with a quoted literal like '2015-07-14T13:08:00.000Z'."
            )
        try:
            return parse_stamp(text[1:-1])
        except ValueError:
            raise ApiError(400, f"{name}: {text} is not a date.") from None
    if field_type == "g":
        if kind != "guid":
            raise ApiError(400, f"{name}: a GUID is written bare, without quotes.")
        return text.lower()
    if field_type == "b":
        if (kind, text) not in (("word", "true"), ("word", "false")):
            raise ApiError(400, f"{name}: expected true or false.")
        return text == "true"
    if field_type == "n":
        if kind != "num":
            raise ApiError(400, f"{name}: expected a number.")
        return float(text)
    if kind != "str":
        raise ApiError(400, f"{name}: strings are single-quoted.")
    return text[1:-1].replace("''", "'")


def _compare(name, op, value, field_type):
    def get(entity):
        current = entity[name]
        if field_type == "d":
            return parse_stamp(current)
        if field_type == "g":
            return current.lower()
        return current

    operations = {
        "eq": lambda a: a == value,
        "ne": lambda a: a != value,
        "gt": lambda a: a > value,
        "ge": lambda a: a >= value,
        "lt": lambda a: a < value,
        "le": lambda a: a <= value,
    }
    check = operations[op]
    return lambda entity: check(get(entity))


# ----------------------------------------------------------------------------
# Store and faults
# ----------------------------------------------------------------------------
@dataclass
class Faults:
    """Faults injected into responses.

    ``every_nth_*`` = n faults calls 1, n + 1, 2n + 1, ... counted from the last
    ``set_faults`` (API calls only), so n = 2 fails a call and lets its retry through.
    """

    latency_ms: int = 0
    every_nth_429: int = 0  # every n-th call answers 429 with Retry-After
    retry_after_seconds: int = 1
    every_nth_500: int = 0
    every_nth_drop: int = 0  # close the connection without an answer
    every_nth_truncate: int = 0  # send half of the body
    always_status: int = 0  # a persistent failure: every call answers this status
    pdf_delay_seconds: float = 0.0  # approval PDFs appear this long after the approval
    tie_timestamps: bool = False  # successive writes share a modified_dateutc
    every_nth_lost_answer: int = 0  # execute the call, then drop the connection unanswered
    page_size: int = PAGE_SIZE
    # A record Odyssee cannot serve: a call whose path or decoded query contains one
    # of these texts (a GUID, say) always answers the given status.
    poisoned: dict = field(default_factory=dict)
    # The tenant moved (Odyssee became Wello: odysseemobile.com -> wello.solutions):
    # every API call answers ``moved_status`` with a Location under this base URL.
    moved_to: str = ""
    moved_status: int = 301
    # Rows change while a client pages (reference 2.4: results shift between page
    # requests): after serving a page of this controller that has a next page, its
    # first row is modified, so it moves to the end and every later row one place back.
    changed_between_pages: str = ""
    # Standard Web API OData, which the reference does not rule out (its $top is
    # documented only as asking for fewer rows a page): $top caps the whole result,
    # which the server still pages, with a next link only within that cap.
    top_caps_result: bool = False


@dataclass
class Emulator:
    domain: str = "DEMO"
    username: str = "api"
    password: str = "secret"
    base_path: str = "/api"
    faults: Faults = field(default_factory=Faults)
    complete_after: float = 0.0  # > 0: jobs created through the API are completed this much later

    def __post_init__(self):
        self.tables = {name: {} for name in SCHEMAS}
        self.versions = dict.fromkeys(SCHEMAS, 0)
        self._indexes = {}
        self.lock = threading.RLock()
        self.calls = 0
        self.calls_by_controller = {}
        self._last_stamp = datetime(2020, 1, 1)
        self.pending_files = []  # (visible_at, entity)
        # Tables ("Jobs") or fields ("JobApproval.jobs_id") whose GUIDs this tenant
        # writes in upper case; Odyssee uses either case, per table and per foreign key.
        self.upper_case = set()
        # Job types set up in Odyssee's screens have no ERP code; one is the default.
        for code, name, is_default in (("", "Repair", True), ("SERVICE", "Service", False)):
            self._insert("JobType", {"code": code, "name": name, "is_default": is_default})
        # A tenant's own installation statuses (no ERP code set on them in the UI).
        for name, is_default, is_closed in (
            ("Closed", False, True),
            ("In service", True, False),
            ("Out of service", False, False),
        ):
            self._insert(
                "ProjectStatus",
                {"code": "", "name": name, "is_default": is_default, "is_closed": is_closed},
            )
        self.job_status_ids = {}
        for code, name, guid in JOB_STATUSES:
            status = self._insert("JobStatus", {"id": guid, "code": code, "name": name})
            self.job_status_ids[code] = status["id"]
        self.server = None

    def status_id(self, code):
        """The GUID of the job status ``code`` in this tenant (lower case)."""
        return self.job_status_ids[code]

    def _cased(self, controller, row):
        """``row`` as this tenant writes it: GUIDs of the configured tables/fields upper-cased."""
        if not self.upper_case:
            return row
        kinds = SCHEMAS[controller]["fields"]
        whole = controller in self.upper_case
        for name, value in row.items():
            if kinds.get(name) == "g" and (whole or f"{controller}.{name}" in self.upper_case):
                row[name] = value.upper()
        return row

    def _index(self, controller, field_name):
        key = (controller, field_name, self.versions[controller])
        if key not in self._indexes:
            index = {}
            for entity in self.tables[controller].values():
                value = entity[field_name]
                index.setdefault(
                    value.lower() if SCHEMAS[controller]["fields"][field_name] == "g" else value, []
                ).append(entity)
            self._indexes = {k: v for k, v in self._indexes.items() if k[:2] != key[:2]}
            self._indexes[key] = index
        return self._indexes[key]

    def _positions(self, controller):
        key = (controller, "#position", self.versions[controller])
        if key not in self._indexes:
            self._indexes[key] = {k: n for n, k in enumerate(self.tables[controller])}
        return self._indexes[key]

    def set_faults(self, faults):
        """Inject ``faults`` from the next call on (the n-th call counters restart)."""
        with self.lock:
            self.faults = faults
            self._seen = 0

    # -- data --------------------------------------------------------------------
    def stamp(self):
        with self.lock:
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self.faults.tie_timestamps:
                self._last_stamp = max(self._last_stamp, now)
            else:
                self._last_stamp = max(now, self._last_stamp + timedelta(milliseconds=1))
            return format_stamp(self._last_stamp)

    def _insert(self, controller, values):
        schema = SCHEMAS[controller]
        entity = {name: DEFAULTS[kind] for name, kind in schema["fields"].items()}
        entity.update({k: v for k, v in values.items() if k in entity and v is not None})
        if not entity["id"] or entity["id"] == EMPTY_GUID:
            entity["id"] = str(uuid.uuid4())
        entity["id"] = entity["id"].lower()
        entity["modified_dateutc"] = self.stamp()
        self.tables[controller][entity["id"]] = entity
        self.versions[controller] += 1
        return entity

    def add(self, controller, **values):
        """Insert a row as Odyssee itself would (scenario, technicians); returns it."""
        with self.lock:
            return dict(self._insert(controller, values))

    def touch(self, controller, key, **values):
        with self.lock:
            entity = self.tables[controller][key]
            entity.update(values)
            entity["modified_dateutc"] = self.stamp()
            self.versions[controller] += 1
            return dict(entity)

    def set_job_status(self, job_id, code):
        """A dispatcher in Odyssee moves a job (planned, dispatched…): no approval involved."""
        with self.lock:
            return self.touch("Jobs", job_id.lower(), job_status_id=self.status_id(code))

    def add_generated_file(self, table, row_id, file_type, name):
        """A file Odyssee generates for a row (order PDF, purchase-order PDF), not an approval."""
        content = f"%PDF-1.4\n% {file_type} {row_id}\n%%EOF\n".encode()
        with self.lock:
            return self._insert(
                "DbFile",
                {
                    "db_table_name": table,
                    "id_in_table": row_id,
                    "name": name,
                    "file_name": f"{name}.pdf",
                    "mime_type": "application/pdf",
                    "file_type_name": file_type,
                    "file_content": base64.b64encode(content).decode(),
                    "file_size": len(content),
                },
            )

    def add_pdf_later(self, approval, delay=None):
        """The signed PDF of ``approval`` appears ``delay`` seconds later ("never": not at all)."""
        delay = self.faults.pdf_delay_seconds if delay is None else delay
        if delay == "never":
            return None
        content = b"%PDF-1.4\n% job approval " + approval["id"].encode() + b"\n%%EOF\n"
        values = {
            "db_table_name": "job_approval",
            "id_in_table": approval["id"],
            "name": f"Job approval {approval['id'][:8]}",
            "file_name": f"approval-{approval['id'][:8]}.pdf",
            "mime_type": "application/pdf",
            "file_type_name": "JOB_APPROVAL",
            "file_content": base64.b64encode(content).decode(),
            "file_size": len(content),
        }
        with self.lock:
            if delay <= 0:
                return self._insert("DbFile", values)
            self.pending_files.append((time.monotonic() + delay, values))
            return None

    def _release_files(self):
        with self.lock:
            now = time.monotonic()
            due = [values for at, values in self.pending_files if at <= now]
            self.pending_files = [(at, v) for at, v in self.pending_files if at > now]
            for values in due:
                self._insert("DbFile", values)

    def complete_job(
        self,
        job_id,
        parts=2,
        timesheets=2,
        daily=False,
        pdf_delay=None,
        user_id=None,
        first_article=0,
    ):
        """A technician signs work on a job: usage lines, an approval, later its PDF.

        ``user_id`` is the technician (default: the tenant's first user); the
        parts are the articles from the ``first_article``-th on.

        A daily approval signs the work so far (the job waits for further
        actions); a final one completes the job. Both get a ``JOB_APPROVAL``
        PDF (``pdf_delay``: seconds, or "never"); the technician's photo of
        the site is a file linked to the job, and the job's order and
        purchase-order PDFs are generated files of other types.
        """
        with self.lock:
            job_id = job_id.lower()
            job = self.tables["Jobs"][job_id]
            users = list(self.tables["User"].values())
            user_id = user_id or (users[0]["id"] if users else EMPTY_GUID)
            articles = list(self.tables["Article"].values())
            status = self.status_id("WAITINGFURTHER" if daily else "COMPLETED")
            approval = self._insert(
                "JobApproval",
                {
                    "jobs_id": job_id,
                    "user_id": user_id,
                    "is_daily_approval": daily,
                    "is_signed": True,
                    "contact_name": "Site manager",
                    "date_generated": self.stamp()[:-1],
                    "job_status_id": status,
                    "rating": 5,
                },
            )
            day = self.stamp()[:10] + "T08:00:00.000"
            for index in range(parts):
                article = articles[(first_article + index) % len(articles)] if articles else {}
                self._insert(
                    "JobPartUsage",
                    {
                        "jobs_id": job_id,
                        "article_id": article.get("id", EMPTY_GUID),
                        "user_id": user_id,
                        "working_date": day,
                        "code": article.get("code", f"FREE-{index}"),
                        "name": article.get("name", "Free-text part"),
                        "quantity": 1 + index,
                        "price": article.get("entered_price", 10.0),
                        "signed_by_company": True,
                        "job_approval_id": approval["id"],
                        "is_under_warranty": index == 1,
                    },
                )
            for index in range(timesheets):
                travel = index == timesheets - 1 and timesheets > 1
                self._insert(
                    "JobNonPartUsage",
                    {
                        "jobs_id": job_id,
                        "user_id": user_id,
                        "working_date": day,
                        "timesheet_date_from": day,
                        "timesheet_date_to": day,
                        "type_code": "TravelTime" if travel else "WorkingTime",
                        "line_code": "TRAVEL" if travel else "NORMAL",
                        "description": "Travel" if travel else "Labour",
                        "quantity": 0.75 if travel else 2.5,
                        "price": 45.0 if travel else 65.0,
                        "signed_by_company": True,
                        "job_approval_id": approval["id"],
                    },
                )
            job["job_status_id"] = status
            job["modified_dateutc"] = self.stamp()
            self.versions["Jobs"] += 1
            self._insert(
                "DbFile",
                {
                    "db_table_name": "jobs",
                    "id_in_table": job_id,
                    "name": "Site photo",
                    "file_name": "site.jpg",
                    "mime_type": "image/jpeg",
                    "file_content": base64.b64encode(b"\xff\xd8\xff photo").decode(),
                    "file_size": 9,
                },
            )
            self.add_generated_file("jobs", job_id, "ORDERPDF", f"Order {job_id[:8]}")
            if parts:
                self.add_generated_file(
                    "jobs", job_id, "PURCHASE_ORDERPDF", f"Purchase order {job_id[:8]}"
                )
            self.add_pdf_later(approval, pdf_delay)
            return dict(approval)

    # -- API ---------------------------------------------------------------------
    def handle(self, method, path, query, headers, body):
        """Return (status, headers, body bytes) for one API call."""
        self._release_files()
        if not self._authorized(headers.get("Authorization")):
            return (
                401,
                {"WWW-Authenticate": "Basic"},
                _json({"Message": "Authorization has been denied for this request."}),
            )
        match = re.match(r"^/([A-Za-z]+)(?:\(([^)]*)\))?$", path)
        if not match or match.group(1).lower() not in ROUTES:
            return 404, {}, _json({"Message": f"No HTTP resource was found that matches {path!r}."})
        controller, key = ROUTES[match.group(1).lower()], match.group(2)
        with self.lock:
            self.calls += 1
            self.calls_by_controller[controller] = self.calls_by_controller.get(controller, 0) + 1
        try:
            if method == "GET":
                return 200, {}, _json(self._get(controller, key, query))
            if method == "POST" and key is None:
                return 201, {}, _json(self._cased(controller, self._write(controller, None, body)))
            if method == "PUT" and key is not None:
                return 200, {}, _json(self._cased(controller, self._write(controller, key, body)))
            return 405, {}, _json({"Message": f"The requested resource does not support {method}."})
        except ApiError as exc:
            payload = {"Message": exc.message}
            if exc.model_state:
                payload["ModelState"] = exc.model_state
            return exc.status, {}, _json(payload)

    def _authorized(self, header):
        if not header or not header.startswith("Basic "):
            return False
        try:
            text = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        credentials, _, domain = text.rpartition("@")  # user names may contain '@'
        username, _, password = credentials.partition(":")
        return (username, password, domain) == (self.username, self.password, self.domain)

    def _get(self, controller, key, query):
        schema = SCHEMAS[controller]
        if key is not None:
            if not GUID_RE.match(key):
                raise ApiError(400, f"'{key}' is not a valid key.")
            with self.lock:
                entity = self.tables[controller].get(key.lower())
            if not entity:
                raise ApiError(404, f"No {controller} with id {key}.")
            entity = self._cased(controller, dict(entity))
            return dict(entity, **{"@odata.context": f"$metadata#{controller}/$entity"})
        options = dict(query)
        unknown = [
            name
            for name in options
            if name not in ("$filter", "$orderby", "$select", "$top", "$skip")
        ]
        if unknown:
            raise ApiError(400, f"Query option {unknown[0]} is not supported.")
        predicate, hint = (
            parse_filter(options["$filter"], schema) if options.get("$filter") else (None, None)
        )
        order = []
        for item in filter(None, (options.get("$orderby") or "").split(",")):
            name, _, direction = item.strip().partition(" ")
            if name not in schema["fields"] or direction not in ("", "asc", "desc"):
                raise ApiError(400, f"$orderby: '{item}' is not valid.")
            order.append((name, direction == "desc"))
        select = [s for s in (options.get("$select") or "").split(",") if s]
        for name in select:
            if name not in schema["fields"]:
                raise ApiError(400, f"$select: could not find a property named '{name}'.")
        try:
            top = int(options.get("$top", self.faults.page_size))
            skip = int(options.get("$skip", 0))
        except ValueError:
            raise ApiError(400, "$top and $skip must be integers.") from None
        if top < 0 or skip < 0:
            raise ApiError(400, "$top and $skip must be positive.")
        cap = top if self.faults.top_caps_result and "$top" in options else None
        top = min(top, self.faults.page_size)  # 20 is the ceiling (reference section 7, Q3)
        with self.lock:
            if hint:  # an equality on one field: only rows from its index are candidates
                index = self._index(controller, hint[0])
                candidates = [e for value in hint[1] for e in index.get(value, ())]
                position = self._positions(controller)
                candidates.sort(key=lambda e: position[e["id"].lower()])  # insertion order (Q5)
            else:
                candidates = self.tables[controller].values()
            rows = [e for e in candidates if not predicate or predicate(e)]
            for name, descending in reversed(order):
                rows.sort(key=lambda e, n=name: e[n], reverse=descending)
            if cap is not None:  # what is past the cap is not in the result at all
                rows = rows[: skip + cap]
            page = [self._cased(controller, dict(e)) for e in rows[skip : skip + top]]
        if controller == "DbFile" and "file_content" not in select:
            for row in page:  # content only on GET DbFile(id) or when selected (section 7, Q18)
                row.pop("file_content", None)
        if select:
            page = [{name: row[name] for name in select} for row in page]
        envelope = {"@odata.context": f"$metadata#{controller}", "value": page}
        if skip + top < len(rows) and top > 0:
            next_query = dict(options, **{"$skip": str(skip + top)})
            if cap is not None:
                next_query["$top"] = str(cap - top)
            envelope["@odata.nextLink"] = f"{self.base_url}/{controller}?{urlencode(next_query)}"
            if self.faults.changed_between_pages == controller and page:
                self.touch(controller, rows[skip]["id"])
        return envelope

    def _write(self, controller, key, body):
        schema = SCHEMAS[controller]
        if not schema.get("writable"):
            raise ApiError(405, f"{controller} is read-only through the ERP API.")
        try:
            values = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON.") from None
        if not isinstance(values, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        with self.lock:
            current = None
            if key is not None:
                current = self.tables[controller].get(key.lower())
                if not current:
                    raise ApiError(404, f"No {controller} with id {key}.")
            elif (
                values.get("id")
                and values["id"] != EMPTY_GUID
                and values["id"].lower() in self.tables[controller]
            ):
                raise ApiError(409, f"A {controller} with id {values['id']} already exists.")
            resolved = self._validate(controller, schema, values, current)
            if current is not None:  # PUT merges over the stored entity (section 7, Q11)
                current.update(resolved)
                current["modified_dateutc"] = self.stamp()
                self.versions[controller] += 1
                return dict(current)
            created = dict(self._insert(controller, resolved))
        if controller == "Jobs" and self.complete_after > 0:
            # A dispatcher sends a technician halfway, who completes the job at the end.
            for delay, action, args in (
                (self.complete_after / 2, self.set_job_status, [created["id"], "DISPATCHED"]),
                (self.complete_after, self.complete_job, [created["id"]]),
            ):
                timer = threading.Timer(delay, action, args)
                timer.daemon = True
                timer.start()
        return created

    def _validate(self, controller, schema, values, current):
        errors, resolved = {}, {}
        for name, value in values.items():
            kind = schema["fields"].get(name)
            if name == "modified_dateutc" or (name == "id" and current is not None):
                continue
            if kind is None:
                continue  # unknown properties are ignored, embedded *_code handled below
            if value is None:
                value = DEFAULTS[kind]
            if kind == "s" and not isinstance(value, str):
                errors[f"{controller}.{name}"] = ["must be a string"]
            elif kind == "b" and not isinstance(value, bool):
                errors[f"{controller}.{name}"] = ["must be true or false"]
            elif kind == "n" and (isinstance(value, bool) or not isinstance(value, int | float)):
                errors[f"{controller}.{name}"] = ["must be a number"]
            elif kind == "g" and not GUID_RE.match(str(value)):
                errors[f"{controller}.{name}"] = ["must be a GUID"]
            elif kind == "s" and len(value) > schema.get("max", {}).get(name, 4000):
                errors[f"{controller}.{name}"] = [f"Max length: {schema['max'][name]}"]
            else:
                resolved[name] = value.lower() if kind == "g" else value
        merged = dict(current or {}, **resolved)
        for name in schema.get("required", []):
            if not merged.get(name):
                errors[f"{controller}.{name}"] = [f"The {name} field is required."]
        if errors:
            raise ApiError(400, "The request is invalid.", errors)
        unresolved = {}
        for ref, (target, key_field) in schema.get("refs", {}).items():
            code = (
                values.get(f"{ref}_{key_field}")
                if key_field == "reference_back_office"
                else values.get(f"{ref}_code")
            )
            if code in (None, ""):
                continue
            if target == "JobStatus":
                if code not in self.job_status_ids:
                    unresolved[f"{controller}.{ref}_code"] = [f"Unknown job status code {code!r}."]
                else:
                    resolved["job_status_id"] = self.job_status_ids[code]
                continue
            match = next((e for e in self.tables[target].values() if e[key_field] == code), None)
            if not match:
                unresolved[f"{controller}.{ref}_{'code' if key_field == 'code' else key_field}"] = [
                    f"No {target} with {key_field} {code!r}."
                ]
            else:
                resolved[f"{ref}_id"] = match["id"]
        for name, kind in schema["fields"].items():
            if (
                kind == "g"
                and name.endswith("_id")
                and resolved.get(name) not in (None, EMPTY_GUID)
            ):
                target = {
                    "company_id": "Company",
                    "project_id": "Project",
                    "project_status_id": "ProjectStatus",
                    "job_type_id": "JobType",
                    "article_category_id": "ArticleCategory",
                    "parent_id": "ArticleCategory",
                }.get(name)
                if target and resolved[name] not in self.tables[target]:
                    unresolved[f"{controller}.{name}"] = [f"No {target} with id {resolved[name]}."]
        merged = dict(current or {}, **resolved)
        for group in schema.get("one_of", []):
            if not any(merged.get(name) not in (None, "", EMPTY_GUID) for name in group):
                id_name = group[0]
                if resolved.get(id_name) in (None, EMPTY_GUID) and not unresolved:
                    errors[f"{controller}.{id_name}"] = [
                        f"One of {', '.join(group)} must be provided."
                    ]
        if errors:
            raise ApiError(400, "The request is invalid.", errors)
        if unresolved:
            raise ApiError(422, "A referenced entity does not exist.", unresolved)
        if controller == "Jobs" and current is None and "job_status_id" not in resolved:
            resolved["job_status_id"] = self.status_id("OPEN")
        return resolved

    # -- HTTP ----------------------------------------------------------------------
    def start(self, host="127.0.0.1", port=0):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # Headers and body leave in two writes: without this, Nagle's algorithm
                # and delayed ACKs add 40 ms to every keep-alive call.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                if parts.path.startswith("/_emulator/"):
                    return self._control(parts.path, body)
                if not parts.path.startswith(emulator.base_path + "/"):
                    return self._send(404, {}, _json({"Message": "Not found."}))
                if len(parts.query) > MAX_QUERY_STRING:
                    # IIS's request filtering (404.15), before the API sees the call.
                    return self._send(
                        404,
                        {"Content-Type": "text/html"},
                        b"<h1>HTTP Error 404.15 - Not Found</h1>"
                        b"<p>The request filtering module is configured to deny a request where "
                        b"the query string is too long.</p>",
                    )
                with emulator.lock:
                    emulator._seen = getattr(emulator, "_seen", 0) + 1
                    nth = emulator._seen
                faults = emulator.faults
                if faults.latency_ms:
                    time.sleep(faults.latency_ms / 1000)
                if faults.always_status:
                    return self._send(
                        faults.always_status, {}, _json({"Message": "Injected failure."})
                    )
                if faults.moved_to:
                    location = faults.moved_to.rstrip("/") + self.path[len(emulator.base_path) :]
                    return self._send(
                        faults.moved_status, {"Location": location}, _json({"Message": "Moved."})
                    )
                target = unquote_plus(self.path)
                for text, status in faults.poisoned.items():
                    if text.lower() in target.lower():
                        return self._send(status, {}, _json({"Message": "An error has occurred."}))
                if faults.every_nth_drop and (nth - 1) % faults.every_nth_drop == 0:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if faults.every_nth_429 and (nth - 1) % faults.every_nth_429 == 0:
                    return self._send(
                        429,
                        {"Retry-After": str(faults.retry_after_seconds)},
                        _json({"Message": "Too many requests."}),
                    )
                if faults.every_nth_500 and (nth - 1) % faults.every_nth_500 == 0:
                    return self._send(500, {}, _json({"Message": "An error has occurred."}))
                query = parse_qsl(parts.query, keep_blank_values=True)
                status, headers, payload = emulator.handle(
                    self.command, parts.path[len(emulator.base_path) :], query, self.headers, body
                )
                if faults.every_nth_lost_answer and (nth - 1) % faults.every_nth_lost_answer == 0:
                    self.close_connection = True  # done, but the answer never arrives
                    self.connection.shutdown(2)
                    return None
                if faults.every_nth_truncate and (nth - 1) % faults.every_nth_truncate == 0:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.close_connection = True
                    return None
                return self._send(status, headers, payload)

            def _control(self, path, body):
                values = json.loads(body or b"{}")
                if path == "/_emulator/faults":
                    emulator.set_faults(Faults(**values))
                    return self._send(200, {}, _json({"faults": emulator.faults.__dict__}))
                match = re.match(r"^/_emulator/complete/([0-9a-fA-F-]{36})$", path)
                if match:
                    return self._send(
                        200, {}, _json(emulator.complete_job(match.group(1).lower(), **values))
                    )
                if path == "/_emulator/stats":
                    return self._send(
                        200,
                        {},
                        _json(
                            {
                                "calls": emulator.calls,
                                "by_controller": emulator.calls_by_controller,
                                "rows": {k: len(v) for k, v in emulator.tables.items()},
                            }
                        ),
                    )
                return self._send(404, {}, _json({"Message": "Unknown control endpoint."}))

            def _send(self, status, headers, payload):
                self.send_response(status)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                return None

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://{host}:{self.server.server_address[1]}{self.base_path}"
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        return self.base_url

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def _json(payload):
    return json.dumps(payload, separators=(",", ":")).encode()


def main(argv=None):
    from .scenario import SCENARIOS, populate

    parser = argparse.ArgumentParser(description="Local Odyssee ERP API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="demo")
    parser.add_argument("--domain", default="DEMO")
    parser.add_argument("--username", default="api")
    parser.add_argument("--password", default="secret")
    parser.add_argument(
        "--pdf-delay", type=float, default=0.0, help="seconds before approval PDFs appear"
    )
    parser.add_argument(
        "--complete-after",
        type=float,
        default=0.0,
        help="a technician completes each job created through the API this many seconds later",
    )
    args = parser.parse_args(argv)
    emulator = Emulator(
        args.domain,
        args.username,
        args.password,
        faults=Faults(pdf_delay_seconds=args.pdf_delay),
        complete_after=args.complete_after,
    )
    populate(emulator, **SCENARIOS[args.scenario])
    url = emulator.start(args.host, args.port)
    print(f"Odyssee emulator on {url} (domain {args.domain}, user {args.username})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()
