"""A person's own data: the export of what authapp holds about them, and deleting the account."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from authapp.auth.principals import Principal, membership_with_access
from authapp.auth.services import reauthentication
from authapp.delivery import events, outbox
from authapp.models import (
    ApiKey,
    AuditEvent,
    Identity,
    LoginThrottle,
    Membership,
    OneTimeToken,
    Organization,
    OutboxMessage,
    Passkey,
    PasskeyChallenge,
    RecoveryCode,
    RefreshToken,
    Session,
    User,
    membership_roles,
)
from authapp.platform import clock
from authapp.platform.errors import Conflict
from authapp.platform.extensions import changed_rows, db
from authapp.security import audit
from authapp.security.digests import sha256_hex
from authapp.settings.services import members, organization_deletion

EXPORTED_AUDIT_EVENTS = 1_000  # the newest ones; `truncated` says when there were more
DELETED_ACTOR = "user:deleted"
OWNER_MUST_TRANSFER = (
    "An owner cannot delete their account while others belong to an organization they own: "
    "transfer ownership of it, or delete it, first."
)
EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+")


def export(principal: Principal, user: User) -> dict[str, Any]:
    """Everything about `user` a person may ask for, never a secret (no hash, TOTP secret,
    recovery code or key; a passkey's public key stays out too). Audited (`account.exported`)."""
    events_, truncated = _audit_events(user.id)
    document = {
        "exported_at": clock.now(),
        "user": user,
        "memberships": _memberships(user.id),
        "sessions": _all(sa.select(Session).where(Session.user_id == user.id), Session),
        "api_keys": _all(sa.select(ApiKey).where(ApiKey.created_by == user.id), ApiKey),
        "passkeys": _all(sa.select(Passkey).where(Passkey.user_id == user.id), Passkey),
        "identities": _all(sa.select(Identity).where(Identity.user_id == user.id), Identity),
        "audit_events": events_,
        "audit_events_truncated": truncated,
    }
    audit.by_principal("account.exported", principal, user_id=user.id)
    db.session.commit()
    return document


def _memberships(user_id: str) -> list[dict[str, Any]]:
    """Every organization the person belongs to, with the roles they hold there."""
    statement = membership_with_access(Membership.user_id == user_id).order_by(
        Membership.created_at, Membership.id
    )
    return [
        {"organization": m.organization, "roles": m.role_names, "is_active": m.is_active}
        for m in db.session.execute(statement).unique().scalars()
    ]


def _owned_organizations(user_id: str) -> list[tuple[str, bool]]:
    """The organizations the person owns, each with whether anyone else belongs to it (the
    default organization counts as shared: new accounts join it)."""
    other = aliased(Membership)
    others = sa.exists().where(other.organization_id == Organization.id, other.user_id != user_id)
    owned = (
        members.holding_owner(Organization.id, sa.or_(Organization.is_default, others))
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.user_id == user_id)
    )
    return [(str(org_id), bool(shared)) for org_id, shared in db.session.execute(owned)]


def _all(query: sa.Select[Any], model: Any) -> list[Any]:
    return list(db.session.scalars(query.order_by(model.created_at.desc(), model.id)))


def _audit_events(user_id: str) -> tuple[list[AuditEvent], bool]:
    query = (
        sa.select(AuditEvent)
        .where(AuditEvent.user_id == user_id)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(EXPORTED_AUDIT_EVENTS + 1)
    )
    rows = list(db.session.scalars(query))
    return rows[:EXPORTED_AUDIT_EVENTS], len(rows) > EXPORTED_AUDIT_EVENTS


