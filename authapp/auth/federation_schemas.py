"""The JSON flow's bodies (auth/federation_routes.py, docs/federation.md "The JSON flow")."""

from __future__ import annotations

from marshmallow import Schema, fields

from authapp.auth.schemas import Text

SEALED_MAX = 8192  # a sealed flow is about a kilobyte; more is nobody's


class AuthorizeIn(Schema):
    redirect_uri = Text(
        required=True,
        max_length=2048,
        metadata={
            "description": "Where the provider sends the person back: one of "
            "FEDERATION_APP_REDIRECTS."
        },
    )


class AuthorizeOut(Schema):
    authorization_url = fields.String(metadata={"description": "Send the person here."})
    flow = fields.String(
        metadata={"description": "Keep it until the person comes back, then post it to /token."}
    )


class FederatedTokenIn(Schema):
    flow = Text(required=True, max_length=SEALED_MAX)
    code = Text(required=True, max_length=2048)
    state = Text(required=True, max_length=2048)


class FederatedMfaIn(Schema):
    mfa_ticket = Text(required=True, max_length=SEALED_MAX)
    totp_code = Text(required=True, max_length=64)
