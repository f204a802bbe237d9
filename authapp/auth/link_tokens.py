"""Single-use link tokens (password reset, email verification, email change): 256 random bits
sent by mail, stored only as SHA-256 (CS-2), spent once by a conditional UPDATE (RS-1, EV-1,
EC-1, F10)."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from authapp.delivery import events
from authapp.models import OneTimeToken, User
from authapp.platform import clock
from authapp.platform.errors import AppError
from authapp.platform.extensions import db
from authapp.security.digests import sha256_hex

# What `issue` hands out: 32 random bytes, URL-safe base64 without padding. Anything else names
# no token, and is refused before it is hashed or sent to the database (a lone surrogate cannot
# even be encoded: JW-8, IN-2).
TOKEN_SHAPE = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")


class InvalidLinkToken(AppError):
    """docs/api.md: an unknown, used or expired mailed token is `400 invalid_token`."""

    status, code = 400, "invalid_token"


INVALID = "This link is invalid, used or expired; ask for a new one."


def issue(user: User, purpose: str, *, new_email: str | None = None) -> str:
    """A new token (256 bits, CS-2) stored as its hash, with the address an email change moves
    the account to (kept in the row, so the link carries nothing but the token); no commit."""
    setting = "RESET_TOKEN_TTL" if purpose == "password_reset" else "VERIFY_TOKEN_TTL"
    ttl = current_app.config[setting]
    token = secrets.token_urlsafe(32)
    db.session.add(
        OneTimeToken(
            purpose=purpose,
            user_id=user.id,
            token_hash=sha256_hex(token),
            expires_at=clock.now() + timedelta(seconds=ttl),
            new_email=new_email,
        )
    )
    return token


def redeem(token: str, purpose: str) -> User:
    """Spend a token once: the conditional UPDATE lets one of N concurrent redemptions win
    (F10). Purpose-bound: a verify token never resets a password. No commit."""
    return redeem_with_email(token, purpose)[0]


def redeem_with_email(token: str, purpose: str) -> tuple[User, str | None]:
    """`redeem`, also answering the address the token was issued for (`issue`'s `new_email`)."""
    if not TOKEN_SHAPE.match(token):
        raise InvalidLinkToken(INVALID)
    now = clock.now()
    spent = db.session.execute(
        sa.update(OneTimeToken)
        .where(
            OneTimeToken.token_hash == sha256_hex(token),
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
            OneTimeToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(OneTimeToken.user_id, OneTimeToken.new_email)
    ).first()
    if spent is None:
        db.session.rollback()
        raise InvalidLinkToken(INVALID)
    user = db.session.get_one(User, spent.user_id)
    return user, spent.new_email


def void(user_id: str, *purposes: str) -> None:
    """Every unused token of these purposes for the account stops working now (RS-1: a reset,
    or a password change, ends the other reset links still in mailboxes; EC-1: a new email
    change, or a completed one, ends the older links). No commit."""
    db.session.execute(
        sa.update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose.in_(purposes),
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=clock.now())
    )


def send_verification(user: User) -> str:
    """The verify mail's outbox row (sign-up, resend); no commit."""
    token = issue(user, "email_verify")
    return events.email(
        user, "verify_email", secrets={"link": events.link(f"/verify-email?token={token}")}
    )
