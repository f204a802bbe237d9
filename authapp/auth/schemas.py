"""Request and response schemas of /api/v1/auth; the OpenAPI document is built from them."""

from __future__ import annotations

import json
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from authapp.platform.openapi import TIME_FORMAT
from authapp.security import passwords

USERNAME = re.compile(r"\A[A-Za-z0-9_.-]{3,32}\Z")
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _printable(value: str) -> None:
    if CONTROL_CHARS.search(value):
        raise ValidationError("Must not contain control characters.")


class Text(fields.String):
    """A single-line string, trimmed, with no control characters (IN-2)."""

    def __init__(self, *, max_length: int, min_length: int = 0, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(min=min_length, max=max_length), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        _printable(text)
        return text


class Email(Text):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=254, min_length=3, **kwargs)
        self.validators.append(validate.Email(error="Must be a valid email address."))


class Username(Text):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=32, allow_none=True, **kwargs)
        self.validators.append(
            validate.Regexp(
                USERNAME,
                error="Must be 3 to 32 letters, digits, dots, dashes or underscores.",
            )
        )


class Password(fields.String):
    """Taken exactly as sent: no trimming; the policy in security/passwords.py judges it."""

    def __init__(self, **kwargs: Any) -> None:
        # Far above the policy's 256 code points; only stops absurd input before hashing.
        super().__init__(validate=validate.Length(min=1, max=4096), **kwargs)


class NewPassword(Password):
    """A password being set (sign-up, change, reset). The policy judges it as a Password; the
    OpenAPI document shows the policy's bounds (its minimum comes from the configuration)."""

    sets_password = True  # platform/openapi.py gives it PASSWORD_MIN_LENGTH as minLength

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"maxLength": passwords.MAX_LENGTH}, **kwargs)


class SignupIn(Schema):
    email = Email(required=True)
    password = NewPassword(required=True)
    full_name = Text(max_length=200, load_default="")
    username = Username(load_default=None)
    organization_name = Text(max_length=100, min_length=1, load_default=None)

    @validates_schema(skip_on_field_errors=False)
    def _password_policy(self, data: dict[str, Any], **_kwargs: Any) -> None:
        """PW-3 in the same 422 as the other fields' errors, so a form shows them all at once.
        The reasons are the service's own (accounts.check_password_policy); an accepted password
        reaches the service marked, and is not judged again."""
        if "password" not in data:
            return
        words = {
            "email": data.get("email", ""),
            "username": data.get("username"),
            "full_name": data.get("full_name"),
        }
        reasons, data["password"] = passwords.judge(data["password"], **words)
        if reasons:
            raise ValidationError({"password": reasons})


class LoginIn(Schema):
    login = Text(max_length=254, min_length=1, required=True)
    password = Password(required=True)
    totp_code = Text(max_length=64, load_default=None)
    # MFA with a passkey instead of a code: navigator.credentials.get()'s answer, as JSON, to
    # options from POST /auth/passkeys/options (docs/api.md "Passkeys").
    passkey = fields.Dict(load_default=None)

    @validates_schema
    def _one_second_factor(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("totp_code") is not None and data.get("passkey") is not None:
            raise ValidationError("Send a code or a passkey, not both.", "passkey")


class JsonObject(fields.Field):
    """A form field holding a JSON object (a passkey's answer, put there by the page's script):
    at most 16 KiB, and an object, or a validation error, never a 500."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or len(value) > 16_384:
            raise ValidationError("Must be a JSON object.")
        try:
            loaded = json.loads(value)
        except (ValueError, RecursionError):
            raise ValidationError("Must be a JSON object.") from None
        if not isinstance(loaded, dict):
            raise ValidationError("Must be a JSON object.")
        return loaded


class PasskeyFormIn(Schema):
    """The pages' passkey forms: the answer of navigator.credentials.get() or create()."""

    credential = JsonObject(required=True)


class PasskeyLoginIn(Schema):
    credential = fields.Dict(required=True)  # navigator.credentials.get()'s answer, as JSON


class PasskeyOptionsOut(Schema):
    # WebAuthn's options in their JSON form: PublicKeyCredential.parse*OptionsFromJSON reads them.
    publicKey = fields.Dict()  # noqa: N815  (the name browsers use)


class LoginCodeIn(Schema):
    """The login page's second step."""

    totp_code = Text(max_length=64, min_length=1, required=True)


class RefreshIn(Schema):
    # Absent: the refresh cookie is used instead (browsers).
    refresh_token = fields.String(load_default=None, validate=validate.Length(min=1, max=4096))


class LogoutIn(Schema):
    refresh_token = fields.String(load_default=None, validate=validate.Length(min=1, max=4096))


class ForgotPasswordIn(Schema):
    email = Email(required=True)


class ResendIn(Schema):
    """Without `email`: the logged-in caller's address. With it: no login, the same answer
    whether or not an account has the address (an account that REQUIRE_VERIFIED_EMAIL keeps
    from logging in asks this way)."""

    email = Email(load_default=None)


class LinkTokenIn(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=256))


class ResetPasswordIn(LinkTokenIn):
    new_password = NewPassword(required=True)


class AcceptedOut(Schema):
    message = fields.String()


class OrganizationRefOut(Schema):
    id = fields.String()
    name = fields.String()


class UserOut(Schema):
    """The `user` of /me, login, sign-up and refresh answers. These fields describe it in the
    OpenAPI document; `dump` builds it directly (tests/app/auth/test_me.py holds the two equal)."""

    id = fields.String()
    email = fields.String()
    username = fields.String(allow_none=True)
    full_name = fields.String()
    email_verified = fields.Boolean()
    mfa_enabled = fields.Boolean()
    organization = fields.Nested(OrganizationRefOut)
    roles = fields.List(fields.String(), attribute="role_names")
    permissions = fields.List(fields.String(), attribute="permission_codes")
    created_at = fields.DateTime(format=TIME_FORMAT)
    last_login_at = fields.DateTime(format=TIME_FORMAT, allow_none=True)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """The most frequent answer of all, without marshmallow's field-by-field walk, which
        was a tenth of an authenticated request's CPU (bench/README.md "Cost probe")."""
        if type(self) is not UserOut or self.only or self.exclude:
            return super().dump(obj, many=many)  # MemberOut and other shapes: the fields
        if many if many is not None else self.many:
            return [self.dump(item, many=False) for item in obj]
        last_login_at = obj.last_login_at
        return {
            "id": str(obj.id),
            "email": str(obj.email),
            "username": None if obj.username is None else str(obj.username),
            "full_name": str(obj.full_name),
            "email_verified": bool(obj.email_verified),
            "mfa_enabled": bool(obj.mfa_enabled),
            "organization": {"id": str(obj.organization.id), "name": str(obj.organization.name)},
            "roles": [str(name) for name in obj.role_names],
            "permissions": [str(code) for code in obj.permission_codes],
            "created_at": obj.created_at.strftime(TIME_FORMAT),
            "last_login_at": None if last_login_at is None else last_login_at.strftime(TIME_FORMAT),
        }


class UserEnvelopeOut(Schema):
    user = fields.Nested(UserOut)


class TokenPairOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)
