"""Request and response schemas of /api/v1/settings; the OpenAPI document is built from them."""

from __future__ import annotations

import re

from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError

from authapp.auth.schemas import Email, NewPassword, Password, Text, Username, UserOut
from authapp.platform.openapi import TIME_FORMAT

PERMISSION_CODE = re.compile(r"\A[a-z][a-z0-9_.-]*(:[a-z0-9_.-]+)+\Z")
PERMISSION_CODE_RULE = "lowercase words joined by colons, such as commodities:write"


class PermissionCode(fields.String):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            validate=[
                validate.Length(max=100),
                validate.Regexp(PERMISSION_CODE, error=f"Must be {PERMISSION_CODE_RULE}."),
            ],
            **kwargs,  # type: ignore[arg-type]
        )


class StrictBoolean(fields.Boolean):
    """JSON true or false only: `"no"` or `0` is a 422, not a guess."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _codes(**kwargs: object) -> fields.List:
    return fields.List(PermissionCode(), validate=validate.Length(max=200), **kwargs)  # type: ignore[arg-type]


class NotEmpty(Schema):
    """A PATCH body must change something."""

    @validates_schema
    def _not_empty(self, data: dict[str, object], **_kwargs: object) -> None:
        if not data:
            raise SchemaError("Send at least one field to change.", "_schema")


# Self-service


class ProfilePatchIn(NotEmpty):
    full_name = Text(max_length=200)
    username = Username()


class PasswordChangeIn(Schema):
    current_password = Password(required=True)
    new_password = NewPassword(required=True)


class EmailChangeIn(Schema):
    """The sign-up's rules for the address (IN-2, IN-3); the password as the account has it."""

    new_email = Email(required=True)
    password = Password(required=True)


class AccountDeleteIn(Schema):
    password = Password(required=True)


class MfaCode(Text):
    """A 6-digit TOTP code or a recovery code (spaces and dashes allowed, as people type them)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_length=64, min_length=1, **kwargs)  # type: ignore[arg-type]


class MfaEnrolIn(Schema):
    password = Password(required=True)


class MfaEnrolOut(Schema):
    secret = fields.String()
    otpauth_uri = fields.String()


class MfaConfirmIn(Schema):
    code = MfaCode(required=True)


class RecoveryCodesOut(Schema):
    recovery_codes = fields.List(fields.String())


class MfaDisableIn(Schema):
    password = Password(required=True)
    code = MfaCode(required=True)


class SessionOut(Schema):
    id = fields.String()
    created_at = fields.DateTime(format=TIME_FORMAT)
    last_seen_at = fields.DateTime(format=TIME_FORMAT)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    current = fields.Boolean()


class SessionListOut(Schema):
    sessions = fields.List(fields.Nested(SessionOut))


# Organization administration


class PageArgs(Schema):
    class Meta:
        unknown = EXCLUDE  # query strings collect cache-busters; only these two matter

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, validate=validate.Length(min=1, max=200))


class OrganizationOut(Schema):
    id = fields.String()
    name = fields.String()
    tier = fields.String()
    rate_limit_per_minute = fields.Integer()
    webhook_url = fields.String(allow_none=True)
    created_at = fields.DateTime(format=TIME_FORMAT)


class OrganizationPatchIn(NotEmpty):
    name = Text(min_length=1, max_length=100)
    webhook_url = Text(max_length=2048, min_length=1, allow_none=True)  # null removes it


class OrganizationUpdatedOut(OrganizationOut):
    webhook_secret = fields.String(
        metadata={"description": "In the answer that first sets webhook_url only."}
    )


class WebhookSecretOut(Schema):
    webhook_secret = fields.String()


class WebhookTestOut(Schema):
    delivery_id = fields.String()


class MemberOut(UserOut):
    """A member as an administrator sees them: the `user` object, with its status, without
    what only the user's own session needs."""

    class Meta:
        exclude = ("organization", "permissions")

    is_active = fields.Boolean()


class MemberPageOut(Schema):
    members = fields.List(fields.Nested(MemberOut), attribute="items")
    next_cursor = fields.String(allow_none=True)


class MemberPatchIn(NotEmpty):
    roles = fields.List(Text(min_length=1, max_length=64), validate=validate.Length(max=50))
    is_active = StrictBoolean()


class PermissionOut(Schema):
    code = fields.String()
    description = fields.String()


class PermissionIn(Schema):
    """`flask permissions add`: an operator's own permission code."""

    code = PermissionCode(required=True)
    description = Text(min_length=1, max_length=255, required=True)


class PermissionListOut(Schema):
    permissions = fields.List(fields.Nested(PermissionOut))


class RoleOut(Schema):
    id = fields.String()
    name = fields.String()
    builtin = fields.Boolean(attribute="is_builtin")
    permissions = fields.List(fields.String(), attribute="permission_codes")
    created_at = fields.DateTime(format=TIME_FORMAT)


class RoleListOut(Schema):
    roles = fields.List(fields.Nested(RoleOut))


class RoleIn(Schema):
    name = Text(min_length=1, max_length=64, required=True)
    permissions = _codes(required=True)


class RolePatchIn(NotEmpty):
    name = Text(min_length=1, max_length=64)
    permissions = _codes()


class ApiKeyOut(Schema):
    id = fields.String()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String())
    created_by = fields.String(allow_none=True)
    acts_for = fields.String(
        allow_none=True,
        metadata={"description": "The member whose current permissions bound the key's."},
    )
    made_by_key = fields.String(
        allow_none=True,
        metadata={"description": "The key that made this one: it never outlives that key."},
    )
    created_at = fields.DateTime(format=TIME_FORMAT)
    last_used_at = fields.DateTime(format=TIME_FORMAT, allow_none=True)
    expires_at = fields.DateTime(format=TIME_FORMAT, allow_none=True)
    revoked_at = fields.DateTime(format=TIME_FORMAT, allow_none=True)
    status = fields.String(
        metadata={
            "description": "active, or why the key cannot act: revoked, expired, "
            "member_disabled (the member it acts for), member_left (no longer a member)."
        }
    )
    effective_scopes = fields.List(
        fields.String(),
        metadata={"description": "What the key may do now: its scopes its member still holds."},
    )


class NewApiKeyOut(ApiKeyOut):
    key = fields.String(metadata={"description": "The whole key; shown in this answer only."})


class ApiKeyListOut(Schema):
    api_keys = fields.List(fields.Nested(ApiKeyOut))


class ApiKeyIn(Schema):
    name = Text(min_length=1, max_length=100, required=True)
    scopes = _codes(required=True)
    expires_in_days = fields.Integer(
        load_default=None, strict=True, validate=validate.Range(min=1, max=3650)
    )


class AuditEventOut(Schema):
    id = fields.String()
    event = fields.String()
    actor = fields.String()
    user_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    data = fields.Dict()
    created_at = fields.DateTime(format=TIME_FORMAT)


class AuditEventPageOut(Schema):
    audit_events = fields.List(fields.Nested(AuditEventOut), attribute="items")
    next_cursor = fields.String(allow_none=True)
