"""Token introspection (RFC 7662) for other services (docs/protecting-services.md): is this
access token good now? Its signature and times, and, what a JWKS cannot tell, its session, user
and membership as they are now (one statement, the token check's own).

A caller learns only about its own organization: another organization's token is as inactive
as a forged one, so one tenant's key cannot probe another's users."""

from __future__ import annotations

from typing import Any

from authapp.auth.principals import Principal, live_account
from authapp.platform.errors import AppError
from authapp.security import tokens

INACTIVE = {"active": False}
CLAIMS = ("sub", "sid", "org", "iss", "aud", "exp", "iat", "jti")


def introspect(caller: Principal, token: str) -> dict[str, Any]:
    """RFC 7662 §2.2: `{"active": false}` for anything not a live access token of the caller's
    organization, else its claims and the permissions it carries now."""
    try:
        claims = tokens.decode_access(token)
        account = live_account(claims["sub"], claims["sid"], claims.get("org", ""))
    except (AppError, KeyError, TypeError, ValueError):
        return INACTIVE
    if account.organization_id != caller.organization_id:
        return INACTIVE
    found = {name: claims[name] for name in CLAIMS if name in claims}
    return {
        "active": True,
        "token_type": "access_token",
        **found,
        "permissions": sorted(account.permission_codes),
    }
