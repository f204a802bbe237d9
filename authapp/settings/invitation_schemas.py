"""Request and response schemas of the invitation routes (settings/invitation_routes.py); the
pages load the same ones from their forms."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from authapp.auth.schemas import Email, NewPassword, OrganizationRefOut, Text, Username
from authapp.platform.openapi import TIME_FORMAT


class InvitationIn(Schema):
    email = Email(required=True)
    roles = fields.List(
        Text(max_length=64, min_length=1),
        load_default=lambda: ["member"],
        validate=validate.Length(min=1, max=20, error="Choose between 1 and 20 roles."),
        metadata={"description": "Role names; `member` when absent."},
    )


class InvitationOut(Schema):
    id = fields.String()
    email = fields.String()
    roles = fields.List(fields.String())
    invited_by = fields.String(allow_none=True)
    created_at = fields.DateTime(format=TIME_FORMAT)
    expires_at = fields.DateTime(format=TIME_FORMAT)


class InvitationListOut(Schema):
    invitations = fields.List(fields.Nested(InvitationOut))


class AcceptInvitationIn(Schema):
    """Without `password`: the logged-in caller joins. With it: a new account for the invited
    address (`full_name` and `username` belong to that sign-up only)."""

    # The shape (43 URL-safe characters) is checked before any hashing: a malformed token is
    # `400 invalid_token` like any mailed link's; the length bound keeps absurd input a 422.
    token = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = NewPassword(load_default=None)
    full_name = Text(max_length=200, load_default=None)
    username = Username(load_default=None)

    @validates_schema(skip_on_field_errors=False)
    def _signup_fields(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("password") is not None:
            return
        extra = [name for name in ("full_name", "username") if data.get(name) is not None]
        if extra:
            raise ValidationError(
                {name: ["Only with `password`, for a new account."] for name in extra}
            )


class AcceptedInvitationOut(Schema):
    organization = fields.Nested(OrganizationRefOut)
    roles = fields.List(fields.String(), attribute="role_names")
