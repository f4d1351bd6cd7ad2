"""A small client for the Odyssee (Wello) ERP REST API.

Plain Python, no ``odoo`` import. Basic auth with ``username:password@domain``,
``X-Api-Version``, OData paging through ``@odata.nextLink``, retries with
exponential backoff and jitter on 429/5xx/timeouts honouring ``Retry-After``, a
client-side rate limit, and typed errors. Redirects are never followed
(``OdysseeMoved`` names the new location). Credentials never appear in a log
line or an exception: errors carry the method, path, status and body only.
"""

import base64
import copy
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests

from .odata import Query

_logger = logging.getLogger(__name__)
RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
MAX_ERROR_BODY = 2000


class OdysseeError(Exception):
    """Any failure talking to Odyssee."""

    def __init__(self, message, *, method=None, path=None, status=None, body=None, retries=0):
        super().__init__(message)
        self.method, self.path, self.status = method, path, status
        self.body = (body or "")[:MAX_ERROR_BODY]
        self.retries = retries


class OdysseeConnectionError(OdysseeError):
    """No usable answer: refused, dropped or timed-out connection, or a truncated body."""


class OdysseeUnreachable(OdysseeConnectionError):
    """No connection at all: unknown host, nothing listening, no route."""


class OdysseeTimeout(OdysseeConnectionError):
    """Connected (or trying to), but no answer within the client's timeout."""


class OdysseeTLSError(OdysseeConnectionError):
    """The TLS handshake failed: bad or expired certificate, or not a TLS server."""


class OdysseeHTTPError(OdysseeError):
    """Odyssee answered with an error status."""


class OdysseeMoved(OdysseeHTTPError):
    """A redirect (3xx): the tenant's API answers elsewhere, at ``location``.

    Never followed: requests would send the call to the new host without the
    credentials (or with a ``.netrc`` login) and re-send a POST answered 301 or
    302 as a GET. A person checks the new location and sets the backend's URL.
    """

    location: str | None = None
    base_url: str | None = None  # ``location`` without the path called, when it ends with it


class OdysseeAuthError(OdysseeHTTPError):
    """401 or 403: wrong credentials, or a resource this API user may not see."""


class OdysseeNotFound(OdysseeHTTPError):
    """404: unknown id, or a wrong URL or API version."""


class OdysseeValidationError(OdysseeHTTPError):
    """400 or 422: the payload was refused; ``body`` says why."""


class OdysseeConflict(OdysseeHTTPError):
    """409: e.g. a POST with a client-chosen id that already exists."""


@dataclass
class CallRecord:
    """What the client tells its caller about each call (for an exchange log)."""

    method: str
    path: str
    query: str
    status: int | None
    duration_ms: float
    retries: int
    correlation_id: str
    error: str | None = None


class _HeaderAuth(requests.auth.AuthBase):
    """The backend's ``Authorization`` header, given to requests as the call's auth.

    Given as a header only, requests would replace it with the login of a
    ``.netrc`` entry of the server's system user (a ``default`` one matches
    every host), and Odyssee would refuse credentials no one configured.
    """

    def __init__(self, header):
        self.header = header

    def __call__(self, request):
        request.headers["Authorization"] = self.header
        return request


