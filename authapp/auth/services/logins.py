"""Logins: the password (with back-off and the second factor), then the session it starts. Each
public function owns its commit; a failure is audited and counted alike whether or not the
account exists (EN-4)."""

from __future__ import annotations

import dataclasses
from typing import NoReturn

import sqlalchemy as sa

from authapp.auth import backoff, devices, policy, second_factor
from authapp.auth.services import memberships, sessions
from authapp.auth.services.accounts import INVALID_CREDENTIALS, find_by_login
from authapp.delivery import events, outbox
from authapp.models import Session, User
from authapp.platform import clock
from authapp.platform.errors import (
    Forbidden,
    Unauthorized,
)
from authapp.platform.extensions import db
from authapp.security import audit, passwords
from authapp.security.passkeys import PasskeyRefused, Presented

PASSKEY_REFUSED = "The passkey was not accepted. Try again, or log in with your password."


def log_in(
    *,
    login: str,
    password: str,
    totp_code: str | None,
    client: sessions.Client,
    device_cookie: str | None = None,
    passkey: Presented | None = None,
) -> sessions.TokenPair:
    """Raises Unauthorized(invalid_credentials) alike for every wrong login (EN-1),
    Forbidden(account_disabled) only after a correct password (SE-4), RateLimited while the
    back-off that holds this attempt runs (RL-2: the device's, when `device_cookie` is one of
    this account's, else the account's or the unknown identifier's), MfaRequired or
    Unauthorized(invalid_mfa_code) for an account with MFA on (MF-2; a passkey may stand for
    the code), EmailUnverified only after every credential checked out. The pair carries a
    new device cookie."""
    passwords.refuse_if_full()
    user = find_by_login(login)
    device_id = devices.recognise(device_cookie, user)
    held_by = backoff.counter(login, user, device_id)
    backoff.check(held_by)
    # The database connection goes back to the pool for the ~250 ms of bcrypt: a login flood
    # must not hold the connections that every other request needs.
    db.session.commit()
    password_ok = passwords.verify_password(password, user.password_hash if user else None)
    if user is None or not password_ok:
        reason = "unknown_account" if user is None else "bad_password"
        record_failure(held_by, user, client, reason=reason)
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    if not user.is_active:
        record_failure(held_by, user, client, reason="account_disabled")
        raise Forbidden("This account is disabled.", code="account_disabled")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    if user.mfa_enabled:
        if totp_code is None and passkey is None:
            db.session.commit()  # a rehash stays; the password was right
            raise second_factor.MfaRequired(user.id)
        _check_second_factor(user, totp_code, passkey, client)
    return start_session(user, client, held_by, device_id)


def log_in_second_step(
    *,
    user_id: str,
    totp_code: str | None,
    client: sessions.Client,
    device_cookie: str | None = None,
    passkey: Presented | None = None,
    method: str = "password",
) -> sessions.TokenPair:
    """The login page's second step: the password was checked moments ago (MfaRequired), under
    the back-off, and the code (or passkey) is checked now, under the account's code budget.
    Raises Unauthorized as log_in does."""
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    if user.mfa_enabled:
        _check_second_factor(user, totp_code, passkey, client)
    device_id = devices.recognise(device_cookie, user)
    held_by = backoff.of_account(user, device_id)
    return start_session(user, client, held_by, device_id, method=method)


def _check_second_factor(
    user: User, code: str | None, passkey: Presented | None, client: sessions.Client
) -> None:
    if passkey is not None:
        try:
            second_factor.check_passkey(user, passkey)
        except PasskeyRefused as exc:
            refused_passkey(user, client, exc)
            db.session.commit()
            raise Unauthorized(PASSKEY_REFUSED, code="invalid_passkey") from None
        db.session.commit()  # the challenge stays spent, even if _refuse_unverified rolls back
        return
    method = second_factor.verify(user, code or "")
    if method is None:
        audit.about_account("login.failed", user, client, reason="invalid_mfa_code")
        db.session.commit()
        raise Unauthorized("The code is incorrect or was used already.", code="invalid_mfa_code")
    if method == "recovery_code":
        remaining = second_factor.unused_recovery_codes(user.id)
        audit.by_user("mfa.recovery_code_used", user, client, remaining=remaining)


