"""One tenant's receivers cannot stop another's deliveries, nor anyone's mail (CF-2,
F5; docs/architecture.md "Rules", rule 2).

The slow receiver is real: a local HTTP server that answers one byte every 0.2 s and never ends
its headers (tests/servers.py `Trickler`), the attack these tests stop (28.8 s held with a 1 s
timeout). Mail goes to the real aiosmtpd server of tests/app/delivery/conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pybreaker
import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from authapp.auth import limits
from authapp.delivery import offload
from tests.app.delivery.webhooks import (
    AUTH,
    PING,
    Owner,
    arrival,
    ping,
    set_webhook,
    settled,
    sign_up_owner,
    webhook_row,
)
from tests.conftest import auth_header
from tests.servers import Mailbox, Trickler, trickler, wait_for, webhook_receiver

SLOW = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_TIMEOUT": 30}


@pytest.fixture
def slow(app: Flask) -> Iterator[Trickler]:
    """Depends on `app` so that it stops trickling before the app's pool shuts down."""
    with trickler() as server:
        yield server


def hook(client: FlaskClient, owner: Owner, url: str) -> Owner:
    response = set_webhook(client, owner, url)
    assert response.status_code == 200, response.json
    owner.secret = response.json["webhook_secret"]
    return owner


@pytest.mark.config(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_TIMEOUT=1)
def test_a_trickling_receiver_is_cut_off_at_the_delivery_deadline(app, client, owner, slow):
    """WEBHOOK_TIMEOUT bounds the whole delivery: each byte arrives within the socket timeout,
    and still the attempt ends after about 1 s, not when the receiver stops (F5)."""
    hook(client, owner, slow.url)

    started = time.monotonic()
    delivery_id = ping(client, owner)
    row = wait_for(settled(app, delivery_id, status="pending"), timeout=8)
    elapsed = time.monotonic() - started

    assert elapsed < 8, f"the attempt took {elapsed:.1f} s"
    assert slow.requests == 1
    assert row["attempts"] == 1
    assert "timed out" in row["last_error"], row["last_error"]


@pytest.mark.config(WEBHOOK_WORKERS=1, OFFLOAD_WORKERS=1, **SLOW)
def test_mail_goes_out_while_every_webhook_thread_is_held(app, client, owner, slow, mailing):
    """Mail and webhooks never share threads: with the only webhook thread held by a slow
    receiver, a reset mail still arrives at once (once, every tenant's mail waited)."""
    hook(client, owner, slow.url)
    deliveries = [ping(client, owner) for _ in range(3)]
    wait_for(lambda: slow.requests == 1)

    forgot = client.post(f"{AUTH}/password/forgot", json={"email": owner.email})
    assert forgot.status_code == 202

    def reset_mail() -> list:
        return [m for m in mailing.mailbox.to(owner.email) if m["Subject"] == "Reset your password"]

    [message] = wait_for(reset_mail, timeout=10)
    assert "/reset-password?token=" in Mailbox.text(message)
    # The webhooks are still held or waiting: none has ended an attempt.
    assert [webhook_row(app, d)["last_error"] for d in deliveries] == [None, None, None]
    assert slow.requests == 1


@pytest.mark.config(WEBHOOK_WORKERS=2, WEBHOOK_MAX_PER_ORGANIZATION=1, **SLOW)
def test_one_organizations_slow_receiver_holds_only_its_own_turn(
    app, client, owner, slow, receiver
):
    """A per-organization cap: the slow tenant's other deliveries wait their turn without a
    thread, so another tenant's event is delivered while the first stays stuck."""
    hook(client, owner, slow.url)
    held = [ping(client, owner) for _ in range(3)]
    wait_for(lambda: slow.requests == 1)
    other = hook(client, sign_up_owner(client, "Other"), receiver.url)

    delivered = ping(client, other)

    assert arrival(receiver, "ping", timeout=5).json()["id"] == delivered
    assert wait_for(settled(app, delivered, status="sent"), timeout=5)["attempts"] == 1
    assert slow.requests == 1  # the slow tenant's two others never reached a thread
    assert [webhook_row(app, d)["attempts"] for d in held] == [1, 0, 0]


@pytest.mark.config(BREAKER_FAILURES=2, WEBHOOK_ALLOW_PRIVATE=True)
def test_a_tenant_that_opens_its_breaker_does_not_open_anothers_on_the_same_host(
    app, client, owner, receiver
):
    """Breakers are per organization and host. Both receivers listen on
    127.0.0.1; the failing tenant opens its own breaker only."""
    receiver.answer(500)
    hook(client, owner, receiver.url)
    for _ in range(2):
        wait_for(settled(app, ping(client, owner), status="pending", attempts=1))
    refused = wait_for(settled(app, ping(client, owner), status="pending", attempts=1))
    assert "CircuitBreakerError" in refused["last_error"]

    with webhook_receiver() as healthy:
        other = hook(client, sign_up_owner(client, "Other"), healthy.url)
        delivered = ping(client, other)

        assert wait_for(settled(app, delivered, status="sent"))["attempts"] == 1
        assert [d.json()["id"] for d in healthy.deliveries] == [delivered]


@pytest.mark.config(BREAKER_FAILURES=1)
def test_breakers_per_target_are_bounded_and_an_evicted_one_is_not_counted(app, monkeypatch):
    monkeypatch.setattr(offload, "MAX_KEYED_BREAKERS", 3)
    with app.app_context():
        first = offload.breaker("webhook", "org-0:hooks.example.com")
        with pytest.raises(pybreaker.CircuitBreakerError):
            first.call(_refused)
        keyed = app.extensions[offload.EXTENSION].keyed["webhook"]
        assert keyed.open == {"org-0:hooks.example.com"}

        for n in range(1, 4):
            offload.breaker("webhook", f"org-{n}:hooks.example.com")

        assert len(keyed.breakers) == 3
        assert keyed.open == set()  # the evicted open breaker no longer counts
        assert offload.breaker("webhook", "org-0:hooks.example.com") is not first


def _refused() -> None:
    raise ConnectionRefusedError("down")


LIMITED = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_WEBHOOK_TEST": "2/minute",
    "WEBHOOK_ALLOW_PRIVATE": True,
}


@pytest.mark.config(**LIMITED)
def test_webhook_pings_are_limited_per_organization(app, client, owner, receiver, make_user):
    """POST /webhooks/test is limited per organization, whoever of it asks; other
    organizations keep their own budget, and a caller without credentials spends none."""
    hook(client, owner, receiver.url)
    admin = make_user(
        email="admin@hooks.example", organization=owner.organization_id, role_names=("admin",)
    )
    login = client.post(
        f"{AUTH}/login", json={"login": admin["email"], "password": admin["password"]}
    )
    admin_headers = auth_header(login.json["access_token"])
    assert client.post(PING).status_code == 401  # no budget spent by strangers

    answers = [
        client.post(PING, headers=owner.headers),
        client.post(PING, headers=admin_headers),
        client.post(PING, headers=admin_headers),
    ]
    other = hook(client, sign_up_owner(client, "Other"), receiver.url)
    elsewhere = client.post(PING, headers=other.headers)

    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[2].json["error"]["code"] == "rate_limited"
    assert int(answers[2].headers["Retry-After"]) > 0
    assert elsewhere.status_code == 202


def test_the_organization_key_falls_back_to_the_address_and_never_raises(app):
    with app.test_request_context("/api/v1/settings/webhooks/test", method="POST"):
        assert limits.by_organization() == "ip:None"
        g.principal = object()  # not a principal: still a key, never an exception
        assert limits.by_organization() == "ip:None"
