"""Checking a passkey's answer against the database (docs/api.md "Passkeys"): the challenge it
signed is claimed once, the credential must be a registered one (of the expected account), the
signature must verify, and the signature counter must grow (WebAuthn §6.1.1). No commits: the
callers own them.

Like second_factor's codes, the claims are conditional statements whose row count decides, so
of twenty concurrent requests carrying one response exactly one gets through (F10)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from authapp.models import Passkey, PasskeyChallenge
from authapp.platform import clock
from authapp.platform.extensions import changed_rows, db
from authapp.security import passkeys
from authapp.security.passkeys import Assertion, PasskeyRefused, RelyingParty


def issue_challenge(
    purpose: str, *, user_id: str | None = None, session_id: str | None = None
) -> bytes:
    """A new challenge kept for WEBAUTHN_CHALLENGE_TTL; no commit."""
    challenge = passkeys.new_challenge()
    ttl = timedelta(seconds=current_app.config["WEBAUTHN_CHALLENGE_TTL"])
    db.session.add(
        PasskeyChallenge(
            challenge_hash=passkeys.challenge_key(challenge),
            purpose=purpose,
            user_id=user_id,
            session_id=session_id,
            expires_at=clock.now() + ttl,
        )
    )
    return challenge


def claim_login_challenge(challenge: bytes, *, user_id: str) -> bool:
    """Spend a live login challenge issued to nobody in particular or to `user_id`; False when
    it is unknown, spent, expired or someone else's."""
    mine = sa.or_(PasskeyChallenge.user_id.is_(None), PasskeyChallenge.user_id == user_id)
    return _claim(challenge, "login", mine)


def claim_registration_challenge(challenge: bytes, *, user_id: str, session_id: str | None) -> bool:
    """Spend a live registration challenge issued to this account in this session."""
    return _claim(
        challenge,
        "register",
        sa.and_(
            PasskeyChallenge.user_id == user_id,
            PasskeyChallenge.session_id.is_not_distinct_from(session_id),
        ),
    )


def _claim(challenge: bytes, purpose: str, issued_to: sa.ColumnElement[bool]) -> bool:
    return (
        changed_rows(
            sa.delete(PasskeyChallenge).where(
                PasskeyChallenge.challenge_hash == passkeys.challenge_key(challenge),
                PasskeyChallenge.purpose == purpose,
                PasskeyChallenge.expires_at > clock.now(),
                issued_to,
            )
        )
        == 1
    )


def check(party: RelyingParty, claimed: Assertion, *, user_id: str | None = None) -> Passkey:
    """The registered passkey that signed `claimed` for `party` (of `user_id`'s account when
    given), its use recorded. Raises PasskeyRefused: "unknown_passkey", "user_handle_mismatch",
    "challenge_not_live", a signature check's reason, or "sign_count" (the counter went back:
    a cloned authenticator may exist; the passkey is refused, and kept for its owner to judge)."""
    passkey = db.session.scalar(
        sa.select(Passkey).where(Passkey.credential_id == claimed.credential_id)
    )
    if passkey is None or (user_id is not None and passkey.user_id != user_id):
        raise PasskeyRefused("unknown_passkey")
    if (
        claimed.user_handle is not None
        and passkeys.user_id_of(claimed.user_handle) != passkey.user_id
    ):
        raise PasskeyRefused("user_handle_mismatch")
    if not claim_login_challenge(claimed.challenge, user_id=passkey.user_id):
        raise PasskeyRefused("challenge_not_live")
    count, backed_up = passkeys.verify_assertion(
        party,
        claimed.credential,
        challenge=claimed.challenge,
        public_key=passkey.public_key,
    )
    if passkeys.counter_went_back(passkey.sign_count, count) or not _record_use(passkey, count):
        raise PasskeyRefused("sign_count", passkey_id=passkey.id)
    passkey.backed_up = backed_up
    return passkey


def _record_use(passkey: Passkey, count: int) -> bool:
    """The new count and the time, unless a concurrent use already moved the count past it."""
    grown = Passkey.sign_count == 0 if count == 0 else Passkey.sign_count < count
    moved = changed_rows(
        sa.update(Passkey)
        .where(Passkey.id == passkey.id, grown)
        .values(sign_count=count, last_used_at=clock.now())
    )
    return moved == 1


def passkeys_of(user_id: str) -> list[Passkey]:
    return list(
        db.session.scalars(
            sa.select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at)
        )
    )


def credential_ids(user_id: str) -> list[str]:
    return list(
        db.session.scalars(sa.select(Passkey.credential_id).where(Passkey.user_id == user_id))
    )


def delete_all(user_id: str) -> int:
    """Every passkey of the account, and its live challenges (a reset or an operator's `flask
    mfa reset`); no commit."""
    db.session.execute(sa.delete(PasskeyChallenge).where(PasskeyChallenge.user_id == user_id))
    return changed_rows(sa.delete(Passkey).where(Passkey.user_id == user_id))
