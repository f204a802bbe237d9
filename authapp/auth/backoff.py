"""Per-login back-off (RL-2, EN-4): after LOGIN_BACKOFF_AFTER consecutive failures a login
waits 1 s, then 2 s, 4 s … up to LOGIN_BACKOFF_MAX before its next attempt is even checked.

Counted per login identifier (the normalized email or username), whether an account has it or
not, so the answers reveal nothing; a success or a password reset clears it, and the wait never
grows past the cap, so the real owner is never locked out for good. Forgot-password is
unaffected.
"""

from __future__ import annotations

import math
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from authapp import clock
from authapp.errors import RateLimited
from authapp.extensions import db
from authapp.models import LoginThrottle, User
from authapp.security.digests import sha256_hex


def login_key(login: str) -> str:
    return sha256_hex(login.strip().lower())


def check(login: str) -> None:
    """Raises RateLimited (with Retry-After) while the login's back-off runs."""
    locked_until = db.session.scalar(
        sa.select(LoginThrottle.locked_until).where(LoginThrottle.login_key == login_key(login))
    )
    now = clock.now()
    if locked_until is not None and locked_until > now:
        wait = math.ceil((locked_until - now).total_seconds())
        raise RateLimited(
            "Too many failed logins; wait before trying again.",
            retry_after=wait,
            scope="login_backoff",
        )


def failed(login: str) -> None:
    """Count one more consecutive failure; no commit."""
    key = login_key(login)
    counted = db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.login_key == key)
        .values(failures=LoginThrottle.failures + 1, updated_at=clock.now())
        .returning(LoginThrottle.failures)
    ).scalar_one_or_none()
    if counted is None:
        counted = _first_failure(key)
    config = current_app.config
    beyond = counted - config["LOGIN_BACKOFF_AFTER"]
    if beyond >= 0:
        wait = min(config["LOGIN_BACKOFF_MAX"], 2 ** min(beyond, 32))
        db.session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.login_key == key)
            .values(locked_until=clock.now() + timedelta(seconds=wait))
        )


def _first_failure(key: str) -> int:
    try:
        with db.session.begin_nested():  # a concurrent first failure may insert it first
            db.session.add(LoginThrottle(login_key=key, failures=1, updated_at=clock.now()))
    except IntegrityError:
        return int(
            db.session.execute(
                sa.update(LoginThrottle)
                .where(LoginThrottle.login_key == key)
                .values(failures=LoginThrottle.failures + 1)
                .returning(LoginThrottle.failures)
            ).scalar_one()
        )
    return 1


def cleared(*logins: str | None) -> None:
    """A success or a password reset: the count starts again; no commit."""
    keys = [login_key(login) for login in logins if login]
    db.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.login_key.in_(keys)))


def clear_account(user: User) -> None:
    """Every identifier of the account (its email and its username)."""
    cleared(user.email, user.username)
