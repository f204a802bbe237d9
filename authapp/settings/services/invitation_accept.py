"""Accepting an invitation (docs/api.md "Invitations"): a logged-in person whose confirmed
address is the invited one joins the organization; a newcomer's account is created from the
link instead, in every SIGNUP_MODE (the organization chose to admit them).

The link is spent once by a conditional UPDATE (pending, not expired), so of two concurrent
accepts exactly one joins; the other, like an unknown, used, revoked, expired or malformed
token, is `400 invalid_token` as for every mailed link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authapp.auth.link_tokens import INVALID, TOKEN_SHAPE, InvalidLinkToken
from authapp.auth.policy import EmailUnverified
from authapp.auth.services import accounts, federated_logins, memberships, sessions
from authapp.delivery import events, outbox
from authapp.models import Invitation, Membership, Organization, Role, User
from authapp.platform import clock
from authapp.platform.errors import Conflict, Forbidden, constraint_name
from authapp.platform.extensions import db
from authapp.platform.network import Client
from authapp.security import audit, passwords
from authapp.security.digests import sha256_hex
from authapp.settings.services.invitations import PENDING

ALREADY_MEMBER = "You are a member of this organization already."
LOGIN_REQUIRED = "An account with this address exists: log in, then accept the invitation."
IDENTITY_HAS_ACCOUNT = (
    "That account at the provider already has an account here: log in with it, then open the "
    "invitation link again."
)
MISMATCH = "This invitation is for another email address than your account's."


@dataclass(frozen=True)
class OrganizationRef:
    id: str
    name: str


@dataclass(frozen=True)
class Joined:
    """What `accept_as_member` answers: the organization joined and the roles held there."""

    organization: OrganizationRef
    role_names: list[str]


@dataclass(frozen=True)
class Preview:
    """What the accept page shows before anything is spent."""

    email: str
    organization: OrganizationRef


def preview(token: str) -> Preview:
    """The pending invitation a link names. Raises InvalidLinkToken."""
    invitation = _pending(token)
    organization = db.session.get_one(Organization, invitation.organization_id)
    return Preview(invitation.email, OrganizationRef(organization.id, organization.name))


def accept_as_member(user: User, token: str, client: Client) -> Joined:
    """The logged-in `user` joins with the invited roles. Raises InvalidLinkToken,
    Forbidden(invitation_email_mismatch, email_unverified), Conflict(already_member: the
    invitation stays pending)."""
    invitation = _pending(token)
    if user.email_normalized != invitation.email_normalized:
        raise Forbidden(MISMATCH, code="invitation_email_mismatch")
    if not user.email_verified:  # an unconfirmed address proves nobody owns it
        raise EmailUnverified()
    if memberships.with_access(user.id, invitation.organization_id) is not None:
        raise Conflict(ALREADY_MEMBER, code="already_member")
    _spend(invitation, accepted_by=user.id)
    organization = db.session.get_one(Organization, invitation.organization_id)
    membership = memberships.join(user, organization, _roles_now(invitation))
    _flush(ALREADY_MEMBER, "already_member")
    message_ids = _joined(invitation, user, membership, client)
    db.session.commit()
    outbox.dispatch(message_ids)
    return Joined(OrganizationRef(organization.id, organization.name), membership.role_names)


def accept_with_signup(
    token: str,
    *,
    password: str,
    full_name: str | None = None,
    username: str | None = None,
    client: Client,
) -> sessions.TokenPair:
    """A new account for the invited address, confirmed (the mailed link proves it), member of
    the inviting organization only, with its first session. Raises InvalidLinkToken,
    Conflict(login_required, username_taken), ValidationFailed (the password policy)."""
    invitation = _pending(token)
    email, full_name = invitation.email, full_name or ""
    if _account_exists(invitation.email_normalized):
        raise Conflict(LOGIN_REQUIRED, code="login_required")
    accounts.check_password_policy(password, email=email, username=username, full_name=full_name)
    password_hash = passwords.hash_password(password)  # before the row lock the spend takes
    _spend(invitation, accepted_by=None)
    user = _new_account(invitation, password_hash, full_name=full_name, username=username)
    return _signed_up(invitation, user, client)


def accept_with_identity(
    token: str, provider: str, profile: dict[str, Any], client: Client
) -> sessions.TokenPair:
    """A new account for the invited address, as accept_with_signup, signed in through an
    identity provider (docs/federation.md "Invitations"): linked to that identity, without a
    password. Raises InvalidLinkToken, Conflict(login_required, identity_taken)."""
    invitation = _pending(token)
    subject = federated_logins.identity_subject(profile)
    if _account_exists(invitation.email_normalized):
        raise Conflict(LOGIN_REQUIRED, code="login_required")
    if federated_logins.identity_of(provider, subject) is not None:
        raise Conflict(IDENTITY_HAS_ACCOUNT, code="identity_taken")
    nobody_knows = passwords.unusable_hash()  # before the row lock the spend takes
    _spend(invitation, accepted_by=None)
    full_name = federated_logins.printable(profile.get("name"), 200)
    user = _new_account(invitation, nobody_knows, full_name=full_name, username=None)
    user.has_password = False
    federated_logins.add_identity(user, provider, profile)
    return _signed_up(invitation, user, client, provider=provider)


def _signed_up(
    invitation: Invitation, user: User, client: Client, **audited: str
) -> sessions.TokenPair:
    """The invited newcomer's membership, first session, audit row and messages, committed."""
    organization = db.session.get_one(Organization, invitation.organization_id)
    membership = memberships.join(user, organization, _roles_now(invitation))
    _flush(LOGIN_REQUIRED, "login_required")
    db.session.execute(
        sa.update(Invitation).where(Invitation.id == invitation.id).values(accepted_by=user.id)
    )
    started = sessions.start(user, membership, client)
    audit.by_user("user.signed_up", user, client, invitation_id=invitation.id, **audited)
    message_ids = events.ids(
        events.webhook(organization.id, "user.signed_up", {"user_id": user.id}),
        *_joined(invitation, user, membership, client),
    )
    db.session.commit()
    outbox.dispatch(message_ids)
    return sessions.started(membership, *started)


