"""What every browser page shares: the login guard, safe `next`, and forms read with the
same marshmallow schemas as the JSON API (DESIGN.md: no second set of rules for HTML)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, g, make_response, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError
from marshmallow import Schema, ValidationError, fields
from werkzeug.wrappers import Response

from authapp.errors import JSON_PREFIXES, AppError, flatten_messages, render
from authapp.extensions import csrf
from authapp.hooks import BODY_METHODS
from authapp.security import cookies, rbac

F = TypeVar("F", bound=Callable[..., Any])
# The field an error code belongs to, so the form shows it next to the right input.
# The form field a refusal without field messages belongs to.
FIELD_OF_CODE = {
    "email_taken": "email",
    "username_taken": "username",
    "role_name_taken": "name",
    "invalid_mfa_code": "totp_code",  # the login form's second step
}
UNSAFE_NEXT = re.compile(r"[\x00-\x20\\\x7f]")


def page_login_required(permission: str | None = None) -> Callable[[F], F]:
    """Pages: no valid cookie → the login page with `next`; lacking `permission` → 403 page."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = cookies.browser_principal()
            if principal is None or principal.user is None:
                return redirect(url_for("auth_pages.login", next=_here()))
            if permission is not None and permission not in principal.permissions:
                rbac.deny(principal, permission)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorator


def _here() -> str:
    return request.full_path.rstrip("?") if request.query_string else request.path


def safe_next(value: str | None) -> str:
    """WB-6: a local path only; anything else (`//evil`, `https://…`, `/\\evil`) goes home."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if UNSAFE_NEXT.search(value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def see_other(endpoint: str, **values: Any) -> Response:
    """POST-redirect-GET."""
    return redirect(url_for(endpoint, **values), code=303)


def load_form(schema: Schema) -> dict[str, Any]:
    """The posted form through `schema`: empty optional fields count as absent, list fields
    come from repeated inputs. Raises AppError (ValidationFailed) like the JSON API."""
    data: dict[str, Any] = {}
    for name, field in schema.fields.items():
        if isinstance(field, fields.List):
            if name in request.form or f"{name}_present" in request.form:
                data[name] = request.form.getlist(name)
            continue
        value = request.form.get(name)
        if value is None or (value == "" and not field.required):
            continue
        data[name] = value
    return load(schema, data)


def load(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` a view assembled from the form (checkboxes, cleared fields) through `schema`."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise FormInvalid(_by_field(exc.messages)) from None
    return loaded


class FormInvalid(AppError):
    status, code = 422, "validation_error"

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("Some fields need attention.", fields=fields)


def _by_field(messages: Any) -> dict[str, list[str]]:
    """marshmallow's messages by form field: a list item's message (`scopes.1`) goes to the
    list's own field, where the page shows it."""
    fields_: dict[str, list[str]] = {}
    for name, texts in flatten_messages(messages).items():
        fields_.setdefault(name.split(".", 1)[0], []).extend(texts)
    return fields_


def form_errors(exc: AppError) -> tuple[dict[str, list[str]], str]:
    """(field messages, the sentence for the top of the form) of a service's refusal."""
    errors = dict(exc.fields or {})
    field = FIELD_OF_CODE.get(exc.code)
    if field is not None and not errors:
        errors.setdefault(field, []).append(exc.message)
    general = errors.pop("_schema", [])
    summary = " ".join(general) if general else exc.message
    return errors, summary


def render_form(
    template: str,
    error: AppError | None = None,
    *,
    values: Mapping[str, Any] | None = None,
    **context: Any,
) -> Response:
    """A form page; after a refusal, with messages by field and what the user typed (never a
    password: templates do not echo password inputs)."""
    errors: dict[str, list[str]] = {}
    summary = None
    if error is not None:
        errors, summary = form_errors(error)
    # Focus the first field in error, in the order the browser posted the form (its DOM order).
    first_error = next((name for name in request.form if name in errors), next(iter(errors), None))
    page = render_template(
        template,
        errors=errors,
        summary=summary,
        values=values or {},
        first_error=first_error,
        **context,
    )
    if error is None:
        return make_response(page, 200)
    return make_response(page, error.status, error.headers)  # a 429's Retry-After too


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


def _csrf_refused(_exc: CSRFError) -> Response:
    # WB-1: nothing ran; the page says how to recover instead of Flask-WTF's terse reason.
    return render(
        400,
        "csrf_failed",
        "This form has expired or was not sent from this site. Go back, reload the page and "
        "try again.",
    )


def _protect_forms() -> None:
    """WB-1 by default for every form outside the JSON API, an adopter's pages included; the
    API (bearer tokens, API keys, or cookies with X-CSRF-TOKEN) is checked by the JWT layer."""
    if request.method in BODY_METHODS and not request.path.startswith(JSON_PREFIXES):
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


def init_app(app: Flask) -> None:
    app.session_interface = FormSessions()
    app.before_request(_protect_forms)
    app.context_processor(_context)
    app.add_template_filter(device_summary)
    app.register_error_handler(CSRFError, _csrf_refused)
