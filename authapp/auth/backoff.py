"""Login back-off (RL-2, EN-4) with device cookies (docs/security.md "Login back-off and
device cookies"): after LOGIN_BACKOFF_AFTER consecutive failures a login waits 1 s, then 2 s,
4 s … up to LOGIN_BACKOFF_MAX before its next attempt is even checked.

Each attempt is held by one counter:
- `device`: the client presented a valid device cookie of the account (auth/devices.py); only
  this device's own failures count, so an attacker elsewhere never locks the owner out;
- `account`: any other client of an existing account, one count whether the email or the
  username was typed;
- `identifier`: a login no account has, counted per normalized identifier, so an unknown
  account is throttled exactly like a real one and the answers reveal nothing.

A success clears the counter that held it; a password reset clears the account's (and voids its
device cookies). The wait never grows past the cap, so nobody is locked out for good, and
forgot-password is unaffected. Rows hold only a SHA-256 of the key: the table names nobody.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from authapp.models import LoginThrottle, User
from authapp.platform import clock
from authapp.platform.errors import RateLimited
from authapp.platform.extensions import db
from authapp.security.digests import sha256_hex


@dataclass(frozen=True)
class Counter:
    scope: str  # "device", "account" or "identifier"
    key: str  # the row's login_key


@dataclass(frozen=True)
class Lock:
    """A failure that started or lengthened a wait (audited by the caller)."""

    scope: str
    failures: int
    wait_seconds: int


def counter(login: str, user: User | None, device_id: str | None) -> Counter:
    """The counter that holds an attempt with `login` (the account it names, if any, and the
    device cookie recognised for that account, if any)."""
    if user is None:
        return Counter("identifier", sha256_hex(login.strip().lower()))
    return of_account(user, device_id)


def of_account(user: User, device_id: str | None = None) -> Counter:
    if device_id is not None:
        return Counter("device", sha256_hex(f"device:{device_id}"))
    return Counter("account", sha256_hex(f"account:{user.id}"))


def check(held_by: Counter) -> None:
    """Raises RateLimited (with Retry-After) while the counter's back-off runs."""
    locked_until = db.session.scalar(
        sa.select(LoginThrottle.locked_until).where(LoginThrottle.login_key == held_by.key)
    )
    now = clock.now()
    if locked_until is not None and locked_until > now:
        wait = math.ceil((locked_until - now).total_seconds())
        raise RateLimited(
            "Too many failed logins; wait before trying again.",
            retry_after=wait,
            scope="login_backoff",
        )


def failed(held_by: Counter) -> Lock | None:
    """Count one more consecutive failure; the lock it sets, if any. No commit."""
    counted = db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.login_key == held_by.key)
        .values(failures=LoginThrottle.failures + 1, updated_at=clock.now())
        .returning(LoginThrottle.failures)
    ).scalar_one_or_none()
    if counted is None:
        counted = _first_failure(held_by.key)
    config = current_app.config
    beyond = counted - config["LOGIN_BACKOFF_AFTER"]
    if beyond < 0:
        return None
    wait = min(config["LOGIN_BACKOFF_MAX"], 2 ** min(beyond, 32))
    db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.login_key == held_by.key)
        .values(locked_until=clock.now() + timedelta(seconds=wait))
    )
    return Lock(held_by.scope, counted, wait)


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


def cleared(held_by: Counter) -> None:
    """A success: the count that held it starts again; no commit."""
    db.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.login_key == held_by.key))


def clear_account(user: User) -> None:
    """A password reset: the account's count starts again (its device cookies are void now);
    no commit."""
    cleared(of_account(user))
