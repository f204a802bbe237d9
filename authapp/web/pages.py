"""What every page gets: the signed form session (only when the browser brings one), the CSRF
check of every form outside the JSON API (WB-1), the template context and the device filter."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from authapp.platform import errors, territory
from authapp.platform.errors import render
from authapp.platform.extensions import csrf
from authapp.platform.hooks import BODY_METHODS

BROWSERS = ("Edg", "OPR", "Firefox", "HeadlessChrome", "Chrome", "Safari", "curl", "python")


SYSTEMS = ("Windows", "iPhone", "iPad", "Android", "Mac OS X", "CrOS", "Linux")


def device_summary(agent: str | None) -> str:
    """`Chrome 156 on Linux` from a User-Agent, for people; the raw string goes in a title."""
    if not agent:
        return "Unknown device"
    browser = next(
        (match for name in BROWSERS if (match := _product(agent, name)) is not None), None
    )
    system = next((name for name in SYSTEMS if name in agent), None)
    if browser is None:
        return agent[:40]
    return f"{browser} on {system}" if system else browser


def _product(agent: str, name: str) -> str | None:
    found = re.search(rf"(?:^|[\s(]){re.escape(name)}[^/\s]*/(\d+)", agent)
    return f"{name.replace('Edg', 'Edge').replace('OPR', 'Opera')} {found[1]}" if found else None


def _context() -> dict[str, Any]:
    return {"principal": g.get("principal")}


def csrf_refused(_exc: CSRFError) -> Response:
    # WB-1: nothing ran; the page says how to recover instead of Flask-WTF's terse reason.
    return render(
        400,
        "csrf_failed",
        "This form has expired or was not sent from this site. Go back, reload the page and "
        "try again.",
    )


def _protect_forms() -> None:
    """WB-1 for every form outside the JSON API, an adopter's pages included when authapp is the
    whole app (mounted in a host, its own forms only: the host's CSRF is the host's). The API
    (bearer tokens, API keys, or cookies with X-CSRF-TOKEN) is checked by the JWT layer."""
    if request.method in BODY_METHODS:
        path, ours = request.path, territory.current()
        if ours.owns(path) and not path.startswith(ours.json_paths):
            csrf.protect()


class FormSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, which only forms use (Flask-WTF keeps its CSRF secret
    there), made only for a request that brings the cookie: Flask builds its signing
    serializer on every request first, a few per cent of a token check's CPU for a session
    that API requests never have."""

    def open_session(self, app: Flask, request: Any) -> SecureCookieSession | None:
        # The raw header, not `request.cookies`: parsing every cookie into a dict cost more
        # than the rest of this; a name found inside another cookie's just takes Flask's way.
        raw = request.environ.get("HTTP_COOKIE", "")
        if app.secret_key and f"{self.get_cookie_name(app)}=" not in raw:
            return self.session_class()
        return super().open_session(app, request)


def answer_errors(scope: Flask | Blueprint) -> None:
    """The error envelope (platform/errors.py), with a failed form CSRF check told in words."""
    errors.register(scope)
    scope.register_error_handler(CSRFError, csrf_refused)


def init_app(app: Flask) -> None:
    if territory.current_of(app).whole_app:  # a host keeps the session it chose
        app.session_interface = FormSessions()
    app.before_request(_protect_forms)
    app.context_processor(_context)
    app.add_template_filter(device_summary)
