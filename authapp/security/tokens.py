"""JWT access and refresh tokens (API.md "Tokens and sessions"; RFC 8725).

flask-jwt-extended encodes, decodes and checks signature, algorithm, `iss` and `aud`. Times are
ours: `iat`, `nbf` and `exp` come from authapp.clock, and `exp` is checked against it here,
so the testing clock can move expiry without sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import CSRFError, JWTExtendedException
from jwt import ExpiredSignatureError, PyJWTError

from authapp import clock
from authapp.errors import CsrfFailed, TokenError, render
from authapp.extensions import jwt
from authapp.models.base import is_id
from authapp.security import keys

REQUIRED_CLAIMS = ("sub", "sid", "type", "jti", "iat", "exp", "iss", "aud")


def _timestamps(now: datetime, ttl_seconds: int) -> dict[str, int]:
    issued = int(now.timestamp())
    return {"iat": issued, "nbf": issued, "exp": issued + ttl_seconds}


def access_token(*, user_id: str, session_id: str, organization_id: str, roles: list[str]) -> str:
    claims: dict[str, Any] = {"sid": session_id, "org": organization_id, "roles": roles}
    claims |= _timestamps(clock.now(), current_app.config["ACCESS_TOKEN_TTL"])
    return create_access_token(
        identity=user_id, additional_claims=claims, additional_headers=keys.signing_headers()
    )


def refresh_token(*, user_id: str, session_id: str, jti: str, expires_at: datetime) -> str:
    now = clock.now()
    claims: dict[str, Any] = {"sid": session_id, "jti": jti}
    claims |= _timestamps(now, int((expires_at - now).total_seconds()))
    return create_refresh_token(
        identity=user_id, additional_claims=claims, additional_headers=keys.signing_headers()
    )


def refresh_expiry(session_expires_at: datetime) -> datetime:
    """Sliding inactivity window, never past the session's absolute cap."""
    idle = clock.now() + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"])
    return min(idle, session_expires_at)


def decode_refresh(encoded: str, *, csrf: str | None = None) -> dict[str, Any]:
    """The claims of a valid refresh token: signature, key, iss, aud, type and expiry checked.
    A token taken from a cookie passes the request's X-CSRF-TOKEN as `csrf` (WB-2)."""
    return _decode(encoded, "refresh", csrf)


def decode_access(encoded: str) -> dict[str, Any]:
    """The claims of a valid access token (browser pages read it from the cookie)."""
    return _decode(encoded, "access", None)


def _decode(encoded: str, token_type: str, csrf: str | None) -> dict[str, Any]:
    try:
        claims = decode_token(encoded, csrf_value=csrf)
    except ExpiredSignatureError:
        raise TokenError(f"The {token_type} token has expired.", code="token_expired") from None
    except CSRFError:
        raise CsrfFailed() from None
    except (PyJWTError, JWTExtendedException):
        raise TokenError(f"The {token_type} token is invalid.") from None
    _verify_claims({}, claims)
    if claims["type"] != token_type:
        raise TokenError(
            f"A{'n' if token_type == 'access' else ''} {token_type} token is required."
        )
    return claims


def _verify_claims(_header: dict[str, Any], claims: dict[str, Any]) -> bool:
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise TokenError(f"The token lacks required claims: {', '.join(missing)}.")
    if not all(isinstance(claims[name], int) for name in ("iat", "exp")):
        raise TokenError("The token's times are malformed.")
    if not all(is_id(claims[name]) for name in ("sub", "sid", "jti")):
        raise TokenError("The token's identifiers are malformed.")
    leeway = current_app.config["JWT_LEEWAY_SECONDS"]
    if claims["exp"] + leeway <= clock.now().timestamp():
        raise TokenError("The token has expired.", code="token_expired")
    return True


def init_app(app: Flask) -> None:
    # After JWTManager.init_app: this replaces its handler, which calls a CSRF failure a 401.
    app.register_error_handler(CSRFError, lambda _e: render(403, CsrfFailed.code, CsrfFailed.text))
    jwt.token_verification_loader(_verify_claims)
    jwt.unauthorized_loader(lambda _reason: render(401, "missing_token", "A token is required."))
    jwt.invalid_token_loader(lambda _reason: render(401, "invalid_token", "The token is invalid."))
    jwt.expired_token_loader(lambda _h, _c: render(401, "token_expired", "The token has expired."))
    jwt.revoked_token_loader(lambda _h, _c: render(401, "token_revoked", "The token was revoked."))
    jwt.token_verification_failed_loader(
        lambda _h, _c: render(401, "invalid_token", "The token is invalid.")
    )
    jwt.user_lookup_error_loader(
        lambda _h, _c: render(401, "token_revoked", "The token was revoked.")
    )
    jwt.needs_fresh_token_loader(
        lambda _h, _c: render(401, "invalid_token", "A fresh token is required.")
    )
