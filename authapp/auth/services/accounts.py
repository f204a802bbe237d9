"""Accounts: sign-up, an operator's account creation, the password policy every new password
passes, and the lookups the CLI and the other services share. Each public function that writes
owns its commit."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from authapp.auth import link_tokens, policy
from authapp.auth.schemas import CONTROL_CHARS
from authapp.auth.services import memberships, sessions
from authapp.delivery import events, outbox
from authapp.models import Organization, Role, User
from authapp.platform import clock
from authapp.platform.errors import (
    AppError,
    Conflict,
    ServiceUnavailable,
    ValidationFailed,
    constraint_name,
)
from authapp.platform.extensions import db
from authapp.security import audit, passwords

INVALID_CREDENTIALS = "The login or password is incorrect."
UNIQUE_CONFLICTS = {
    "uq_users_email_normalized": ("An account with this email already exists.", "email_taken"),
    "uq_users_username_lower": ("That username is taken.", "username_taken"),
    "uq_identities_provider_subject": (
        "This identity is already connected to an account.",
        "identity_taken",
    ),
}


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password_policy(
    password: str,
    *,
    email: str,
    username: str | None = None,
    full_name: str | None = None,
    field: str = "password",
) -> None:
    """Raises ValidationFailed with the reasons on `field` (sign-up, change and reset alike):
    every password being set passes here (a schema that judged it already marks it accepted)."""
    if passwords.is_accepted(password, email=email, username=username, full_name=full_name):
        return
    reasons = passwords.policy_errors(password, email=email, username=username, full_name=full_name)
    if reasons:
        raise ValidationFailed({field: reasons}, "The password does not meet the policy.")


def check_new_password(user: User, password: str) -> None:
    """The policy for a password change or reset, with the account's own words refused."""
    check_password_policy(
        password,
        email=user.email,
        username=user.username,
        full_name=user.full_name,
        field="new_password",
    )


def default_organization() -> Organization:
    organization = db.session.scalars(
        sa.select(Organization).where(Organization.is_default)
    ).one_or_none()
    if organization is None:
        raise ServiceUnavailable("The service is not initialised yet (run `flask seed`).")
    return organization


def sign_up(
    *,
    email: str,
    password: str,
    full_name: str = "",
    username: str | None = None,
    organization_name: str | None = None,
    client: sessions.Client,
) -> sessions.TokenPair | None:
    """Create the account and its first session, or None when REQUIRE_VERIFIED_EMAIL holds the
    session back until the mailed link is used. Raises SignupClosed, ValidationFailed, Conflict."""
    policy.check_signup_open()
    check_password_policy(password, email=email, username=username, full_name=full_name)
    password_hash = passwords.hash_password(password)
    if organization_name:
        organization, role = Organization(name=organization_name), memberships.builtin_role("owner")
    else:
        organization, role = default_organization(), memberships.builtin_role("member")
    user = User(
        email=email,
        email_normalized=normalize_email(email),
        username=username,
        full_name=full_name,
        password_hash=password_hash,
    )
    return open_account(user, organization, role, client, new_organization=bool(organization_name))


def open_account(
    user: User,
    organization: Organization,
    role: Role,
    client: sessions.Client,
    *,
    mail_verification: bool = True,
    **audit_data: object,
) -> sessions.TokenPair | None:
    """A new account's rows, its first session (unless REQUIRE_VERIFIED_EMAIL holds it back),
    its audit row, its verification mail and its webhook, committed. Raises Conflict."""
    db.session.add(user)
    membership = memberships.join(user, organization, [role])
    flush_unique()
    started = (
        sessions.start(user, membership, client)
        if policy.may_have_session(user.email_verified)
        else None
    )
    audit.by_user("user.signed_up", user, client, **audit_data)
    message_ids = events.ids(
        link_tokens.send_verification(user) if mail_verification else None,
        events.webhook(organization.id, "user.signed_up", {"user_id": user.id}),
    )
    db.session.commit()
    outbox.dispatch(message_ids)  # after the commit: the pool thread must find the rows
    return sessions.started(membership, *started) if started else None