def delete_account(principal: Principal, user: User, *, password: str) -> None:
    """Deletes the account and what hangs off it; its audit rows stay, anonymised; its keys
    stay revoked (they belong to the organization). Raises Conflict(owner_must_transfer),
    ValidationFailed (a wrong password)."""
    owned = _owned_organizations(user.id)
    if any(shared for _, shared in owned):
        # An organization others belong to needs an owner: deleting the account would leave
        # one nobody can manage. One the person is alone in goes with the account (else the
        # Personal organization a login gives them would keep them from ever leaving).
        raise Conflict(OWNER_MUST_TRANSFER, code="owner_must_transfer")
    reauthentication.require_password(
        principal, user, password, failed_event="account.delete_failed"
    )
    user_id, organization_id = user.id, user.organization_id
    message_ids = events.about_person(user_id, "user.deleted", {"user_id": user_id})
    revoked = _revoke_keys(user_id)
    alone = [org_id for org_id, _ in owned]
    for org_id in alone:
        organization_deletion.delete_rows(org_id)
    _delete_rows(user)
    _anonymise_audit_trail(user_id)
    audit.record(
        "user.deleted",
        organization_id=organization_id,
        user_id=None,
        actor=DELETED_ACTOR,
        data={"user_id": user_id, "api_keys_revoked": revoked},
    )
    for org_id in alone:
        audit.record(
            "organization.deleted",
            organization_id=org_id,
            user_id=None,
            actor=DELETED_ACTOR,
            data={"with_account": True},
        )
    db.session.commit()
    outbox.dispatch(message_ids)


def _revoke_keys(user_id: str) -> int:
    """Keys the user made or that act for them stop now; the rows stay, without the user."""
    mine = sa.or_(ApiKey.created_by == user_id, ApiKey.acts_for == user_id)
    revoked = changed_rows(
        sa.update(ApiKey).where(mine, ApiKey.revoked_at.is_(None)).values(revoked_at=clock.now())
    )
    for column in (ApiKey.created_by, ApiKey.acts_for):
        changed_rows(sa.update(ApiKey).where(column == user_id).values({column.key: None}))
    return revoked


def _delete_rows(user: User) -> None:
    """Explicit deletes rather than the foreign keys' cascades: SQLite enforces those only when
    asked to, and the outbox and throttle rows have no foreign key at all."""
    sessions = sa.select(Session.id).where(Session.user_id == user.id)
    mails = sa.and_(
        OutboxMessage.kind == "email", OutboxMessage.payload["user_id"].as_string() == user.id
    )
    statements = (
        sa.delete(RefreshToken).where(RefreshToken.session_id.in_(sessions)),
        sa.delete(Session).where(Session.user_id == user.id),
        sa.delete(OneTimeToken).where(OneTimeToken.user_id == user.id),
        sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id),
        sa.delete(PasskeyChallenge).where(PasskeyChallenge.user_id == user.id),
        sa.delete(Passkey).where(Passkey.user_id == user.id),
        sa.delete(membership_roles).where(
            membership_roles.c.membership_id.in_(
                sa.select(Membership.id).where(Membership.user_id == user.id)
            )
        ),
        sa.delete(Membership).where(Membership.user_id == user.id),
        sa.delete(LoginThrottle).where(LoginThrottle.login_key.in_(_throttle_keys(user))),
        # Mails to the person (sent ones too: they hold the address and the name).
        sa.delete(OutboxMessage).where(mails),
        sa.delete(User).where(User.id == user.id),
    )
    for statement in statements:
        changed_rows(statement)
    db.session.expunge(user)


def _throttle_keys(user: User) -> list[str]:
    """auth/backoff.py's keys naming this account: its own counter and its login names."""
    names = {user.email, user.email_normalized, user.username or ""}
    return [sha256_hex(f"account:{user.id}")] + [
        sha256_hex(name.strip().lower()) for name in names if name
    ]


def _anonymise_audit_trail(user_id: str) -> None:
    """The trail stays (what happened in the organization), without naming the person."""
    actor = f"user:{user_id}"
    rows = db.session.scalars(
        sa.select(AuditEvent).where(
            sa.or_(AuditEvent.user_id == user_id, AuditEvent.actor == actor)
        )
    )
    for row in rows:
        row.user_id = None if row.user_id == user_id else row.user_id
        row.actor = DELETED_ACTOR if row.actor == actor else row.actor
        row.data = _without_emails(row.data or {})


def _without_emails(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_emails(v) for k, v in value.items() if not _is_email(v)}
    if isinstance(value, list):
        return [_without_emails(item) for item in value if not _is_email(item)]
    return value


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and EMAIL_LIKE.search(value) is not None
