"""Who may have an account and a session: the sign-up policy (SIGNUP_MODE) and verified-email
logins (REQUIRE_VERIFIED_EMAIL), docs/api.md "Sign-up policy and verified email". A building
block: it reads the settings and raises; the services decide when to ask, and commit."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app

from authapp.platform.errors import Forbidden

F = TypeVar("F", bound=Callable[..., Any])

CLOSED = "Sign-up is closed: an administrator creates accounts."
# `invite` refuses the open sign-up; an invitation's link (settings/services/invitations.py)
# creates the account instead, in that mode and in every other: an organization that invites
# someone chose to admit them, so `closed` admits invitations too.
INVITE_ONLY = "Sign-up needs an invitation: open the link in the invitation you were mailed."
UNVERIFIED = (
    "Confirm your email address first: use the link we mailed you. "
    "POST {prefix}/api/v1/auth/email/resend with your email address sends another."
)
CHECK_YOUR_MAIL = "Your account is created. Confirm your email address with the link we mailed you."


class SignupClosed(Forbidden):
    code = "signup_closed"


class EmailUnverified(Forbidden):
    """A correct login (password, and code with MFA on) of an account whose address is not
    confirmed while REQUIRE_VERIFIED_EMAIL is on: never answered before the password checks
    out, so it cannot tell a stranger which accounts are unconfirmed."""

    code = "email_unverified"

    def __init__(self) -> None:
        # The path under authapp's prefix, when it is mounted in a host app.
        super().__init__(UNVERIFIED.format(prefix=current_app.config["AUTHAPP_URL_PREFIX"]))


def signup_refusal() -> SignupClosed | None:
    """What sign-up answers under SIGNUP_MODE, or None when anyone may sign up. A value other
    than `open` refuses: the setting is parsed strictly at start, and a mode that slipped past
    (a test's override) must fail closed."""
    mode = current_app.config["SIGNUP_MODE"]
    if mode == "open":
        return None
    return SignupClosed(INVITE_ONLY if mode == "invite" else CLOSED)


def check_signup_open() -> None:
    """Raises SignupClosed unless SIGNUP_MODE lets anyone sign up."""
    refusal = signup_refusal()
    if refusal is not None:
        raise refusal


def signup_open(view: F) -> F:
    """The sign-up route's guard: a closed sign-up is 403 before its body is judged (a 422 on
    a form nobody may send would say nothing useful)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_signup_open()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def verified_email_required() -> bool:
    return bool(current_app.config["REQUIRE_VERIFIED_EMAIL"])


def may_have_session(email_verified: bool) -> bool:
    """Whether an account may start or keep a session under REQUIRE_VERIFIED_EMAIL."""
    return email_verified or not verified_email_required()
