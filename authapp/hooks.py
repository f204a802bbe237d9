"""Per-request plumbing: the request id, JSON-only bodies on the API, security headers."""

from __future__ import annotations

import json
import re
import uuid

import structlog
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from authapp.errors import AppError

SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BASE_CSP = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# The Swagger UI page loads its bundle from a CDN and starts it with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-API-Key, X-CSRF-TOKEN, X-Request-ID"
CORS_ALLOW_METHODS = "GET, POST, PATCH, DELETE"
CORS_EXPOSE_HEADERS = "X-Request-ID, Retry-After"


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class InvalidJson(AppError):
    status, code = 400, "invalid_json"


def _bind_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _require_json_body() -> None:
    """415 for a non-JSON body and 400 for broken JSON, before any view or schema runs."""
    if not request.path.startswith("/api/") or request.method not in BODY_METHODS:
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    body = request.get_data(cache=True)
    if len(body) >= limit:
        # A chunked body has no length: Werkzeug stops reading at the limit without an error.
        raise RequestEntityTooLarge()
    if not body and not request.mimetype:
        return  # nothing sent: the schema says whether a body was required
    if not _is_json(request.mimetype):
        raise UnsupportedMediaType("Request bodies must be JSON (Content-Type: application/json).")
    if not body:
        return
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise InvalidJson("The request body is not valid JSON.") from None


def _is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _answer_preflight() -> Response | None:
    if _is_preflight() and request.path.startswith("/api/"):
        return Response(status=204)  # _cors adds the grant when the origin is listed
    return None


def _cors(response: Response) -> Response:
    """WB-5: only listed origins, echoed exactly, with credentials; never `*`, never `null`."""
    if not request.path.startswith("/api/"):
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null" or origin not in current_app.config["CORS_ORIGINS"]:
        return response
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Allow-Credentials"] = "true"
    headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    if _is_preflight():
        headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = "600"
    return response


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", g.get("referrer_policy", "same-origin"))
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    docs = request.path == current_app.config["OPENAPI_URL_PREFIX"] + "/docs"
    headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else BASE_CSP)
    if not request.path.startswith("/static/"):
        # API answers and pages alike show accounts, tokens or keys: never from a cache.
        headers["Cache-Control"] = "no-store"
    if current_app.config["AUTHAPP_ENV"] == "production":
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response


def init_app(app: Flask) -> None:
    app.json.mimetype = "application/json; charset=utf-8"  # type: ignore[attr-defined]
    app.before_request(_bind_request_id)
    app.before_request(_answer_preflight)  # before the body checks: a preflight has no body
    app.before_request(_require_json_body)
    app.after_request(_cors)
    app.after_request(_security_headers)
