"""The telematics ingestion API (``/telematics/v1``).

Every answer is JSON; errors are RFC 9457 problem documents naming the failing
fields, whatever the input: no body makes it answer 500. Accepted items are in
the ledger before the 202 leaves, and the whole handler is idempotent, because
Odoo re-runs it on serialization conflicts. It runs as the technical ingestion
user in the source's company, never as the superuser.
"""

import hashlib
import json
import logging
from pathlib import Path

from odoo import http
from odoo.http import request
from werkzeug.exceptions import RequestEntityTooLarge

from ..models.construction_telematics_event import IngestError
from ..protocols import telematics_auth

_logger = logging.getLogger(__name__)

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi" / "telematics-v1.json"
JSON_TYPES = ("application/json",)
MAX_IDEMPOTENCY_KEY_LENGTH = 255
INGESTION_USER = "construction_asset_sync.user_telematics_ingestion"
ROUTE_OPTIONS = {
    "type": "http",
    "auth": "none",
    "csrf": False,
    "save_session": False,
}


def problem(status, title, detail, errors=None, headers=None):
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return request.make_response(
        json.dumps(body),
        headers=[("Content-Type", "application/problem+json"), *(headers or [])],
        status=status,
    )


def json_response(body, status):
    # An error answered again (a replayed Idempotency-Key) keeps its problem type.
    content_type = "application/problem+json" if status >= 400 else "application/json"
    return request.make_response(
        json.dumps(body), headers=[("Content-Type", content_type)], status=status
    )


class TelematicsController(http.Controller):
    @http.route("/telematics/v1/health", methods=["GET"], **ROUTE_OPTIONS)
    def health(self):
        return json_response({"status": "ok"}, 200)

    @http.route("/telematics/v1/openapi.json", methods=["GET"], **ROUTE_OPTIONS)
    def openapi(self):
        return request.make_response(
            OPENAPI_PATH.read_bytes(), headers=[("Content-Type", "application/json")]
        )

    @http.route("/telematics/v1/alerts", methods=["POST"], readonly=False, **ROUTE_OPTIONS)
    def alerts(self):
        return self._ingest("alerts")

    @http.route("/telematics/v1/readings", methods=["POST"], readonly=False, **ROUTE_OPTIONS)
    def readings(self):
        return self._ingest("readings")

    @http.route("/telematics/v1/iso15143/fleet", methods=["POST"], readonly=False, **ROUTE_OPTIONS)
    def iso15143_fleet(self):
        return self._ingest("iso15143")

    @http.route(
        ["/telematics/v1/alerts", "/telematics/v1/readings", "/telematics/v1/iso15143/fleet"],
        methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"],
        **ROUTE_OPTIONS,
    )
    def not_post(self):
        return problem(
            405,
            "Method Not Allowed",
            "Send data with POST.",
            [{"field": "$method", "message": "must be POST"}],
            headers=[("Allow", "POST")],
        )

    # ------------------------------------------------------------------
    def _ingest(self, endpoint):
        httprequest = request.httprequest
        ingestion_uid = request.env["ir.model.data"].sudo()._xmlid_to_res_id(INGESTION_USER)
        request.update_env(user=ingestion_uid)
        source = request.env["construction.telematics.source"]._authenticate(
            telematics_auth.bearer_token(httprequest.headers.get("Authorization"))
        )
        if not source:
            # Unauthenticated: nothing is written, and nothing tells which part was wrong.
            return problem(
                401,
                "Unauthorized",
                "A valid 'Authorization: Bearer <key>' is required.",
                [{"field": "Authorization", "message": "must be a valid Bearer key"}],
            )
        source = source._as_ingestion_user()
        wait = source._rate_limit_wait()
        if wait:
            return problem(
                429,
                "Too Many Requests",
                f"This source sends more than its {source.rate_limit} requests per minute; "
                f"retry in {wait} s.",
                [{"field": "$", "message": f"over {source.rate_limit} requests per minute"}],
                headers=[("Retry-After", str(wait))],
            )
        env = source.env
        Event = env["construction.telematics.event"]
        # The ledger is written with plain SQL: check what the ORM would have.
        Event.check_access("create")
        try:
            body = self._read_body(source)
            try:
                source._verify_signature(
                    httprequest.headers.get("X-Telematics-Timestamp"),
                    httprequest.headers.get("X-Telematics-Signature"),
                    body,
                )
            except telematics_auth.SignatureError as exc:
                field = (
                    "X-Telematics-Timestamp"
                    if "Timestamp" in str(exc)
                    else "X-Telematics-Signature"
                )
                return problem(
                    401, "Unauthorized", str(exc), [{"field": field, "message": str(exc)}]
                )
            idempotency_key = self._idempotency_key()
            body_sha256 = hashlib.sha256(body).hexdigest()
            if idempotency_key:
                known = env["construction.telematics.idempotency"]._find(source, idempotency_key)
                if known and known.body_sha256 != body_sha256:
                    return problem(
                        422,
                        "Idempotency-Key reused",
                        "This Idempotency-Key was used with a different body.",
                        [{"field": "Idempotency-Key", "message": "was used with a different body"}],
                    )
                if known:
                    return json_response(known.response, known.status)
            answer = Event._receive_body(source, endpoint, body, channel="http")
        except IngestError as exc:
            # _receive_body has kept what it refused as a rejected event.
            return problem(exc.status, exc.title, exc.detail, exc.errors)
        # Nothing rejected is no failure: an ISO 15143-3 page may hold no item at all,
        # or only elements left out for their unit, which are kept all the same.
        if (
            answer["rejected"]
            and not answer["accepted"]
            and not answer["duplicates"]
            and not answer.get("left_out")
        ):
            status = 422
            body_out = {
                "type": "about:blank",
                "title": "No valid item",
                "status": 422,
                "detail": "Every item failed validation; nothing was accepted.",
                "errors": [
                    dict(error, field=f"[{item['index']}].{error['field']}")
                    for item in answer["rejected"]
                    for error in item["errors"]
                ],
            } | answer
            response = json_response(body_out, 422)
        else:
            status, body_out = 202, answer
            response = json_response(answer, 202)
        if idempotency_key:
            env["construction.telematics.idempotency"]._remember(
                source, idempotency_key, body_sha256, status, body_out
            )
        return response

    def _idempotency_key(self):
        key = (request.httprequest.headers.get("Idempotency-Key") or "").strip().strip('"')
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
            raise IngestError(
                400,
                "Invalid Idempotency-Key",
                f"The Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} printable "
                "characters.",
                [
                    {
                        "field": "Idempotency-Key",
                        "message": f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} printable "
                        "characters",
                    }
                ],
            )
        return key

    def _read_body(self, source):
        httprequest = request.httprequest
        mimetype = (httprequest.mimetype or "").lower()
        if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
            raise IngestError(
                415,
                "Unsupported Media Type",
                "Send the body as application/json.",
                [{"field": "Content-Type", "message": "must be application/json"}],
            )
        megabytes = request.env["res.config.settings"]._construction_setting(
            "telematics_max_body_mb"
        )
        limit = int(megabytes * 1024 * 1024)
        too_large = IngestError(
            413,
            "Content Too Large",
            f"The body exceeds the limit of {limit} bytes.",
            [{"field": "$", "message": f"must be at most {limit} bytes"}],
        )
        if (httprequest.content_length or 0) > limit:
            raise too_large
        # Also caps bodies sent without Content-Length (chunked).
        httprequest.max_content_length = limit
        try:
            return httprequest.get_data(cache=True)
        except RequestEntityTooLarge:
            raise too_large from None
