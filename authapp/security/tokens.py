"""JWT access and refresh tokens (docs/api.md "Tokens and sessions"; RFC 8725).

PyJWT makes and reads the tokens; flask-jwt-extended sets their cookies (cookies.py) and
names the settings (JWT_*). Tokens carry the claims flask-jwt-extended gives them (`fresh`,
`iat`, `nbf`, `exp`, `jti`, `type`, `sub`, `csrf`, `iss`, `aud`) and ours (`sid`, `org`,
`roles`). Making them here rather than through its create_*_token saves the tenth of a
refresh's CPU that its configuration lookups took; tests/app/auth/test_token_claims.py checks that
both make the same claims and header. Reading is one decode per token, where
flask-jwt-extended parses each token three times (two unverified reads to pick the key). PyJWT
checks the signature, the algorithm, `iss` and `aud`; times are ours: `iat`, `nbf` and `exp`
come from platform/clock.py and are checked against it here, so the testing clock can move
expiry without sleeping.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt as pyjwt
from flask import Flask, current_app
from flask_jwt_extended.exceptions import CSRFError

from authapp.models.base import is_id
from authapp.platform import clock
from authapp.platform.errors import CsrfFailed, TokenError, render
from authapp.platform.extensions import jwt
from authapp.security import keys

REQUIRED_CLAIMS = ("sub", "sid", "type", "jti", "iat", "exp", "iss", "aud")
# Time claims are checked against authapp.platform.clock below, not PyJWT's wall clock.
PYJWT_OPTIONS: pyjwt.types.Options = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "require": list(REQUIRED_CLAIMS),
}
VERIFIED = "authapp.verified_tokens"
VERIFIED_SIZE = 10_000  # tokens per process: a few MB


def _timestamps(now: datetime, ttl_seconds: int) -> dict[str, int]:
    issued = int(now.timestamp())
    return {"iat": issued, "nbf": issued, "exp": issued + ttl_seconds}


def _encode(token_type: str, user_id: str, claims: dict[str, Any]) -> str:
    config = current_app.config
    payload: dict[str, Any] = {
        "fresh": False,
        "jti": str(uuid.uuid4()),
        "type": token_type,
        "sub": user_id,
        "csrf": str(uuid.uuid4()),  # the cookies' CSRF echo (WB-2), in every token
        "aud": config["JWT_AUDIENCE"],
        "iss": config["JWT_ISSUER"],
        **claims,
    }
    key, algorithm, headers = keys.signing()
    return pyjwt.encode(payload, key, algorithm, headers=headers)


def access_token(*, user_id: str, session_id: str, organization_id: str, roles: list[str]) -> str:
    claims: dict[str, Any] = {"sid": session_id, "org": organization_id, "roles": roles}
    claims |= _timestamps(clock.now(), current_app.config["ACCESS_TOKEN_TTL"])
    return _encode("access", user_id, claims)


def refresh_token(*, user_id: str, session_id: str, jti: str, expires_at: datetime) -> str:
    now = clock.now()
    claims: dict[str, Any] = {"sid": session_id, "jti": jti}
    claims |= _timestamps(now, int((expires_at - now).total_seconds()))
    return _encode("refresh", user_id, claims)


def refresh_expiry(session_expires_at: datetime) -> datetime:
    """Sliding inactivity window, never past the session's absolute cap."""
    idle = clock.now() + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"])
    return min(idle, session_expires_at)


def decode_refresh(encoded: str, *, csrf: str | None = None) -> Mapping[str, Any]:
    """The claims of a valid refresh token: signature, key, iss, aud, type and expiry checked.
    A token taken from a cookie passes the request's X-CSRF-TOKEN as `csrf` (WB-2). A refresh
    token is used once: its claims are not kept (they would only push access tokens out)."""
    return _checked(_verify(encoded), "refresh", csrf)


def decode_access(encoded: str, *, csrf: str | None = None) -> Mapping[str, Any]:
    """The claims of a valid access token (from the Authorization header or the cookie)."""
    return _checked(_verified(encoded), "access", csrf)


def _checked(claims: Mapping[str, Any], token_type: str, csrf: str | None) -> Mapping[str, Any]:
    _check_times(claims)
    if claims["type"] != token_type:
        raise TokenError(
            f"A{'n' if token_type == 'access' else ''} {token_type} token is required."
        )
    if csrf is not None and not _same(str(claims.get("csrf", "")), csrf):
        raise CsrfFailed()
    return claims


def _same(expected: str, presented: str) -> bool:
    """A constant-time comparison that any header value can take: compare_digest refuses str
    with non-ASCII characters (a TypeError, then a 500: IN-2), bytes it compares."""
    encoded = presented.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode(), encoded)


def _verified(encoded: str) -> Mapping[str, Any]:
    """The claims of a token whose signature, key, `iss`, `aud` and claim formats hold: what
    never changes for a given token string. A client sends its access token again and again
    for its lifetime, so each process verifies a token once and keeps its claims (a bounded
    map, emptied when full); times, type and CSRF echo are checked on every use."""
    cache: dict[str, Mapping[str, Any]] = current_app.extensions[VERIFIED]
    claims = cache.get(encoded)
    if claims is None:
        claims = _verify(encoded)
        if len(cache) >= VERIFIED_SIZE:
            cache.clear()
        cache[encoded] = claims
    return claims


def _verify(encoded: str) -> Mapping[str, Any]:
    config = current_app.config
    try:
        key, algorithms = keys.verifying_key(encoded)
        decoded = pyjwt.api_jwt.decode_complete(
            encoded,
            key,
            algorithms=algorithms,
            audience=config["JWT_AUDIENCE"],
            issuer=config["JWT_ISSUER"],
            options=PYJWT_OPTIONS,
        )
    except (pyjwt.PyJWTError, ValueError, TypeError):  # a lone surrogate: UnicodeEncodeError
        raise TokenError("The token is invalid.") from None
    keys.check_header(decoded["header"])
    claims: Mapping[str, Any] = decoded["payload"]
    if not all(isinstance(claims[name], int) for name in ("iat", "exp")):
        raise TokenError("The token's times are malformed.")
    if not isinstance(claims.get("nbf", 0), int):
        raise TokenError("The token's times are malformed.")
    if not all(is_id(claims[name]) for name in ("sub", "sid", "jti")):
        raise TokenError("The token's identifiers are malformed.")
    return MappingProxyType(claims)  # shared by every request that presents the token


def _check_times(claims: Mapping[str, Any]) -> None:
    """JW-5, by authapp.platform.clock: expired, or not valid yet, with the configured leeway."""
    leeway = current_app.config["JWT_LEEWAY_SECONDS"]
    now = clock.now().timestamp()
    if claims["exp"] + leeway <= now:
        raise TokenError("The token has expired.", code="token_expired")
    if claims.get("nbf", claims["iat"]) - leeway > now:
        raise TokenError("The token is not valid yet.")


def init_app(app: Flask) -> None:
    app.extensions[VERIFIED] = {}
    # After JWTManager.init_app: this replaces its handler, which calls a CSRF failure a 401.
    app.register_error_handler(CSRFError, lambda _e: render(403, CsrfFailed.code, CsrfFailed.text))
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
