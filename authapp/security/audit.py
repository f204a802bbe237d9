"""Audit rows, written in the caller's transaction so the trail and the change commit together."""

from __future__ import annotations

from typing import Any, Protocol

from authapp.models import AuditEvent, User
from authapp.platform import metrics
from authapp.platform.extensions import db


class Origin(Protocol):
    """Where a request came from (security.network.Client)."""

    @property
    def ip(self) -> str | None: ...

    @property
    def user_agent(self) -> str | None: ...


def record(
    event: str,
    *,
    organization_id: str | None,
    user_id: str | None,
    actor: str,
    ip: str | None = None,
    user_agent: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Never put a password, token, key or link in `data` (AU-2)."""
    db.session.add(
        AuditEvent(
            event=event,
            organization_id=organization_id,
            user_id=user_id,
            actor=actor,
            ip=ip,
            user_agent=user_agent,
            data=data or {},
        )
    )
    metrics.audited(event, data or {})  # logins by outcome: every reason recorded here


def about_account(event: str, user: User | None, origin: Origin, **data: Any) -> None:
    """Something that happened to an account that may not exist (a failed login, a reset
    request for an unknown email), recorded by the system."""
    record(
        event,
        organization_id=user.organization_id if user else None,
        user_id=user.id if user else None,
        actor="system",
        ip=origin.ip,
        user_agent=origin.user_agent,
        data=data,
    )


class Member(Protocol):
    """An account acting on itself (a `User` row or a principal's `Account`)."""

    @property
    def id(self) -> str: ...

    @property
    def organization_id(self) -> str | None: ...


def by_user(event: str, user: Member, origin: Origin, **data: Any) -> None:
    """An action the user took on their own account."""
    record(
        event,
        organization_id=user.organization_id,
        user_id=user.id,
        actor=f"user:{user.id}",
        ip=origin.ip,
        user_agent=origin.user_agent,
        data=data,
    )


class Actor(Origin, Protocol):
    """Who acts inside an organization (auth/principals.py's Principal)."""

    @property
    def actor(self) -> str: ...

    @property
    def organization_id(self) -> str | None: ...


def by_principal(event: str, principal: Actor, *, user_id: str | None = None, **data: Any) -> None:
    """An action a principal took in its organization; `user_id` is the account it concerns."""
    record(
        event,
        organization_id=principal.organization_id,
        user_id=user_id,
        actor=principal.actor,
        ip=principal.ip,
        user_agent=principal.user_agent,
        data=data,
    )
