"""What every browser page shares: safe `next`, and forms read with the
same marshmallow schemas as the JSON API (docs/architecture.md "Conventions": no second set of rules
for HTML)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import jsonify, make_response, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError, fields
from werkzeug.wrappers import Response

from authapp.platform.errors import AppError, flatten_messages

# The field an error code belongs to, so the form shows it next to the right input.
# The form field a refusal without field messages belongs to.
FIELD_OF_CODE = {
    "email_taken": "email",
    "username_taken": "username",
    "role_name_taken": "name",
    "invalid_mfa_code": "totp_code",  # the login form's second step
}
UNSAFE_NEXT = re.compile(r"[\x00-\x20\\\x7f]")


def safe_next(value: str | None) -> str:
    """WB-6: a local path only; anything else (`//evil`, `https://…`, `/\\evil`) goes to
    authapp's home page (under its prefix when it is mounted in a host app)."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return url_for("auth_pages.home")
    if UNSAFE_NEXT.search(value):
        return url_for("auth_pages.home")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return url_for("auth_pages.home")
    return value


def json_refusal(exc: AppError) -> Response:
    """A page's JSON answer to its own script (the passkey options): the API's error envelope,
    so the script can show the message."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.fields:
        error["fields"] = exc.fields
    response = jsonify(error=error)
    response.status_code = exc.status
    return response


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
