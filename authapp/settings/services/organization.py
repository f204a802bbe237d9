"""The caller's organization: its settings, tier and webhooks (AC-1..3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authapp.auth.principals import Principal
from authapp.auth.services import accounts
from authapp.delivery import events, outbox, webhooks
from authapp.models import TIER_RATE_LIMITS, Organization
from authapp.platform.errors import AppError, Conflict, NotFound, ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit, secretbox
from authapp.settings.verified import require_verified_email


@dataclass(frozen=True)
class OrganizationUpdate:
    organization: Organization
    webhook_secret: str | None = None  # only in the answer that first sets a webhook_url


def update_organization(principal: Principal, changes: dict[str, Any]) -> OrganizationUpdate:
    """Rename; set or clear `webhook_url` (CF-2 rules). The first URL gets a new signing
    secret, returned once. Raises ValidationFailed."""
    require_verified_email(principal)
    organization = _organization(principal)
    changed: dict[str, Any] = {}
    secret = None
    if "name" in changes and changes["name"] != organization.name:
        changed["name"] = {"from": organization.name, "to": changes["name"]}
        organization.name = changes["name"]
    if "webhook_url" in changes and changes["webhook_url"] != organization.webhook_url:
        url = changes["webhook_url"]
        if url is not None:
            problem = webhooks.target_error(url) or webhooks.resolution_error(url, organization.id)
            if problem is not None:
                raise ValidationFailed({"webhook_url": [problem]})
            if organization.webhook_secret is None:
                secret = webhooks.new_secret()
                organization.webhook_secret = secretbox.seal(secret)
        else:
            organization.webhook_secret = None  # a later URL gets a new secret, shown once
        changed["webhook_url"] = {"from": organization.webhook_url, "to": url}
        organization.webhook_url = url
    if changed:
        audit.by_principal("organization.updated", principal, **changed)
    db.session.commit()
    return OrganizationUpdate(organization, secret)


def set_tier(id_or_name: str, tier: str) -> Organization:
    """`flask org set-tier`: the tier and the API-key rate limit it gives. Raises AppError."""
    if tier not in TIER_RATE_LIMITS:
        raise AppError(
            f"Unknown tier {tier!r}: use {', '.join(TIER_RATE_LIMITS)}.", code="not_found"
        )
    organization = accounts.find_organization(id_or_name)
    before = organization.tier
    organization.tier = tier
    organization.rate_limit_per_minute = TIER_RATE_LIMITS[tier]
    audit.record(
        "organization.tier_changed",
        organization_id=organization.id,
        user_id=None,
        actor="system",
        data={"from": before, "to": tier},
    )
    db.session.commit()
    return organization


def rotate_webhook_secret(principal: Principal) -> str:
    """A new signing secret, shown once; the old one stops signing now."""
    require_verified_email(principal)
    organization = _webhook_organization(principal)
    secret = webhooks.new_secret()
    organization.webhook_secret = secretbox.seal(secret)
    audit.by_principal("webhook.secret_rotated", principal)
    db.session.commit()
    return secret


def send_test_webhook(principal: Principal) -> str:
    """A signed `ping` through the outbox; its delivery id."""
    require_verified_email(principal)
    organization = _webhook_organization(principal)
    message_id = events.webhook(organization.id, "ping", {"requested_by": principal.actor})
    audit.by_principal("webhook.ping", principal, message_id=message_id)
    db.session.commit()
    outbox.dispatch(events.ids(message_id))
    return message_id or ""


def _organization(principal: Principal) -> Organization:
    organization = db.session.get(Organization, principal.organization_id)
    if organization is None:  # deleted under the caller's feet
        raise NotFound("No such organization.")
    return organization


def _webhook_organization(principal: Principal) -> Organization:
    organization = _organization(principal)
    if not organization.webhook_url:
        raise Conflict("Set the organization's webhook_url first.", code="webhook_not_configured")
    return organization
