"""Per-request plumbing: the request id, JSON-only bodies on the API, security headers."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from inspect import iscoroutinefunction
from typing import Any, TypeVar

from flask import Flask, Response, current_app, has_request_context, request
from werkzeug.exceptions import RequestEntityTooLarge

from authapp.platform import config as settings
from authapp.platform import request_ids, territory
from authapp.platform.errors import AppError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BASE_CSP = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# Swagger UI (platform/api_docs.py) comes from this origin too; its stylesheet draws icons as
# data: images. Still no inline script or style, and no other host.
DOCS_CSP = BASE_CSP + "; img-src 'self' data:"


# Where the request's hooks leave values for SecurityHeaders, in the WSGI environ.
REFERRER_POLICY = "authapp.referrer_policy"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]

CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-API-Key, X-CSRF-TOKEN, X-Request-ID"
CORS_ALLOW_METHODS = "GET, POST, PATCH, DELETE"
CORS_EXPOSE_HEADERS = "X-Request-ID, Retry-After"


class SyncFlask(Flask):
    """Flask, without asking on every request whether each hook and view is a coroutine
    function (`inspect.iscoroutinefunction`, 16 times a token check): authapp has none (it is
    sync by design: docs/architecture.md "Rules", rule 1), so each function is asked once. One that
    is gets Flask's own treatment."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return super().ensure_sync(func) if _is_coroutine_function(func) else func


@lru_cache(maxsize=1024)  # the app's hooks and views: a few dozen
def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    return iscoroutinefunction(func)


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


F = TypeVar("F", bound=Callable[..., Any])
FORM = "application/x-www-form-urlencoded"
FORM_VIEW = "authapp_accepts_form"


def accepts_form(view: F) -> F:
    """Mark an API view whose body is a form, as a standard prescribes (RFC 7662's
    introspection): the JSON-only rule of every other API body does not apply to it."""
    setattr(view, FORM_VIEW, True)
    return view


def _takes_form() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, FORM_VIEW, False))


class InvalidJson(AppError):
    status, code = 400, "invalid_json"


