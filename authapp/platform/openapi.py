"""The OpenAPI document tells the truth, in one place rather than on every route.

flask-smorest documents a "default" answer with its own error schema, which is not the envelope
platform/errors.py renders, and routes declare only their success. `Api` here makes every error
answer the envelope, drops the catch-all "default" (with it, a client or schemathesis could not
tell a documented status from a surprise), and gives each operation the errors it can actually
answer:

- every operation: 429 (rate limits, API keys' budgets) and 503 (database down, hashing flood);
- a method with a body (POST, PATCH, DELETE): 400 `invalid_json`, 413 and 415 (platform/hooks.py
  checks every such request under /api/), and 422 when the route validates a body or a query;
- a guarded route (auth/guards.py: require_login / require_permission): 401 and 403, and its
  `security` (bearer; API keys too where the guard admits them);
- a path parameter: 404;
- plus the route's own domain answers from ROUTE_ERRORS (409s, login's 401/403, ...).

Each error status has its own envelope whose `code` is one of the contract's for it. Every
answer documents `X-Request-ID` (and every operation takes one), 401 `WWW-Authenticate` and 429
`Retry-After`. Request fields say what the server accepts (`_field_properties`); unknown fields
are `additionalProperties: false`, which apispec derives from marshmallow's RAISE.
tests/fuzz runs schemathesis against this document: an answer it leaves out fails there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from flask_smorest import Api as SmorestApi
from flask_smorest.utils import prepare_response
from werkzeug.routing import Rule

JSON = "application/json"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every timestamp the API answers: RFC 3339, UTC, seconds
BODY_METHODS = frozenset({"post", "put", "patch", "delete"})
REQUEST_ID = {
    "description": "The request's id: the client's X-Request-ID when it is a sane token.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}
REQUEST_ID_PARAMETER = {
    "description": "A client's id for the request: echoed when it is a sane token (at most 64 "
    "of `A-Za-z0-9._-`), else replaced by a fresh one.",
    "required": False,
    "schema": {"type": "string"},
}
RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

# status -> (what it means here, the contract's codes for it or None when routes add their own)
ERRORS: dict[int, tuple[str, tuple[str, ...] | None]] = {
    400: ("The body is not JSON, or a mailed token is unknown, used or expired, or passkeys "
          "are asked for on a site opened by an IP address.",
          ("invalid_json", "invalid_token", "bad_request", "passkeys_unavailable")),
    401: ("Missing, invalid, expired or revoked credentials, or a failed login.",
          ("missing_token", "invalid_token", "token_expired", "token_revoked", "token_reused",
           "invalid_credentials", "mfa_required", "invalid_mfa_code", "invalid_passkey",
           "federation_refused", "mfa_login_expired")),
    403: ("Authenticated but not allowed (or a cookie request without X-CSRF-TOKEN, an "
          "unconfirmed email address for MFA, passkeys, API keys, administration or, with "
          "REQUIRE_VERIFIED_EMAIL, a login; or sign-up closed by SIGNUP_MODE; or an "
          "invitation for another address).",
          ("forbidden", "csrf_failed", "account_disabled", "email_not_verified",
           "email_unverified", "signup_closed", "invitation_email_mismatch")),
    404: ("No such resource in the caller's organization.", ("not_found",)),
    409: ("The change conflicts with the current state.", None),
    413: ("The body is larger than MAX_CONTENT_LENGTH.", ("payload_too_large",)),
    415: ("The body is not application/json.", ("unsupported_media_type",)),
    422: ("Invalid fields; `fields` says which and why.",
          ("validation_error", "invalid_mfa_code", "invalid_passkey")),
    429: ("Throttled; retry after Retry-After seconds.", ("rate_limited",)),
    503: ("The database, the password hasher or an identity provider is unavailable; try "
          "again shortly.", ("service_unavailable", "provider_unavailable")),
}  # fmt: skip

# Domain answers a route gives beyond what its guard, method and parameters imply (docs/api.md).
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "auth.signup": (403, 409),  # signup_closed; email_taken, username_taken
    "auth.login": (401, 403),  # invalid_credentials, ...; account_disabled, email_unverified
    "auth.refresh": (401, 403),  # token_reused, ...; csrf_failed, email_unverified
    "auth.confirm_email_change": (409,),  # email_taken
    "settings.update_profile": (409,),  # username_taken
    "settings.start_mfa": (409,),  # mfa_already_enabled
    "settings.confirm_mfa": (409,),  # mfa_already_enabled, mfa_not_pending
    "settings.disable_mfa": (409,),  # mfa_not_enabled
    "settings.update_member": (409,),  # last_owner
    "settings.create_role": (409,),  # role_name_taken
    "settings.update_role": (409,),
    "settings.test_webhook": (409,),  # webhook_not_configured
    "settings.rotate_webhook_secret": (409,),
    "settings_privacy.delete_account": (409,),  # owner_must_transfer
    "invitations.invite": (409,),  # already_member
    "invitations.accept_invitation": (409,),  # already_member, login_required, username_taken
    "auth.switch_organization": (404,),  # not a member, or suspended there (AC-2)
    "organizations.create_organization": (409,),  # organization_limit
    "organizations.remove_member": (409,),  # last_owner
    "organizations.leave_organization": (409,),  # last_owner, last_organization
    "organizations.transfer_ownership": (404, 409),  # member_suspended
    "organizations.delete_organization": (409,),  # default_organization
    "federation.authorize": (503,),  # provider_unavailable
    # federation_refused, mfa_required; account_disabled, signup_closed, ...; identity_not_linked
    "federation.token": (401, 403, 409, 503),
    "federation.second_factor": (401, 403),  # invalid_mfa_code, mfa_login_expired; disabled
    "passkeys.options": (400,),  # passkeys_unavailable (an IP address as the host)
    "passkeys.login": (400, 401, 403),  # passkeys_unavailable; invalid_passkey; disabled, ...
    "settings_passkeys.registration_options": (400, 403, 409),  # ...; unverified; too many
    "settings_passkeys.register": (400, 409),  # passkeys_unavailable; passkey_exists, too many
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


class ErrorBody(ma.Schema):
    code = ma.fields.String(
        required=True, metadata={"description": 'A code listed in docs/api.md "Errors".'}
    )
    message = ma.fields.String(required=True, metadata={"description": "A sentence for people."})


class ErrorEnvelope(ma.Schema):
    """Every error of /api, /healthz and /readyz (errors.render); never a stack trace."""

    error = ma.fields.Nested(ErrorBody, required=True)
    request_id = ma.fields.String(required=True)


class ValidationErrorBody(ErrorBody):
    field_errors = ma.fields.Dict(  # `fields` would shadow Schema.fields
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        required=True,
        data_key="fields",
        metadata={"description": "Messages per field (`a.b` when nested, `_schema`: the body)."},
    )


def _envelope(status: int, codes: tuple[str, ...] | None) -> type[ma.Schema]:
    """The envelope of one status: its `code` is one of the contract's (422: with `fields`)."""
    if codes is None:
        return ErrorEnvelope
    name = HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    code = ma.fields.String(required=True, validate=ma.validate.OneOf(codes))
    body = type(
        f"{name}Body", (ValidationErrorBody if status == 422 else ErrorBody,), {"code": code}
    )
    error = ma.fields.Nested(body, required=True)
    return type(f"{name}Error", (ErrorEnvelope,), {"error": error})


