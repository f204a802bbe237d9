"""/api/v1/auth/passkeys: logging in with a passkey instead of a password (docs/api.md
"Passkeys"). Registering one is a setting (settings/passkey_routes.py)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from authapp.auth import cookies, limits, relying_party
from authapp.auth.schemas import PasskeyLoginIn, PasskeyOptionsOut, TokenPairOut
from authapp.auth.services import passkey_logins, sessions
from authapp.platform.network import request_client
from authapp.security.passkeys import Presented

bp = Blueprint(
    "passkeys",
    __name__,
    url_prefix="/api/v1/auth/passkeys",
    description="Logging in with a passkey",
)


@bp.route("/options", methods=["POST"])
@limits.passkey_options
@bp.response(200, PasskeyOptionsOut)
def options() -> dict[str, Any]:
    """Request options with a new single-use challenge (WEBAUTHN_CHALLENGE_TTL, 5 minutes),
    for a passwordless login or for a passkey as the second factor of POST /auth/login."""
    return {"publicKey": passkey_logins.options(relying_party.current())}


@bp.route("/login", methods=["POST"])
@limits.login
@bp.arguments(PasskeyLoginIn)
@bp.response(200, TokenPairOut)
def login(body: dict[str, Any]) -> sessions.TokenPair:
    """Log in with the answer of navigator.credentials.get() to those options: the same session
    and token pair as a password login, with no TOTP step (a verified passkey is two factors)."""
    presented = Presented(relying_party.current(), body["credential"])
    pair = passkey_logins.log_in(
        presented, client=request_client(), device_cookie=cookies.device_cookie()
    )
    cookies.remember_device(pair)
    return pair
