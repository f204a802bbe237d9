"""Pre-account hijacking: whoever signs up with someone else's address must not prepare the
account for the day its owner takes it back by a password reset. Until the address is
confirmed, a user cannot turn on MFA, create API keys or administer the organization
(docs/security.md "Unconfirmed accounts"); a reset of such an account also ends what was set up."""

from __future__ import annotations

from authapp.auth.principals import Principal
from authapp.platform.errors import Forbidden

CODE = "email_not_verified"


def require_verified_email(principal: Principal) -> None:
    """Raises Forbidden(email_not_verified) for a user whose address is unconfirmed. API keys
    act for the organization (and only a confirmed user can create one)."""
    if principal.user is not None and not principal.user.email_verified:
        raise Forbidden(
            "Confirm your email address first: use the link we mailed you, or ask for a new one.",
            code=CODE,
        )