class Api(SmorestApi):  # type: ignore[misc]
    """flask-smorest's Api whose document describes authapp's errors (see the module)."""

    ERROR_SCHEMA = ErrorEnvelope
    DEFAULT_ERROR_RESPONSE_NAME = None  # no catch-all: each operation lists its statuses

    def _init_spec(self, **options: Any) -> None:
        plugins = [*(options.pop("extra_plugins", None) or ()), _ErrorResponses(self)]
        super()._init_spec(extra_plugins=plugins, **options)
        self.ma_plugin.converter.add_attribute_function(
            _field_properties(self._app.config["PASSWORD_MIN_LENGTH"])
        )
        for name, scheme in SECURITY_SCHEMES.items():
            self.spec.components.security_scheme(name, scheme)

    def _register_responses(self) -> None:
        """A response component per status, as flask-smorest names them (`UNAUTHORIZED`), so
        the 422 its @arguments adds is ours too; errors carry the envelope."""
        self.spec.components.header("X-Request-ID", REQUEST_ID)
        self.spec.components.parameter("X-Request-ID", "header", REQUEST_ID_PARAMETER)
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            response["headers"] = {"X-Request-ID": "X-Request-ID"}
            if status >= 400:
                meaning, codes = ERRORS.get(status, (status.phrase, None))
                response["description"] = meaning
                response["schema"] = _envelope(status, codes)
                response["headers"] |= _error_headers(status)
            prepare_response(response, self.spec, JSON)
            self.spec.components.response(status.name, response, lazy=True)


