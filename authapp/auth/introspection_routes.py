"""/api/v1/auth/introspect: token introspection (RFC 7662) for the services authapp protects
(docs/protecting-services.md)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from authapp.auth.guards import current_principal, require_permission
from authapp.auth.services import introspection
from authapp.platform.hooks import accepts_form

bp = Blueprint(
    "introspection",
    __name__,
    url_prefix="/api/v1/auth",
    description="Token introspection for other services",
)


class IntrospectIn(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=8192))
    token_type_hint = fields.String(load_default=None, validate=validate.Length(max=64))


class IntrospectOut(Schema):
    active = fields.Boolean(required=True)
    token_type = fields.String()
    sub = fields.String()
    sid = fields.String()
    org = fields.String()
    iss = fields.String()
    aud = fields.Raw()  # a string or a list, as the token has it
    exp = fields.Integer()
    iat = fields.Integer()
    jti = fields.String()
    permissions = fields.List(fields.String())


@bp.route("/introspect", methods=["POST"])
@accepts_form  # RFC 7662 §2.1: application/x-www-form-urlencoded
@require_permission("tokens:introspect")
@bp.arguments(IntrospectIn, location="form")
@bp.response(200, IntrospectOut)
def introspect(body: dict[str, Any]) -> dict[str, Any]:
    """Whether an access token is good now (RFC 7662), for an API key with the
    `tokens:introspect` scope: `{"active": false}` for anything that is not a live access token
    of the key's organization (revoked, logged out, suspended, expired, forged, another
    organization's), else its claims and current permissions. `token_type_hint` is ignored."""
    return introspection.introspect(current_principal(), body["token"])
