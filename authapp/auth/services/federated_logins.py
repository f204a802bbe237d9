"""Signing in through an identity provider (docs/federation.md "Accounts"), once the provider's
answer checked out (delivery/identity_providers.py): the profile is plain values.

- An identity already linked logs its account in (and asks for the TOTP code when MFA is on:
  the provider's own second factor is not ours to vouch for).
- An unknown identity whose address belongs to an account is refused, never linked by the
  address alone: whoever controls a mailbox at some provider would otherwise own the account.
  The owner links it after logging in (settings), which proves control of the account.
- Otherwise it signs up, as SIGNUP_MODE allows: an account without a password, its address
  confirmed when the provider vouched for it, mailed a link when not.

Each public function owns its commit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from authapp.auth import backoff, devices, policy
from authapp.auth.schemas import CONTROL_CHARS
from authapp.auth.services import accounts, logins, memberships, sessions
from authapp.models import Identity, User
from authapp.platform import clock
from authapp.platform.errors import Conflict, Forbidden, ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit, passwords

METHOD = "federated"
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}")
NOT_LINKED = (
    "An account with this email address already exists. Log in to it, then connect "
    "{provider} on the security page."
)


@dataclass(frozen=True)
class SecondFactorNeeded:
    """The identity's account has MFA on: its code (or a passkey) comes next."""

    user_id: str


Outcome = sessions.TokenPair | SecondFactorNeeded | None


def sign_in(
    provider: str,
    display_name: str,
    profile: dict[str, Any],
    *,
    client: sessions.Client,
    device_cookie: str | None = None,
) -> Outcome:
    """A session for the provider's person; None when REQUIRE_VERIFIED_EMAIL holds a new
    account's session back. Raises Conflict(identity_not_linked), SignupClosed,
    ValidationFailed (no usable address), Forbidden(account_disabled), EmailUnverified."""
    identity = identity_of(provider, identity_subject(profile))
    if identity is None:
        return _sign_up(provider, display_name, profile, client)
    describe(identity, profile)
    user = db.session.get_one(User, identity.user_id)
    device_id = devices.recognise(device_cookie, user)
    held_by = backoff.of_account(user, device_id)
    if not user.is_active:
        logins.record_failure(
            held_by, user, client, reason="account_disabled", method=METHOD, provider=provider
        )
        db.session.commit()
        raise Forbidden("This account is disabled.", code="account_disabled")
    if user.mfa_enabled:
        db.session.commit()
        return SecondFactorNeeded(user.id)
    return logins.start_session(user, client, held_by, device_id, method=METHOD, provider=provider)


def identity_of(provider: str, subject: str) -> Identity | None:
    """The identity row of the provider's subject, if an account has it."""
    return db.session.scalar(
        sa.select(Identity).where(Identity.provider == provider, Identity.subject == subject)
    )


def record_refusal(provider: str, why: str, client: sessions.Client) -> None:
    """A sign-in the provider's answer (or its absence) did not prove, for the audit trail."""
    audit.about_account(
        "login.failed",
        None,
        client,
        reason="federation_refused",
        method=METHOD,
        provider=provider,
        why=why,
    )
    db.session.commit()


def _sign_up(
    provider: str, display_name: str, profile: dict[str, Any], client: sessions.Client
) -> sessions.TokenPair | None:
    email, verified = vouched_address(profile)
    taken = sa.select(User.id).where(User.email_normalized == accounts.normalize_email(email))
    if email and db.session.scalar(taken) is not None:
        raise Conflict(NOT_LINKED.format(provider=display_name), code="identity_not_linked")
    policy.check_signup_open()
    if not email:
        raise ValidationFailed(
            {"email": [f"{display_name} did not share an email address."]},
            f"{display_name} did not share an email address: sign up with one instead.",
        )
    user = User(
        email=email,
        email_normalized=accounts.normalize_email(email),
        full_name=printable(profile.get("name"), 200),
        password_hash=passwords.unusable_hash(),
        has_password=False,
        email_verified_at=clock.now() if verified else None,
    )
    add_identity(user, provider, profile)
    return accounts.open_account(
        user,
        accounts.default_organization(),
        memberships.builtin_role("member"),
        client,
        mail_verification=not verified,
        new_organization=False,
        provider=provider,
    )


def add_identity(
    user: User, provider: str, profile: dict[str, Any], *, used: bool = True
) -> Identity:
    """The provider's identity of `user` (a new account's, or one being linked), as the
    provider describes it now; added to the session."""
    identity = Identity(user=user, provider=provider, subject=identity_subject(profile))
    describe(identity, profile, used=used)
    db.session.add(identity)
    return identity


def describe(identity: Identity, profile: dict[str, Any], *, used: bool = True) -> None:
    """The address and its confirmation as the provider gives them now; `used`: a sign-in."""
    identity.email, identity.email_verified = vouched_address(profile)
    if used:
        identity.last_used_at = clock.now()


def vouched_address(profile: dict[str, Any]) -> tuple[str, bool]:
    """The provider's address (empty when it gave none usable), and whether it vouches for it:
    only the boolean True counts (delivery/identity_providers.py reads a provider's string)."""
    email = provider_email(profile)
    return email, bool(email) and profile.get("email_verified") is True


def identity_subject(profile: dict[str, Any]) -> str:
    """OpenID Connect Core §2: at most 255 ASCII characters; anything else names nobody."""
    subject = profile.get("subject")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255 or not subject.isascii():
        raise ValidationFailed({"subject": ["The provider named nobody."]})
    if CONTROL_CHARS.search(subject):
        raise ValidationFailed({"subject": ["The provider named nobody."]})
    return subject


def provider_email(profile: dict[str, Any]) -> str:
    """The provider's address when it is one: a hostile or broken one counts as none."""
    email = profile.get("email")
    if not isinstance(email, str) or len(email) > 254 or CONTROL_CHARS.search(email):
        return ""
    return email if EMAIL.fullmatch(email) else ""


def printable(value: Any, longest: int) -> str:
    return CONTROL_CHARS.sub("", value)[:longest].strip() if isinstance(value, str) else ""