def _error_headers(status: int) -> dict[str, Any]:
    if status == 401:
        return {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
    if status == 429:
        return {"Retry-After": RETRY_AFTER | {"required": True}}
    if status == 503:
        return {"Retry-After": RETRY_AFTER}
    return {}


class _ErrorResponses(BasePlugin):  # type: ignore[misc]
    """Adds each operation's error answers and security while flask-smorest documents a route."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        guard = _guard_of(self.api._app.view_functions[rule.endpoint])
        for method, operation in operations.items():
            if method not in {"get", "put", "post", "patch", "delete"}:
                continue  # path-level keys such as "parameters"
            responses = operation.setdefault("responses", {})
            for response in responses.values():
                if isinstance(response, dict):  # a success documented inline
                    response.setdefault("headers", {})["X-Request-ID"] = "X-Request-ID"
            for status in sorted(_error_statuses(rule, method, operation, guard is not None)):
                responses.setdefault(status, HTTPStatus(status).name)
            if guard is not None:
                operation["security"] = guard
            operation.setdefault("parameters", []).append("X-Request-ID")


def _error_statuses(rule: Rule, method: str, operation: dict[str, Any], guarded: bool) -> set[int]:
    statuses = {429, 503, *ROUTE_ERRORS.get(rule.endpoint, ())}
    if method in BODY_METHODS:
        statuses |= {400, 413, 415}
    if "requestBody" in operation or any(
        isinstance(parameter, dict) and parameter.get("in") == "query"
        for parameter in operation.get("parameters", ())
    ):
        statuses.add(422)
    if rule.arguments:
        statuses.add(404)
    if guarded:
        statuses |= {401, 403}
    return statuses


def _guard_of(view: Callable[..., Any]) -> list[dict[str, list[str]]] | None:
    """The security requirement of a view behind a guard of auth/guards.py (which marks its
    wrapper with the credentials it `accepts`), or None for an open route."""
    for layer in _layers(view):
        accepts = getattr(layer, "accepts", None)
        if accepts is not None:
            return [{scheme: []} if scheme else {} for scheme in accepts]  # {}: no credential
    return None


def _layers(view: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """The view and every decorator layer under it (each one keeps `__wrapped__`)."""
    layer: Callable[..., Any] | None = view
    while layer is not None:
        yield layer
        layer = getattr(layer, "__wrapped__", None)


ANCHORS = re.compile(r"\A\\A(?P<body>.*)\\Z\Z", re.DOTALL)


def _field_properties(min_password_length: int) -> Callable[..., dict[str, Any]]:
    """An apispec attribute function for what it cannot see in our fields, so that clients
    (and schemathesis's positive cases) get what the server accepts:

    - our timestamps (TIME_FORMAT) are RFC 3339 `date-time`s;
    - a field validated as an email address has `format: email`;
    - a password being set is PASSWORD_MIN_LENGTH to the policy's maximum code points long;
    - a Python-anchored pattern (`\\A...\\Z`) becomes the ECMA-262 one it means (`^...$`).
    """

    def our_fields(_converter: Any, field: ma.fields.Field, ret: dict[str, Any]) -> dict[str, Any]:
        if isinstance(field, ma.fields.DateTime) and field.format == TIME_FORMAT:
            ret.pop("pattern", None)  # apispec's None for a format it does not know
            return {"format": "date-time"}
        properties: dict[str, Any] = {}
        if any(isinstance(rule, ma.validate.Email) for rule in field.validators):
            properties["format"] = "email"
        if getattr(field, "sets_password", False):  # auth/schemas.py's NewPassword
            properties["minLength"] = min_password_length
        pattern = ret.get("pattern")
        if isinstance(pattern, str) and (anchored := ANCHORS.fullmatch(pattern)):
            properties["pattern"] = f"^{anchored['body']}$"
        return properties

    return our_fields
