"""Webhooks against a real HTTP receiver: the set-up these tests share, and why, is webhooks.py's
docstring.

This part: retries (at least once, one delivery id), SSRF rules (CF-2), production ports, the
breaker and timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authapp.delivery import outbox
from tests.app.delivery.webhooks import (
    ORGANIZATION,
    PRIVATE,
    SETTINGS,
    assert_signed_event,
    header,
    ping,
    set_webhook,
    settled,
    sign_up_owner,
    signed_with,
    webhook_row,
)
from tests.conftest import marker_settings, seeded_app
from tests.servers import Tarpit, wait_for, webhook_receiver


def drain(app: Flask) -> dict[str, int]:
    with app.app_context():
        return outbox.drain()


# --- retries: at least once, one delivery id --------------------------------------------------


@PRIVATE
def test_a_500_is_retried_with_the_same_delivery_id(app, client, hooked, receiver):
    """F5, CF-2: a failed attempt leaves the row pending; the retry carries the same id."""
    receiver.answer(500)
    delivery_id = ping(client, hooked)

    row = wait_for(settled(app, delivery_id, status="pending"))
    assert row["attempts"] == 1
    assert "500" in row["last_error"]

    receiver.answer(200)
    assert drain(app) == {"sent": 1}

    assert webhook_row(app, delivery_id)["status"] == "sent"
    assert webhook_row(app, delivery_id)["attempts"] == 2
    ids = [header(d, "X-Authapp-Delivery") for d in receiver.deliveries]
    assert ids == [delivery_id, delivery_id]
    assert [d.json()["id"] for d in receiver.deliveries] == ids
    assert all(signed_with(d, hooked.secret) for d in receiver.deliveries)


@PRIVATE
def test_a_stopped_receiver_gets_the_event_after_it_restarts(app, client, hooked, receiver):
    """F5: connection refused keeps the row pending; a drain after the restart delivers it."""
    receiver.stop()
    delivery_id = ping(client, hooked)

    row = wait_for(settled(app, delivery_id, status="pending"))
    assert row["attempts"] == 1
    assert "refused" in row["last_error"].lower()

    receiver.start()
    assert drain(app) == {"sent": 1}

    assert webhook_row(app, delivery_id)["status"] == "sent"
    [delivery] = receiver.deliveries
    assert assert_signed_event(delivery, "ping", hooked)["id"] == delivery_id


@pytest.mark.config(OUTBOX_MAX_ATTEMPTS=2, WEBHOOK_ALLOW_PRIVATE=True)
def test_a_receiver_that_always_fails_ends_dead_and_audited(app, client, hooked, receiver):
    """F3/F5: after OUTBOX_MAX_ATTEMPTS the message is dead, with an `outbox.dead` audit event."""
    receiver.answer(500)
    delivery_id = ping(client, hooked)
    wait_for(settled(app, delivery_id, status="pending", attempts=1))

    assert drain(app) == {"dead": 1}

    row = webhook_row(app, delivery_id)
    assert row["status"] == "dead"
    assert row["attempts"] == 2
    assert "500" in row["last_error"]
    assert [header(d, "X-Authapp-Delivery") for d in receiver.deliveries] == [delivery_id] * 2
    audit = client.get(f"{SETTINGS}/audit-events", headers=hooked.headers)
    assert audit.status_code == 200
    dead = [e for e in audit.json["audit_events"] if e["event"] == "outbox.dead"]
    assert len(dead) == 1
    assert dead[0]["data"]["message_id"] == delivery_id
    assert dead[0]["data"]["kind"] == "webhook"
    assert drain(app) == {}  # dead is final


@PRIVATE
def test_a_redirect_is_not_followed(app, client, hooked, receiver):
    """CF-2, F5: a 302 is a failure; nothing is posted to its Location."""
    with webhook_receiver() as elsewhere:
        receiver.answer(302, {"Location": elsewhere.url})
        delivery_id = ping(client, hooked)

        row = wait_for(settled(app, delivery_id, status="pending"))
        assert row["attempts"] == 1
        assert "302" in row["last_error"]
        assert drain(app) == {"pending": 1}

        assert len(receiver.deliveries) == 2
        assert elsewhere.deliveries == []
        assert webhook_row(app, delivery_id)["status"] != "sent"


# --- SSRF (CF-2), default configuration ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://10.0.0.5/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[fe80::1]/x",
        "https://user:pw@example.com/x",
        # IPv6 forms that reach IPv4 addresses, refused on every Python.
        "https://[64:ff9b::a00:5]/x",  # NAT64 of 10.0.0.5
        "https://[64:ff9b::7f00:1]/x",  # NAT64 of 127.0.0.1
        "https://[2002:a00:5::1]/x",  # 6to4 of 10.0.0.5
        "https://[::10.0.0.5]/x",  # IPv4-compatible
        "https://[::127.0.0.1]/x",
        "https://[fec0::1]/x",  # site-local
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",  # Teredo
        "https://[::1/x",  # not a URL: a 422, never a 500
    ],
)
def test_unsafe_webhook_url_is_422(client, owner, url):
    """CF-2: https only; IP literals that are not public and credentials refused at PATCH."""
    response = set_webhook(client, owner, url)

    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert "webhook_url" in response.json["error"]["fields"]
    assert client.get(ORGANIZATION, headers=owner.headers).json["webhook_url"] is None


def test_a_name_resolving_to_loopback_is_422_when_set(client, owner):
    """CF-2: a name that already resolves to a private address is refused when the
    URL is set, not only at delivery."""
    response = set_webhook(client, owner, "https://localhost/hooks")

    assert response.status_code == 422, response.json
    assert "webhook_url" in response.json["error"]["fields"]
    assert "non-public" in response.json["error"]["fields"]["webhook_url"][0]
    assert client.get(ORGANIZATION, headers=owner.headers).json["webhook_url"] is None


def test_a_name_resolving_to_loopback_by_delivery_time_goes_dead_without_a_connection(
    app, client, owner
):
    """CF-2: names are checked again after DNS at delivery (a name may point elsewhere by then:
    here the URL was accepted while private targets were allowed). Dead at once, never dialled:
    the target port is a listener that counts accepted connections (a TLS attempt to an HTTP
    receiver would not show up as a delivery)."""
    listener = Tarpit()
    try:
        app.config["WEBHOOK_ALLOW_PRIVATE"] = True
        response = set_webhook(client, owner, f"https://localhost:{listener.port}/x")
        assert response.status_code == 200, response.json
        assert response.json["webhook_secret"].startswith("whsec_")
        app.config["WEBHOOK_ALLOW_PRIVATE"] = False

        delivery_id = ping(client, owner)

        row = wait_for(settled(app, delivery_id, status="dead"))
        assert row["attempts"] == 1
        assert "non-public" in row["last_error"]
        assert listener.accepted == []
    finally:
        listener.close()


@pytest.fixture
def production_client(database_url: str, request: pytest.FixtureRequest) -> Iterator[FlaskClient]:
    """A production app (BCRYPT_ROUNDS at its production floor) on the test database."""
    settings = {"AUTHAPP_ENV": "production", "BCRYPT_ROUNDS": 10, **marker_settings(request)}
    with seeded_app(database_url, **settings) as app:
        yield app.test_client()


def test_production_webhooks_use_ports_443_and_80_only(production_client):
    """CF-2. The address is a public literal: nothing is looked up or dialled."""
    owner = sign_up_owner(production_client, "Ports")

    answers = {
        url: set_webhook(production_client, owner, url)
        for url in (
            "https://1.1.1.1:8443/x",
            "https://1.1.1.1:22/x",
            "https://1.1.1.1:80/x",
            "https://1.1.1.1/x",
        )
    }

    statuses = {url: answer.status_code for url, answer in answers.items()}
    assert list(statuses.values()) == [422, 422, 200, 200], statuses
    refusal = answers["https://1.1.1.1:8443/x"].json["error"]["fields"]["webhook_url"]
    assert refusal == ["Webhook URLs must use port 443, 80."]


@pytest.mark.config(WEBHOOK_ALLOWED_PORTS=[8443])
def test_production_webhook_ports_can_be_configured(production_client):
    owner = sign_up_owner(production_client, "Ports")

    assert set_webhook(production_client, owner, "https://1.1.1.1:8443/x").status_code == 200
    assert set_webhook(production_client, owner, "https://1.1.1.1/x").status_code == 422


# --- breaker and timeouts ---------------------------------------------------------------


@pytest.mark.config(BREAKER_FAILURES=2, WEBHOOK_ALLOW_PRIVATE=True)
def test_an_open_breaker_fails_without_contacting_the_receiver(app, client, hooked, receiver):
    """F5, A 16.5.2: after BREAKER_FAILURES consecutive failures the host's breaker is open."""
    receiver.answer(500)
    for _ in range(2):
        wait_for(settled(app, ping(client, hooked), status="pending", attempts=1))
    assert len(receiver.deliveries) == 2

    third = ping(client, hooked)

    row = wait_for(settled(app, third, status="pending", attempts=1))
    assert "CircuitBreakerError" in row["last_error"]
    assert len(receiver.deliveries) == 2


@pytest.mark.config(WEBHOOK_TIMEOUT=0.5, WEBHOOK_ALLOW_PRIVATE=True)
def test_a_hanging_receiver_times_out_off_the_request_thread(app, client, hooked, receiver):
    """F5, docs/architecture.md "Rules", rule 2: the request that causes the event does not wait for
    the receiver."""
    receiver.answer(200, delay=3)

    started = time.perf_counter()
    delivery_id = ping(client, hooked)
    elapsed = time.perf_counter() - started

    assert elapsed < 2, f"POST /webhooks/test took {elapsed:.2f} s"
    row = wait_for(settled(app, delivery_id, status="pending"), timeout=5)
    assert row["attempts"] == 1
    assert "timed out" in row["last_error"].lower() or "timeout" in row["last_error"].lower()