@dataclass
class OdysseeClient:
    base_url: str
    domain: str
    username: str
    password: str = field(repr=False)
    api_version: str = "1"
    timeout: float = 30.0
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_requests_per_second: float = 10.0
    on_call: object = None  # callable(CallRecord)
    # callable(), called before each request: where a long import gives way to
    # other work (cpu_priority.GiveWay)
    before_request: object = None
    session: requests.Session = field(default=None, repr=False)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self.session = self.session or requests.Session()
        token = base64.b64encode(f"{self.username}:{self.password}@{self.domain}".encode()).decode()
        self._headers = {"X-Api-Version": str(self.api_version), "Accept": "application/json"}
        self._auth = _HeaderAuth(f"Basic {token}")
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.calls = 0

    # -- public API ----------------------------------------------------------
    def get(self, controller, key=None, query=None):
        """One entity (``key``) or one page (returns the raw envelope)."""
        path = f"/{controller}({key})" if key else f"/{controller}"
        return self._request("GET", path, query=query)

    def iter_pages(self, controller, query=None):
        """Yield each page's ``value`` list, following ``@odata.nextLink``.

        Where ``$top`` caps the whole result (standard Web API OData; the
        reference documents it only as asking for fewer rows a page), a page
        of ``$top`` rows comes without a next link though more rows follow:
        the rest is asked with ``$skip``, until a page comes back short.
        """
        envelope = self._request("GET", f"/{controller}", query=query)
        read = 0
        while True:
            rows = envelope.get("value", [])
            yield rows
            read += len(rows)
            if next_link(envelope):
                envelope = self.follow(envelope)
            elif may_be_capped(query, rows):
                following = copy.copy(query)
                following.skip = (query.skip or 0) + read
                envelope = self._request("GET", f"/{controller}", query=following)
            else:
                return

    def follow(self, envelope):
        """The next page of ``envelope`` (its ``@odata.nextLink``), as a raw envelope."""
        return self._request("GET", self._relative(next_link(envelope)))

    def iter_all(self, controller, query=None):
        for page in self.iter_pages(controller, query):
            yield from page

    def create(self, controller, values):
        """POST ``values``; returns the created entity.

        With a client-chosen ``id`` (reference section 7, Q10) the call is
        idempotent: it is retried after a lost answer, and a 409 (the id
        exists: an earlier attempt or run created it) answers with the stored
        entity, ``"@adopted": True``. Without one, only a 429 is retried: a lost
        answer or a 5xx may hide a record that was created, so the error goes
        to the caller rather than a second POST.
        """
        key = values.get("id") if isinstance(values, dict) else None
        if not key or key == EMPTY_GUID:
            return self._request("POST", f"/{controller}", json=values, idempotent=False)
        try:
            return self._request("POST", f"/{controller}", json=values)
        except OdysseeConflict:
            return dict(self.get(controller, key), **{"@adopted": True})

    def update(self, controller, key, values):
        return self._request("PUT", f"/{controller}({key})", json=values)

    # -- internals -------------------------------------------------------------
    def _relative(self, link):
        base_path = urlsplit(self.base_url).path
        parts = urlsplit(link)
        path = parts.path[len(base_path) :] if parts.path.startswith(base_path) else parts.path
        return f"{path}?{parts.query}" if parts.query else path

    def _throttle(self):
        if self.max_requests_per_second <= 0:
            return
        interval = 1.0 / self.max_requests_per_second
        with self._lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + interval
        if wait > 0:
            time.sleep(wait)

    def _delay(self, attempt, response):
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.backoff_cap)
            except ValueError:
                pass
        ceiling = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads retries of many workers

    def _request(self, method, path, query=None, json=None, idempotent=True):
        """One call with retries; a non-``idempotent`` call is retried only after a 429."""
        if isinstance(query, Query):
            query = query.to_string()
        url = f"{self.base_url}{path}" + (f"?{query}" if query and "?" not in path else "")
        shown_path, _, shown_query = (path + (f"?{query}" if query else "")).partition("?")
        correlation_id = str(uuid.uuid4())
        headers = dict(self._headers, **{"X-Correlation-Id": correlation_id})
        if self.before_request is not None:
            self.before_request()  # before the clock: a pause is not the call's time
        started = time.monotonic()
        attempt = 0
        while True:
            self._throttle()
            self.calls += 1
            response, failure = None, None
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    timeout=self.timeout,
                    auth=self._auth,
                    allow_redirects=False,
                )
                if response.status_code < 300:
                    payload = response.json() if response.content else {}
                    self._report(
                        method,
                        shown_path,
                        shown_query,
                        response.status_code,
                        started,
                        attempt,
                        correlation_id,
                    )
                    return payload
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                failure = _connection_error(exc)(
                    f"{method} {shown_path}: {type(exc).__name__}",
                    method=method,
                    path=shown_path,
                    retries=attempt,
                )
            except ValueError:  # a truncated or non-JSON body
                failure = OdysseeConnectionError(
                    f"{method} {shown_path}: the response body is not complete JSON",
                    method=method,
                    path=shown_path,
                    status=response.status_code,
                    body=response.text,
                    retries=attempt,
                )
            retryable = failure is not None or response.status_code in RETRYABLE_STATUSES
            if not idempotent:
                retryable = failure is None and response.status_code == 429
            if retryable and attempt < self.max_retries:
                delay = self._delay(attempt, response if failure is None else None)
                _logger.info(
                    "odyssee %s %s: %s, retry %s in %.2fs",
                    method,
                    shown_path,
                    failure.__class__.__name__ if failure else response.status_code,
                    attempt + 1,
                    delay,
                )
                attempt += 1
                time.sleep(delay)
                continue
            error = failure or _http_error(method, shown_path, response, attempt)
            error.retries = attempt
            self._report(
                method,
                shown_path,
                shown_query,
                error.status,
                started,
                attempt,
                correlation_id,
                error=f"{type(error).__name__}: {error.body or error}",
            )
            raise error

    def _report(self, method, path, query, status, started, retries, correlation_id, error=None):
        if self.on_call:
            self.on_call(
                CallRecord(
                    method,
                    path,
                    query,
                    status,
                    (time.monotonic() - started) * 1000,
                    retries,
                    correlation_id,
                    error,
                )
            )