def start_session(
    user: User,
    client: sessions.Client,
    held_by: backoff.Counter,
    device_id: str | None,
    *,
    method: str = "password",
    **details: str,
) -> sessions.TokenPair:
    """The login succeeded: the count that held it starts again (RL-2), and the client gets a
    device cookie of this account (only now: a correct password alone, before the second
    factor, earns none). Under REQUIRE_VERIFIED_EMAIL an unconfirmed account is refused here,
    after every credential checked out (docs/security.md "Verified-email logins")."""
    if not policy.may_have_session(user.email_verified):
        _refuse_unverified(user, client)
    backoff.cleared(held_by)
    user.last_login_at = clock.now()
    membership = memberships.landing(user)
    notice = _new_device_notice(user, client)
    session, refresh = sessions.start(user, membership, client)
    audit.by_user("login.succeeded", user, client, session_id=session.id, method=method, **details)
    db.session.commit()
    outbox.dispatch(events.ids(notice))
    pair = sessions.started(membership, session, refresh)
    return dataclasses.replace(pair, device_cookie=devices.issue(user, device_id))


def _refuse_unverified(user: User, client: sessions.Client) -> NoReturn:
    """No session, and nothing the attempt did is kept: a TOTP step or a recovery code it spent
    stays usable for the login after the link. Not a failure of the back-off: the password was
    right. Raises EmailUnverified."""
    user_id, organization_id = user.id, user.organization_id
    db.session.rollback()
    audit.record(
        "login.failed",
        organization_id=organization_id,
        user_id=user_id,
        actor="system",
        ip=client.ip,
        user_agent=client.user_agent,
        data={"reason": "email_unverified"},
    )
    db.session.commit()
    raise policy.EmailUnverified()


def _new_device_notice(user: User, client: sessions.Client) -> str | None:
    """A mail when an account that has logged in before does so from a device (User-Agent) it
    never used; one statement, before the new session exists."""
    earlier = sa.select(Session.id).where(Session.user_id == user.id)
    same_device = earlier.where(Session.user_agent.is_not_distinct_from(client.user_agent))
    seen_any, seen_device = db.session.execute(
        sa.select(sa.exists(earlier), sa.exists(same_device))
    ).one()
    if not seen_any or seen_device:
        return None
    context = {
        "when": clock.now().strftime("%Y-%m-%d %H:%M"),
        "device": client.user_agent or "unknown",
        "ip": client.ip,
        "sessions_url": events.link("/settings/sessions"),
    }
    return events.email(user, "new_device_login", context)


def refused_passkey(user: User, client: sessions.Client, exc: PasskeyRefused) -> None:
    """A passkey that did not prove the second factor, audited with why; no commit."""
    audit.about_account(
        "login.failed", user, client, reason="invalid_passkey", method="password", why=exc.reason
    )  # the login began with the password: `method` says how (docs/operations.md)
    suspect_clone(user, client, exc)


def suspect_clone(user: User | None, client: sessions.Client, exc: PasskeyRefused) -> None:
    """A signature counter that went back is also `passkey.clone_suspected`, for the owner and
    the operator to see (the passkey stays: only its owner can tell which copy is theirs)."""
    if exc.reason == "sign_count":
        audit.about_account("passkey.clone_suspected", user, client, passkey_id=exc.passkey_id)


def record_failure(
    held_by: backoff.Counter,
    user: User | None,
    client: sessions.Client,
    *,
    reason: str,
    method: str = "password",
    **details: str,
) -> None:
    lock = backoff.failed(held_by)  # counted alike whether or not an account exists (EN-4)
    audit.about_account("login.failed", user, client, reason=reason, method=method, **details)
    if lock is not None:
        audit.about_account(
            "login.locked",
            user,
            client,
            scope=lock.scope,
            failures=lock.failures,
            wait_seconds=lock.wait_seconds,
        )
    db.session.commit()
