"""Linking identities at identity providers to an account, and unlinking them (docs/federation.md
"Linking"). A link is made only by the account's owner, logged in (which proves control of the
account), and only for an identity whose provider vouches for its address. The owner is mailed
either way. An account always keeps a way to log in: its last one cannot be unlinked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from authapp.auth.principals import Principal
from authapp.auth.services import reauthentication, security_mail, sessions
from authapp.auth.services.federated_logins import (
    add_identity,
    identity_of,
    identity_subject,
    vouched_address,
)
from authapp.models import Identity, Passkey, User
from authapp.platform.errors import Conflict, NotFound
from authapp.platform.extensions import db
from authapp.security import audit


def identities_of(user_id: str) -> list[Identity]:
    query = sa.select(Identity).where(Identity.user_id == user_id).order_by(Identity.created_at)
    return list(db.session.scalars(query))


def check_owner(principal: Principal, user: User, password: str) -> None:
    """Before leaving for the provider: the password again, as for a passkey (a stolen session
    must not plant a way in that outlives a password change). An account without a password
    has nothing to ask; its session is the proof. Raises ValidationFailed."""
    if user.has_password:
        reauthentication.require_password(
            principal, user, password, failed_event="identity.link_failed"
        )


def link(
    user_id: str,
    provider: str,
    display_name: str,
    profile: dict[str, Any],
    client: sessions.Client,
) -> str:
    """Link the provider's identity to the account; what to tell the owner. Raises
    Conflict(provider_email_unverified, identity_taken)."""
    email, vouched = vouched_address(profile)
    if not vouched:
        raise Conflict(
            f"{display_name} has not confirmed the email address of that account: confirm it "
            f"there, then connect it again.",
            code="provider_email_unverified",
        )
    found = identity_of(provider, identity_subject(profile))
    if found is not None and found.user_id != user_id:
        raise Conflict(
            f"That {display_name} account is connected to another account.",
            code="identity_taken",
        )
    if found is not None:
        return f"That {display_name} account was already connected."
    user = _locked(user_id)
    add_identity(user, provider, profile, used=False)
    audit.by_user("identity.linked", user, client, provider=provider)
    security_mail.tell_owner(
        user, "identities_changed", added=True, provider=display_name, address=email
    )
    return f"{display_name} connected: you can log in with it now."


def display_name(provider: str) -> str:
    """The provider's name for people; an identity of a provider no longer configured keeps
    its configured name."""
    configured = current_app.config["FEDERATION_PROVIDERS"].get(provider)
    return configured.display_name if configured else provider


def unlink(principal: Principal, user: User, identity_id: str) -> str:
    """Unlink one of the account's identities; its provider's display name. Raises NotFound
    (not this account's), Conflict(last_way_to_log_in)."""
    user = _locked(user.id)
    identity = db.session.scalar(
        sa.select(Identity).where(Identity.id == identity_id, Identity.user_id == user.id)
    )
    if identity is None:
        raise NotFound("No such connected account.")
    passkeys = db.session.scalar(
        sa.select(sa.func.count()).select_from(Passkey).where(Passkey.user_id == user.id)
    )
    others = len(identities_of(user.id)) - 1
    if not (user.has_password or passkeys or others):
        raise Conflict(
            "This is the last way to log in to your account: set a password (Forgot your "
            "password?) or add a passkey first.",
            code="last_way_to_log_in",
        )
    db.session.delete(identity)
    audit.by_principal("identity.unlinked", principal, provider=identity.provider)
    shown = display_name(identity.provider)
    security_mail.tell_owner(
        user, "identities_changed", added=False, provider=shown, address=identity.email
    )
    return shown


def _locked(user_id: str) -> User:
    """The account's row, locked: two unlinks at once cannot both see the other's identity."""
    return db.session.scalars(sa.select(User).where(User.id == user_id).with_for_update()).one()
