"""Webhooks against a real HTTP receiver: signed events, retries, SSRF rules, breaker, timeouts.

CF-2 (https only, no private targets checked after DNS, no redirects, `t=,v1=` HMAC, a stable
delivery id), F5 (a receiver that hangs, answers 500 or redirects), docs/architecture.md "Rules",
rule 3 (outbox). The signature is verified here by recomputing HMAC-SHA256 with the secret the API
showed once.

What the webhook tests (test_webhooks_*.py, test_webhook_isolation.py) share: an organization's
owner, its webhook set and pinged, deliveries read and verified."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import OutboxMessage
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header, confirm_email
from tests.servers import Delivery, Receiver, wait_for

AUTH = "/api/v1/auth"
SETTINGS = "/api/v1/settings"
ORGANIZATION = f"{SETTINGS}/organization"
PING = f"{SETTINGS}/webhooks/test"
PRIVATE = pytest.mark.config(WEBHOOK_ALLOW_PRIVATE=True)


@dataclass
class Owner:
    """An organization's owner; `secret` is the webhook secret once a URL is set."""

    id: str
    email: str
    organization_id: str
    access_token: str
    refresh_token: str
    secret: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return auth_header(self.access_token)


def header(delivery: Delivery, name: str) -> str:
    found = {key.lower(): value for key, value in delivery.headers.items()}
    return found[name.lower()]


def signed_with(delivery: Delivery, secret: str) -> bool:
    """The receiver's check: `t=<unix>,v1=<hex HMAC-SHA256(secret, "t." + raw body)>`."""
    parts = dict(item.split("=", 1) for item in header(delivery, "X-Authapp-Signature").split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + delivery.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def arrival(receiver: Receiver, event: str, timeout: float = 10.0) -> Delivery:
    """The first delivery of `event` (waits for the pool)."""

    def of_event() -> list[Delivery]:
        return [d for d in list(receiver.deliveries) if d.json()["event"] == event]

    return wait_for(of_event, timeout)[0]


def assert_signed_event(delivery: Delivery, event: str, owner: Owner) -> dict[str, Any]:
    body = delivery.json()
    assert set(body) == {"id", "event", "created_at", "organization_id", "data"}
    assert body["event"] == event
    assert body["organization_id"] == owner.organization_id
    assert header(delivery, "X-Authapp-Event") == event
    assert header(delivery, "X-Authapp-Delivery") == body["id"]
    assert header(delivery, "Content-Type").startswith("application/json")
    assert signed_with(delivery, owner.secret)
    assert not signed_with(delivery, "whsec_" + "x" * 43)
    return body


def webhook_rows(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.kind == "webhook")
            .order_by(OutboxMessage.created_at)
        ).all()
        return [
            {
                "id": row.id,
                "event": row.payload["event"],
                "status": row.status,
                "attempts": row.attempts,
                "last_error": row.last_error,
            }
            for row in rows
        ]


def webhook_row(app: Flask, message_id: str) -> dict[str, Any]:
    return next(row for row in webhook_rows(app) if row["id"] == message_id)


def settled(app: Flask, message_id: str, **expected: Any) -> Callable[[], dict | None]:
    """A predicate for wait_for: the row once it matches `expected` (and its attempt ended)."""

    def check() -> dict[str, Any] | None:
        row = webhook_row(app, message_id)
        if row["status"] == "pending" and row["last_error"] is None:
            return None  # claimed or not yet tried: the attempt has not ended
        return row if all(row[key] == value for key, value in expected.items()) else None

    return check


def ping(client: FlaskClient, owner: Owner) -> str:
    response = client.post(PING, headers=owner.headers)
    assert response.status_code == 202, response.json
    return response.json["delivery_id"]


def set_webhook(client: FlaskClient, owner: Owner, url: str | None) -> Any:
    return client.patch(ORGANIZATION, json={"webhook_url": url}, headers=owner.headers)


def sign_up_owner(client: FlaskClient, name: str) -> Owner:
    """The owner of a new organization `name` (owner@<name>.example, address confirmed: an
    unconfirmed one may not administer), without a webhook yet."""
    email = f"owner@{name.lower()}.example"
    response = client.post(
        f"{AUTH}/signup", json={"email": email, "password": PASSWORD, "organization_name": name}
    )
    assert response.status_code == 201, response.json
    confirm_email(client.application, email)
    body = response.json
    return Owner(
        body["user"]["id"],
        email,
        body["user"]["organization"]["id"],
        body["access_token"],
        body["refresh_token"],
    )
