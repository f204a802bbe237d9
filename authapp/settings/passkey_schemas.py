"""Schemas of /api/v1/settings/passkeys (docs/api.md "Passkeys")."""

from __future__ import annotations

from marshmallow import Schema, fields

from authapp.auth.schemas import PasskeyFormIn, Password, Text
from authapp.platform.openapi import TIME_FORMAT


class PasskeyOut(Schema):
    id = fields.String()
    name = fields.String()
    created_at = fields.DateTime(format=TIME_FORMAT)
    last_used_at = fields.DateTime(format=TIME_FORMAT, allow_none=True)
    backed_up = fields.Boolean()  # a synced passkey (it survives the loss of one device)


class PasskeyEnvelopeOut(Schema):
    passkey = fields.Nested(PasskeyOut)


class PasskeyListOut(Schema):
    passkeys = fields.List(fields.Nested(PasskeyOut))


class PasskeyOptionsIn(Schema):
    password = Password(required=True)  # asked again, as for TOTP set-up


class PasskeyRegisterIn(Schema):
    credential = fields.Dict(required=True)  # navigator.credentials.create()'s answer, as JSON
    name = Text(max_length=100, load_default="")  # empty: "Passkey 1", "Passkey 2", ...


class PasskeyRegisterForm(PasskeyFormIn):
    """The security page's form: the answer as JSON text (passkeys.js puts it there)."""

    name = Text(max_length=100, load_default="")


class PasskeyRenameIn(Schema):
    name = Text(max_length=100, min_length=1, required=True)


class PasskeyRemoveIn(Schema):
    password = Password(load_default=None)  # needed for the account's last passkey