def may_be_capped(query, rows):
    """Whether a page without a next link may be followed by more rows: it is as long
    as the ``$top`` its query asked (``Query``), which may have capped the result."""
    top = getattr(query, "top", None)
    return bool(top) and len(rows) >= top


def next_link(envelope):
    """The envelope's ``@odata.nextLink`` (its key spelled in any case), or None."""
    for key, value in envelope.items():
        if key.lower() == "@odata.nextlink":
            return value
    return None


def _connection_error(exc):
    """The typed error of a ``requests`` failure that got no usable answer.

    Order matters: ``SSLError`` and ``ConnectTimeout`` are both ``ConnectionError``s.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return OdysseeTLSError
    if isinstance(exc, requests.Timeout):
        return OdysseeTimeout
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return OdysseeConnectionError  # an answer began, then broke off
    if isinstance(exc, requests.ConnectionError):
        return OdysseeUnreachable
    return OdysseeConnectionError


def _http_error(method, path, response, retries):
    status = response.status_code
    message = f"{method} {path}: HTTP {status}"
    if 300 <= status < 400:
        cls = OdysseeMoved
        # A relative Location is relative to the URL called (RFC 9110).
        location = response.headers.get("Location") or ""
        location = _without_userinfo(urljoin(response.url, location)) if location else None
        message += f", moved to {location or '(no Location header)'}"
    else:
        cls = {
            401: OdysseeAuthError,
            403: OdysseeAuthError,
            404: OdysseeNotFound,
            409: OdysseeConflict,
            400: OdysseeValidationError,
            422: OdysseeValidationError,
        }.get(status, OdysseeHTTPError)
    error = cls(
        message, method=method, path=path, status=status, body=response.text, retries=retries
    )
    if cls is OdysseeMoved and location:
        error.location = location
        moved = urlsplit(location)
        moved_path = unquote(moved.path)  # Project%28guid%29 is the Project(guid) called
        if moved_path.endswith(path):
            error.base_url = urlunsplit(moved._replace(path=moved_path[: -len(path)], query=""))
    return error


def _without_userinfo(url):
    """``url`` without a ``user:password@`` part, which may not be shown anywhere."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