def _new_account(
    invitation: Invitation, password_hash: str, *, full_name: str, username: str | None
) -> User:
    """The invited address's account, confirmed: the mailed link proves the mailbox."""
    user = User(
        email=invitation.email,
        email_normalized=invitation.email_normalized,
        username=username,
        full_name=full_name,
        password_hash=password_hash,
        email_verified_at=clock.now(),
    )
    db.session.add(user)
    return user


def _pending(token: str) -> Invitation:
    """The pending, unexpired invitation of a token, read without spending it."""
    if not TOKEN_SHAPE.match(token):  # before hashing: a lone surrogate cannot be encoded
        raise InvalidLinkToken(INVALID)
    invitation = db.session.scalars(
        sa.select(Invitation).where(
            Invitation.token_hash == sha256_hex(token),
            *PENDING,
            Invitation.expires_at > clock.now(),
        )
    ).one_or_none()
    if invitation is None:
        raise InvalidLinkToken(INVALID)
    return invitation


def _spend(invitation: Invitation, *, accepted_by: str | None) -> None:
    """One of N concurrent accepts finds the row still pending (F10); the rest are refused."""
    now = clock.now()
    spent = db.session.execute(
        sa.update(Invitation)
        .where(Invitation.id == invitation.id, *PENDING, Invitation.expires_at > now)
        .values(accepted_at=now, accepted_by=accepted_by)
        .returning(Invitation.id)
    ).first()
    if spent is None:
        db.session.rollback()
        raise InvalidLinkToken(INVALID)


def _roles_now(invitation: Invitation) -> list[Role]:
    """The invited roles that still exist (a custom role may have been deleted meanwhile);
    `member` when none is left."""
    found = db.session.scalars(
        accounts.visible_roles(invitation.organization_id).where(Role.name.in_(invitation.roles))
    ).all()
    return list(found) or [memberships.builtin_role("member")]


def _account_exists(email_normalized: str) -> bool:
    found = db.session.scalar(sa.select(User.id).where(User.email_normalized == email_normalized))
    return found is not None


def _flush(taken_message: str, taken_code: str) -> None:
    """The unique indexes decide (a concurrent sign-up or join), never a SELECT alone."""
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        name = constraint_name(exc) or ""
        if name == "uq_users_username_lower":
            raise Conflict("That username is taken.", code="username_taken") from None
        if name in {"uq_users_email_normalized", "uq_memberships_user_id_organization_id"}:
            raise Conflict(taken_message, code=taken_code) from None
        raise


def _joined(
    invitation: Invitation, user: User, membership: Membership, client: Client
) -> list[str]:
    """The audit row and the organization's webhook of a join; no commit."""
    roles = membership.role_names
    audit.record(
        "member.joined",
        organization_id=invitation.organization_id,
        user_id=user.id,
        actor=f"user:{user.id}",
        ip=client.ip,
        user_agent=client.user_agent,
        data={"invitation_id": invitation.id, "roles": roles},
    )
    data = {"user_id": user.id, "invitation_id": invitation.id, "roles": roles}
    return events.ids(events.webhook(invitation.organization_id, "member.joined", data))
