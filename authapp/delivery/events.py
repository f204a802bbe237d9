"""What authapp tells the outside world: emails to a user and webhooks to an organization.

Each function writes an outbox row in the caller's transaction and returns its id (or None when
there is nobody to tell); the caller commits, then `outbox.dispatch`es the ids.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from authapp.delivery import outbox
from authapp.models import Membership, Organization, User
from authapp.platform import clock
from authapp.platform.extensions import db

WEBHOOK_EVENTS = (
    "user.signed_up",
    "user.password_changed",
    "user.email_changed",
    "user.disabled",
    "user.deleted",
    "member.invited",
    "member.joined",
    "member.removed",
    "session.reuse_detected",
    "api_key.created",
    "api_key.revoked",
    "ping",
)


def link(path: str) -> str:
    """RS-2: links come from PUBLIC_BASE_URL, never from the request's Host."""
    config = current_app.config  # authapp's pages sit under its prefix (platform/territory.py)
    return config["PUBLIC_BASE_URL"].rstrip("/") + config["AUTHAPP_URL_PREFIX"] + path


def email(
    user: User,
    template: str,
    context: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    *,
    to: str | None = None,
) -> str:
    """A mail to `user` (at `to` rather than the account's address: an email change writes to
    the new address and to the old one); `secrets` (a link with a token) are stored encrypted
    and wiped from the row once sent."""
    return outbox.add("email", email_payload(user, template, context, secrets, to=to))


def email_payload(
    user: User,
    template: str,
    context: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    *,
    to: str | None = None,
) -> dict[str, Any]:
    """What an email row holds (before its secrets are sealed)."""
    payload: dict[str, Any] = {
        "to": to or user.email,
        "template": template,
        "user_id": user.id,
        "organization_id": user.organization_id,
        "context": {"name": user.full_name, **(context or {})},
    }
    if secrets:
        payload["secrets"] = secrets
    return payload


def email_to_address(
    to: str,
    template: str,
    *,
    organization_id: str,
    context: dict[str, Any],
    secrets: dict[str, str],
) -> str:
    """A mail to an address that has no account yet (an invitation), on behalf of an
    organization; `secrets` as for `email`."""
    payload = {
        "to": to,
        "template": template,
        "user_id": None,
        "organization_id": organization_id,
        "context": context,
        "secrets": secrets,
    }
    return outbox.add("email", payload)


def webhook(organization_id: str, event: str, data: dict[str, Any]) -> str | None:
    """An event for the organization's receiver, if it has one (looked up in the identity map
    first: the request's principal usually holds the organization already)."""
    if event not in WEBHOOK_EVENTS:  # the contract's list: a typo must not reach receivers
        raise ValueError(f"unknown webhook event {event!r}")
    organization = db.session.get(Organization, organization_id)
    if organization is None or not organization.webhook_url:
        return None
    return outbox.add(
        "webhook",
        {
            "organization_id": organization_id,
            "event": event,
            "created_at": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": data,
        },
    )


def about_person(user_id: str, event: str, data: dict[str, Any]) -> list[str]:
    """An event about a person (their password, their address, their account) for every
    organization they belong to: each one's receiver hears of its own members."""
    organization_ids = db.session.scalars(
        sa.select(Membership.organization_id).where(Membership.user_id == user_id)
    ).all()
    return ids(*(webhook(org_id, event, data) for org_id in sorted(organization_ids)))


def ids(*maybe: str | None) -> list[str]:
    return [message_id for message_id in maybe if message_id is not None]
