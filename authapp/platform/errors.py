"""The AppError family and the handlers that render every error as the one envelope."""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc
import structlog
from flask import Blueprint, Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, default_exceptions

from authapp.platform import metrics, request_ids, territory
from authapp.platform.extensions import db

log = structlog.get_logger(__name__)


class AppError(Exception):
    status, code = 400, "bad_request"
    headers: dict[str, str] = {}

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        beside: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.fields = message, code or self.code, fields
        self.headers = headers or {}
        # Members of the JSON answer beside the envelope (the federation's `mfa_ticket`).
        self.beside = beside or {}


class Unauthorized(AppError):
    status, code = 401, "invalid_credentials"


class TokenError(AppError):
    """A credential that cannot be used: 401 with the contract's token codes."""

    status, code = 401, "invalid_token"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class CsrfFailed(AppError):
    """A cookie-authenticated request without the double-submit header (WB-2)."""

    status, code = 403, "csrf_failed"
    text = "The X-CSRF-TOKEN header is missing or does not match the session's cookies."

    def __init__(self) -> None:
        super().__init__(self.text)


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class ValidationFailed(AppError):
    status, code = 422, "validation_error"

    def __init__(self, fields: dict[str, list[str]], message: str = "") -> None:
        super().__init__(message or "The request has invalid fields.", fields=fields)


class RateLimited(AppError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, scope: str) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        metrics.refused("app", scope)  # /metrics: 429s by what refused (login_backoff, totp, …)


class ServiceUnavailable(AppError):
    status, code = 503, "service_unavailable"


# Werkzeug's exceptions carry only a status; these are the contract's codes for them.
HTTP_CODES = {
    400: "bad_request",
    401: "missing_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def render(
    status: int,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    beside: dict[str, Any] | None = None,
) -> Response:
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    ours = territory.current()
    # A page of authapp's answers a page; its API, and a host's route behind one of authapp's
    # guards (authapp mounted in a host app), answer the envelope.
    if ours.owns(request.path) and not request.path.startswith(ours.json_paths):
        return Response(
            render_template("authapp/error.html", status=status, message=message), status, headers
        )
    error = {"code": code, "message": message} | ({"fields": fields} if fields else {})
    response = jsonify({"error": error, "request_id": request_ids.current(), **(beside or {})})
    response.status_code = status
    response.headers.update(headers)
    return response


def _from_app_error(exc: AppError) -> Response:
    return render(exc.status, exc.code, exc.message, exc.fields, exc.headers, exc.beside)


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if status == 422 and messages:
        # flask-smorest nests field errors by location: {"json": {"email": [...]}}
        fields = {
            k: v for location in messages.values() for k, v in flatten_messages(location).items()
        }
        return render(422, "validation_error", "The request has invalid fields.", fields)
    if status == 400 and messages and "json" in messages:
        return render(400, "invalid_json", "The request body is not valid JSON.")
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    message = exc.description or exc.name
    if status == 413:
        message = "The request body is too large."
    if status == 429:  # Flask-Limiter's description is the limit itself, e.g. "10 per 1 minute"
        message = f"Too many requests ({message}); retry after Retry-After seconds."
        metrics.refused_by_limiter(exc)
    return render(status, HTTP_CODES.get(status, "http_error"), message, headers=headers)


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested errors as `{"field.sub": [...]}`, `_schema` as the body itself."""
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat |= flatten_messages(value, name)
    return flat


def _database_unavailable(exc: Exception) -> Response:
    db.session.rollback()
    log.warning("database.unavailable", error_type=type(exc).__name__)
    return render(
        503,
        "service_unavailable",
        "The service is temporarily unavailable; try again shortly.",
        headers={"Retry-After": "5"},
    )


def _internal_error(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _from_http(exc)
    log.exception("request.unhandled_error", error_type=type(exc).__name__)
    metrics.failed()
    return render(500, "internal_error", "Something went wrong on our side.")


def is_database_outage(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # pool exhausted
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.OperationalError)
    return False


def constraint_name(exc: sqlalchemy.exc.IntegrityError) -> str | None:
    """The violated constraint's name, on PostgreSQL and on SQLite alike."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None)
    message = str(exc.orig)  # SQLite: "UNIQUE constraint failed: users.email_normalized"
    if "index '" in message:
        return message.split("index '", 1)[1].rstrip("'")
    columns = message.rsplit(": ", 1)[-1].split(", ")
    for table in db.metadata.tables.values():
        for index in table.indexes:
            names = [f"{table.name}.{column.name}" for column in index.columns]
            if names == columns:
                return str(index.name)
    return None


def _from_sqlalchemy(exc: sqlalchemy.exc.SQLAlchemyError) -> Response:
    if is_database_outage(exc):
        return _database_unavailable(exc)
    return _internal_error(exc)


def init_app(app: Flask) -> None:
    """The envelope for every error of the app: authapp's own service."""
    register(app)


def register_guard_errors(app: Flask) -> None:
    """authapp mounted in a host app: the host's own routes behind `require_login` or
    `require_permission` answer the guards' 401 and 403 in the envelope; every other error of
    theirs stays the host's."""
    app.register_error_handler(AppError, _from_app_error)


def register(scope: Flask | Blueprint) -> None:
    """The envelope for the errors of an app, or of one blueprint's requests (authapp mounted in
    a host app: its routes only). An HTTP error's code is named as well as its class: Flask asks
    for handlers by code first, so a host's `errorhandler(404)` would otherwise answer a 404 that
    one of authapp's views raised."""
    scope.register_error_handler(AppError, _from_app_error)
    scope.register_error_handler(HTTPException, _from_http)
    for code in default_exceptions:
        scope.register_error_handler(code, _from_http)
    scope.register_error_handler(sqlalchemy.exc.SQLAlchemyError, _from_sqlalchemy)
    scope.register_error_handler(Exception, _internal_error)
