"""/api/v1/auth/federation: signing in with an identity provider from a single-page or native
client (docs/federation.md "The JSON flow"). The client keeps the flow itself: `authorize`
answers the provider's URL and the flow sealed with DATA_ENCRYPTION_KEY (its PKCE verifier and
nonce unreadable to the client); the provider sends the person back to the client's own
redirect URI (one of FEDERATION_APP_REDIRECTS); the client posts the flow, the code and the
state to `token`. A flow is bound to its client by where it is kept, as the pages' is by the
session cookie: a code injected into another client's redirect does not carry that client's
state."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import InvalidToken
from flask import Response, current_app, jsonify
from flask_smorest import Blueprint

from authapp.auth import cookies, federation_flow, limits, policy
from authapp.auth.federation_schemas import (
    AuthorizeIn,
    AuthorizeOut,
    FederatedMfaIn,
    FederatedTokenIn,
)
from authapp.auth.schemas import AcceptedOut, TokenPairOut
from authapp.auth.second_factor import MfaRequired
from authapp.auth.services import federated_logins, logins, sessions
from authapp.platform import clock
from authapp.platform.errors import Unauthorized, ValidationFailed
from authapp.platform.network import request_client
from authapp.security import secretbox

bp = Blueprint(
    "federation",
    __name__,
    url_prefix="/api/v1/auth/federation",
    description="Sign in with an identity provider",
)
EXPIRED_TICKET = "Log in again: the wait for your second factor ran out."


@bp.route("/<name>/authorize", methods=["POST"])
@limits.login
@bp.arguments(AuthorizeIn)
@bp.response(200, AuthorizeOut)
def authorize(body: dict[str, str], name: str) -> dict[str, str]:
    """Where to send the person, and the flow to keep until they come back."""
    provider = federation_flow.provider_named(name)
    if body["redirect_uri"] not in current_app.config["FEDERATION_APP_REDIRECTS"]:
        message = "This redirect URI is not one of FEDERATION_APP_REDIRECTS."
        raise ValidationFailed({"redirect_uri": [message]}, message)
    flow = federation_flow.new_flow(provider, body["redirect_uri"])
    url = federation_flow.authorization_url(provider, flow)
    return {"authorization_url": url, "flow": secretbox.seal(json.dumps(flow))}


@bp.route("/<name>/token", methods=["POST"])
@limits.login
@bp.arguments(FederatedTokenIn)
@bp.response(200, TokenPairOut)
@bp.alt_response(202, schema=AcceptedOut, success=True, description=policy.CHECK_YOUR_MAIL)
def token(body: dict[str, str], name: str) -> sessions.TokenPair | tuple[Response, int]:
    """The code the provider sent back, for a session. With MFA on, `401 mfa_required` carries
    an `mfa_ticket` for POST /auth/federation/mfa."""
    provider = federation_flow.provider_named(name)
    flow = _opened(body["flow"])
    profile = federation_flow.verified_profile(
        provider, flow, state=body["state"], code=body["code"]
    )
    outcome = federation_flow.sign_in(provider, profile)
    if isinstance(outcome, federated_logins.SecondFactorNeeded):
        raise _mfa_required(outcome.user_id)
    if outcome is None:
        return jsonify({"message": policy.CHECK_YOUR_MAIL}), 202
    cookies.remember_device(outcome)
    return outcome


@bp.route("/mfa", methods=["POST"])
@limits.login
@bp.arguments(FederatedMfaIn)
@bp.response(200, TokenPairOut)
def second_factor(body: dict[str, str]) -> sessions.TokenPair:
    """The second step after a provider's sign-in: the ticket and the code."""
    ticket = _opened(body["mfa_ticket"])
    if ticket.get("purpose") != "mfa" or ticket.get("until", 0) < clock.now().timestamp():
        raise Unauthorized(EXPIRED_TICKET, code="mfa_login_expired")
    pair = logins.log_in_second_step(
        user_id=str(ticket["user_id"]),
        totp_code=body["totp_code"],
        client=request_client(),
        device_cookie=cookies.device_cookie(),
        method=federated_logins.METHOD,
    )
    cookies.remember_device(pair)
    return pair


def _opened(sealed: str) -> dict[str, Any]:
    """A flow or a ticket this service sealed; anything else is nobody's."""
    try:
        opened = json.loads(secretbox.open_sealed(sealed))
    except (InvalidToken, ValueError, UnicodeError):
        opened = None
    if not isinstance(opened, dict):
        raise Unauthorized(
            "This sign-in is not one we started: start again.", code="federation_refused"
        )
    return opened


def _mfa_required(user_id: str) -> MfaRequired:
    """The contract's `401 mfa_required`, with the sealed ticket for the second step beside
    the envelope (docs/federation.md "The JSON flow")."""
    until = clock.now().timestamp() + current_app.config["MFA_LOGIN_TTL"]
    ticket = {"purpose": "mfa", "user_id": user_id, "until": until}
    return MfaRequired(user_id, mfa_ticket=secretbox.seal(json.dumps(ticket)))