class Hooks:
    """The per-request work, with what it needs from the configuration read once: these run on
    every request, and each `current_app.config` lookup goes through a context-local proxy."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        # Mounted in a host app that sets no MAX_CONTENT_LENGTH (Flask's None: no limit),
        # authapp's API bodies keep authapp's default one.
        self.max_body = config["MAX_CONTENT_LENGTH"] or settings.default("MAX_CONTENT_LENGTH")
        self.cors_origins = frozenset(config["CORS_ORIGINS"]) - {"null"}
        self.api_path = territory.current_of(app).api_path

    def before(self) -> Response | None:
        request_ids.bind(request.environ, request.headers.get("X-Request-ID", ""))
        if request.path.startswith(self.api_path):
            if _is_preflight():
                return Response(status=204)  # after() adds the grant when the origin is listed
            if request.method in BODY_METHODS:
                self._require_json_body()
        return None

    def after(self, response: Response) -> Response:
        if request.path.startswith(self.api_path):
            self._cors(response)
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
        if _takes_form():
            if request.mimetype != FORM:
                raise UnsupportedMediaType(f"This request body must be a form ({FORM}).")
            return
        if not _is_json(request.mimetype):
            raise UnsupportedMediaType(
                "Request bodies must be JSON (Content-Type: application/json)."
            )
        if not body:
            return
        try:
            json.loads(body)
        # JSONDecodeError is a ValueError; a body nested deeper than the parser recurses (a
        # thousand levels fit in a few KB) is as unreadable as a broken one.
        except (ValueError, UnicodeDecodeError, RecursionError):
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


def _vary_on_origin(response: Response) -> None:
    """`Vary: Origin` added to what the view set, as `response.vary.add("Origin")` does, without
    parsing the header into a set and writing it back (a tenth of these hooks' CPU)."""
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Origin"
    elif "origin" not in {part.strip().lower() for part in vary.split(",")}:
        response.headers["Vary"] = f"{vary}, Origin"


class SecurityHeaders:
    """WSGI middleware: the security headers, added to the answer's header list as it leaves.

    They were added in an after-request hook through Werkzeug's `Headers`, which checks every
    value it is given for line breaks: about a twentieth of a token check's CPU for values that
    are constants. Here they are plain tuples. A header the view set itself is kept (CSP,
    Referrer-Policy and the three defaults); X-Request-ID, Cache-Control and HSTS are always
    these. Every answer of authapp's passes here, error pages and static files included; mounted
    in a host app, the host's answers pass untouched (platform/territory.py)."""

    def __init__(self, wsgi_app: WsgiApp, app: Flask) -> None:
        config = app.config
        self.wsgi_app = wsgi_app
        self.territory = territory.current_of(app)
        self.whole_app = self.territory.whole_app
        self.static_path = self.territory.static_path
        self.docs_path = config["OPENAPI_URL_PREFIX"] + "/docs"
        # Set on every answer unless a view set its own, by lower-case name.
        self.defaults: tuple[tuple[str, str, str], ...] = (
            ("x-content-type-options", "X-Content-Type-Options", "nosniff"),
            ("x-frame-options", "X-Frame-Options", "DENY"),
            ("cross-origin-opener-policy", "Cross-Origin-Opener-Policy", "same-origin"),
        )
        always = ["x-request-id", "cache-control"]
        self.hsts: list[tuple[str, str]] = []
        if config["AUTHAPP_ENV"] == "production":
            self.hsts = [("Strict-Transport-Security", "max-age=31536000; includeSubDomains")]
            always.append("strict-transport-security")
        self.always = frozenset(always)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not self.whole_app and not self.territory.owns(environ.get("PATH_INFO", "")):
            return self.wsgi_app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, self.secured(environ, headers), exc_info)

        return self.wsgi_app(environ, start)

    def secured(self, environ: dict[str, Any], headers: list[tuple[str, str]]) -> list[Any]:
        present = set()
        kept = []
        for header in headers:
            name = header[0].lower()
            if name not in self.always:
                kept.append(header)
                present.add(name)
        for name, title, value in self.defaults:
            if name not in present:
                kept.append((title, value))
        if "referrer-policy" not in present:
            kept.append(("Referrer-Policy", environ.get(REFERRER_POLICY, "same-origin")))
        path = environ.get("PATH_INFO", "")
        if "content-security-policy" not in present:
            kept.append(
                ("Content-Security-Policy", DOCS_CSP if path == self.docs_path else BASE_CSP)
            )
        kept.append(("X-Request-ID", environ.get(request_ids.ENVIRON_KEY) or request_ids.new()))
        if not path.startswith(self.static_path):
            # API answers and pages alike show accounts, tokens or keys: never from a cache.
            kept.append(("Cache-Control", "no-store"))
        return kept + self.hsts


def send_no_referrer() -> None:
    """This page's answer carries `Referrer-Policy: no-referrer` (a token in its URL: RS-2)."""
    request.environ[REFERRER_POLICY] = "no-referrer"


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def init_app(app: Flask) -> None:
    if territory.current_of(app).whole_app:  # a host's JSON stays as the host made it
        app.json.mimetype = "application/json; charset=utf-8"  # type: ignore[attr-defined]
    hooks = Hooks(app)
    app.before_request(hooks.before)  # a preflight is answered before the body checks
    app.after_request(hooks.after)
    app.wsgi_app = SecurityHeaders(app.wsgi_app, app)  # type: ignore[method-assign]


def request_line() -> dict[str, str]:
    """The method and path of the request being served (nothing outside one), for an audit row
    written by a service, which takes plain values and never reads the request itself."""
    return {"method": request.method, "path": request.path} if has_request_context() else {}
