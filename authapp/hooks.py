"""Per-request plumbing: the request id, JSON-only bodies on the API, security headers."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from functools import lru_cache
from inspect import iscoroutinefunction
from typing import Any

import structlog
from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from authapp.errors import AppError

SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BASE_CSP = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# Swagger UI (authapp/docs.py) comes from this origin too; its stylesheet draws icons as
# data: images. Still no inline script or style, and no other host.
DOCS_CSP = BASE_CSP + "; img-src 'self' data:"


CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-API-Key, X-CSRF-TOKEN, X-Request-ID"
CORS_ALLOW_METHODS = "GET, POST, PATCH, DELETE"
CORS_EXPOSE_HEADERS = "X-Request-ID, Retry-After"


class SyncFlask(Flask):
    """Flask, without asking on every request whether each hook and view is a coroutine
    function (`inspect.iscoroutinefunction`, 16 times a token check): authapp has none (it is
    sync by design, README's first lines), so each function is asked once. One that is gets
    Flask's own treatment."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return super().ensure_sync(func) if _is_coroutine_function(func) else func


@lru_cache(maxsize=1024)  # the app's hooks and views: a few dozen
def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    return iscoroutinefunction(func)


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class InvalidJson(AppError):
    status, code = 400, "invalid_json"


class Hooks:
    """The per-request work, with what it needs from the configuration read once: these run on
    every request, and each `current_app.config` lookup goes through a context-local proxy."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        self.max_body = config["MAX_CONTENT_LENGTH"]
        self.cors_origins = frozenset(config["CORS_ORIGINS"]) - {"null"}
        self.docs_path = config["OPENAPI_URL_PREFIX"] + "/docs"
        # Set on every answer unless a view set its own (setdefault), then always these two.
        self.defaults: tuple[tuple[str, str], ...] = (
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        )
        self.hsts = (
            "max-age=31536000; includeSubDomains" if config["AUTHAPP_ENV"] == "production" else None
        )

    def before(self) -> Response | None:
        _bind_request_id()
        if request.path.startswith("/api/"):
            if _is_preflight():
                return Response(status=204)  # after() adds the grant when the origin is listed
            if request.method in BODY_METHODS:
                self._require_json_body()
        return None

    def after(self, response: Response) -> Response:
        path = request.path
        if path.startswith("/api/"):
            self._cors(response)
        self._security_headers(response, path)
        return response

    def _require_json_body(self) -> None:
        """415 for a non-JSON body and 400 for broken JSON, before any view or schema runs."""
        limit = self.max_body
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge()
        body = request.get_data(cache=True)
        if len(body) >= limit:
            # A chunked body has no length: Werkzeug stops reading at the limit without an error.
            raise RequestEntityTooLarge()
        if not body and not request.mimetype:
            return  # nothing sent: the schema says whether a body was required
        if not _is_json(request.mimetype):
            raise UnsupportedMediaType(
                "Request bodies must be JSON (Content-Type: application/json)."
            )
        if not body:
            return
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
            raise InvalidJson("The request body is not valid JSON.") from None

    def _cors(self, response: Response) -> None:
        """WB-5: only listed origins, echoed exactly, with credentials; never `*`, never `null`."""
        _vary_on_origin(response)
        origin = request.headers.get("Origin")
        if origin is None or origin not in self.cors_origins:
            return
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        if _is_preflight():
            headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
            headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = "600"

    def _security_headers(self, response: Response, path: str) -> None:
        headers = response.headers
        present = {name.lower() for name, _value in headers.items()}
        for name, value in self.defaults:
            if name.lower() not in present:
                headers.add(name, value)
        if "referrer-policy" not in present:
            headers.add("Referrer-Policy", g.get("referrer_policy", "same-origin"))
        if "content-security-policy" not in present:
            headers.add("Content-Security-Policy", DOCS_CSP if path == self.docs_path else BASE_CSP)
        headers["X-Request-ID"] = g.get("request_id") or new_request_id()
        if not path.startswith("/static/"):
            # API answers and pages alike show accounts, tokens or keys: never from a cache.
            headers["Cache-Control"] = "no-store"
        if self.hsts:
            headers["Strict-Transport-Security"] = self.hsts


def _vary_on_origin(response: Response) -> None:
    """`Vary: Origin` added to what the view set, as `response.vary.add("Origin")` does, without
    parsing the header into a set and writing it back (a tenth of these hooks' CPU)."""
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Origin"
    elif "origin" not in {part.strip().lower() for part in vary.split(",")}:
        response.headers["Vary"] = f"{vary}, Origin"


def _bind_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if SANE_REQUEST_ID.fullmatch(incoming) else new_request_id()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)


def new_request_id() -> str:
    """128 random bits as hex, like uuid4().hex, from Python's PRNG (which CPython reseeds in
    every forked worker): a request id only tells requests apart in logs (it guards nothing),
    and uuid4 asks the kernel every time."""
    return f"{random.getrandbits(128):032x}"  # noqa: S311 - not a secret


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def init_app(app: Flask) -> None:
    app.json.mimetype = "application/json; charset=utf-8"  # type: ignore[attr-defined]
    hooks = Hooks(app)
    app.before_request(hooks.before)  # a preflight is answered before the body checks
    app.after_request(hooks.after)