def flush_unique() -> None:
    """Flush; a unique index that refuses the row becomes the contract's 409.

    The indexes decide, never a SELECT first: that would race a concurrent sign-up (F8).
    """
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        conflict = UNIQUE_CONFLICTS.get(constraint_name(exc) or "")
        if conflict is None:
            raise
        raise Conflict(conflict[0], code=conflict[1]) from None


def create_user(
    *,
    email: str,
    password: str,
    username: str | None = None,
    full_name: str = "",
    organization: str | None = None,
    role_names: tuple[str, ...] = ("member",),
) -> User:
    """An operator's account creation (`flask create-user`): the sign-up rules, no session.
    The operator vouches for the address, so it counts as verified."""
    check_password_policy(password, email=email, username=username, full_name=full_name)
    org = find_organization(organization) if organization else default_organization()
    roles = roles_named(org.id, role_names)
    user = User(
        email=email,
        email_normalized=normalize_email(email),
        username=username,
        full_name=full_name,
        password_hash=passwords.hash_password(password),
        email_verified_at=clock.now(),
    )
    db.session.add(user)
    memberships.join(user, org, roles)
    flush_unique()
    audit.record(
        "user.created",
        organization_id=org.id,
        user_id=user.id,
        actor="system",
        data={"roles": list(role_names)},
    )
    db.session.commit()
    return user


def visible_roles(organization_id: str) -> sa.Select[Role]:
    """The built-in roles and the organization's own, with their permissions."""
    return (
        sa.select(Role)
        .where(sa.or_(Role.organization_id.is_(None), Role.organization_id == organization_id))
        .options(selectinload(Role.permissions))
    )


def roles_named(organization_id: str, names: Iterable[str]) -> list[Role]:
    """Raises ValidationFailed on the `roles` field for a name the organization lacks."""
    wanted = set(names)
    roles = list(db.session.scalars(visible_roles(organization_id).where(Role.name.in_(wanted))))
    unknown = wanted - {role.name for role in roles}
    if unknown:
        raise ValidationFailed({"roles": [f"Unknown role: {', '.join(sorted(unknown))}."]})
    return roles


def names_nothing(value: str, *, longest: int = 254) -> bool:
    """An operator's argument with a control character, an unpaired surrogate (bytes that were
    not UTF-8) or an absurd length names no row: the database drivers would refuse it with an
    exception of their own, not an answer."""
    return len(value) > longest or CONTROL_CHARS.search(value) is not None


def find_organization(id_or_name: str) -> Organization:
    if names_nothing(id_or_name):
        raise AppError(f"No organization matches {id_or_name!r}.", code="not_found")
    criterion = Organization.name == id_or_name
    with contextlib.suppress(ValueError):
        criterion = sa.or_(criterion, Organization.id == str(uuid.UUID(id_or_name)))
    matches = db.session.scalars(sa.select(Organization).where(criterion)).all()
    if len(matches) != 1:
        found = "No" if not matches else "More than one"
        raise AppError(f"{found} organization matches {id_or_name!r}.", code="not_found")
    return matches[0]


def account_named(login: str) -> User:
    """The account with this email or username, for operators; raises AppError(not_found)."""
    user = None if names_nothing(login) else find_by_login(login)
    if user is None:
        raise AppError(f"No account matches {login!r}.", code="not_found")
    return user


def disable_user(login: str) -> User:
    """`flask disable-user`: the account can no longer log in, and every session ends now."""
    user = account_named(login)
    user.is_active = False
    revoked = sessions.revoke_all(user.id, reason="user_disabled")
    audit.record(
        "user.disabled",
        organization_id=user.organization_id,
        user_id=user.id,
        actor="system",
        data={"sessions_revoked": revoked},
    )
    message_ids = events.about_person(user.id, "user.disabled", {"user_id": user.id})
    db.session.commit()
    outbox.dispatch(message_ids)
    return user


def find_by_login(login: str) -> User | None:
    login = login.strip()
    if "@" in login:
        criterion = User.email_normalized == normalize_email(login)
    else:
        criterion = sa.func.lower(User.username) == login.lower()
    return db.session.scalars(sa.select(User).where(criterion)).one_or_none()
