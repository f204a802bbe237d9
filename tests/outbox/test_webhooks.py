"""Webhooks against a real HTTP receiver: signed events, retries, SSRF rules, breaker, timeouts.

CF-2 (https only, no private targets checked after DNS, no redirects, `t=,v1=` HMAC, a stable
delivery id), F5 (a receiver that hangs, answers 500 or redirects), DESIGN rule 3 (outbox).
The signature is verified here by recomputing HMAC-SHA256 with the secret the API showed once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.delivery import outbox
from authapp.models import OutboxMessage
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header, confirm_email, marker_settings, seeded_app
from tests.servers import (
    Delivery,
    Mailbox,
    Receiver,
    SmtpServer,
    Tarpit,
    wait_for,
    webhook_receiver,
)

AUTH = "/api/v1/auth"
SETTINGS = "/api/v1/settings"
ORGANIZATION = f"{SETTINGS}/organization"
PING = f"{SETTINGS}/webhooks/test"
PRIVATE = pytest.mark.config(WEBHOOK_ALLOW_PRIVATE=True)
NEW_PASSWORD = "another long passphrase for the test"
RESET_LINK = r"/reset-password\?token=([A-Za-z0-9_-]+)"


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


def drain(app: Flask) -> dict[str, int]:
    with app.app_context():
        return outbox.drain()


def ping(client: FlaskClient, owner: Owner) -> str:
    response = client.post(PING, headers=owner.headers)
    assert response.status_code == 202, response.json
    return response.json["delivery_id"]


def set_clock(client: FlaskClient, seconds: int) -> None:
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200, response.json


def set_webhook(client: FlaskClient, owner: Owner, url: str | None) -> Any:
    return client.patch(ORGANIZATION, json={"webhook_url": url}, headers=owner.headers)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as peer:
        yield peer


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


@pytest.fixture
def owner(client: FlaskClient) -> Owner:
    """The owner of a new organization "Hooks" (address confirmed), without a webhook yet."""
    return sign_up_owner(client, "Hooks")


@pytest.fixture
def hooked(client: FlaskClient, owner: Owner, receiver: Receiver) -> Owner:
    """`owner` whose organization posts to `receiver` (needs WEBHOOK_ALLOW_PRIVATE)."""
    response = set_webhook(client, owner, receiver.url)
    assert response.status_code == 200, response.json
    owner.secret = response.json["webhook_secret"]
    return owner


@pytest.fixture
def mailing(app: Flask, smtp: SmtpServer) -> SmtpServer:
    """`app` sends its mail to the `smtp` server of tests/outbox/conftest.py (read at send)."""
    app.config["SMTP_URL"] = smtp.url
    return smtp


# --- the secret and the settings ------------------------------------------------------------


@PRIVATE
def test_first_webhook_url_returns_the_secret_once(client, owner, receiver):
    """CF-2: the signing secret is shown in the answer that first sets a URL, never again."""
    first = set_webhook(client, owner, receiver.url)

    assert first.status_code == 200, first.json
    secret = first.json["webhook_secret"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{32,}", secret)
    assert first.json["webhook_url"] == receiver.url

    second = set_webhook(client, owner, receiver.url + "/v2")
    assert second.status_code == 200, second.json
    assert "webhook_secret" not in second.json
    assert second.json["webhook_url"] == receiver.url + "/v2"
    shown = client.get(ORGANIZATION, headers=owner.headers)
    assert shown.status_code == 200
    assert shown.json["webhook_url"] == receiver.url + "/v2"
    assert "webhook_secret" not in shown.json
    assert secret not in shown.get_data(as_text=True)

    owner.secret = secret  # the second PATCH kept it: deliveries still verify with it
    delivery_id = ping(client, owner)
    delivery = arrival(receiver, "ping")
    assert delivery.path == "/hooks/v2"
    assert assert_signed_event(delivery, "ping", owner)["id"] == delivery_id


# --- every event arrives, signed --------------------------------------------------------------


@PRIVATE
def test_ping_arrives_signed_with_its_delivery_id(app, client, hooked, receiver):
    """CF-2: X-Authapp-Delivery is the body's id and the 202's delivery_id."""
    delivery_id = ping(client, hooked)

    body = assert_signed_event(arrival(receiver, "ping"), "ping", hooked)

    assert body["id"] == delivery_id
    assert wait_for(settled(app, delivery_id, status="sent"))["attempts"] == 1


@PRIVATE
def test_sign_up_into_the_default_organization_sends_user_signed_up(
    client, make_user, login, receiver
):
    """Sign-up without organization_name joins the default organization, whose hook fires."""
    root = make_user(email="root@example.com", role_names=("owner",))
    pair = login(root)
    admin = Owner(
        root["id"],
        root["email"],
        pair["user"]["organization"]["id"],
        pair["access_token"],
        pair["refresh_token"],
    )
    response = set_webhook(client, admin, receiver.url)
    assert response.status_code == 200, response.json
    admin.secret = response.json["webhook_secret"]

    signed_up = client.post(
        f"{AUTH}/signup", json={"email": "newcomer@example.com", "password": PASSWORD}
    )

    assert signed_up.status_code == 201, signed_up.json
    assert signed_up.json["user"]["organization"]["id"] == admin.organization_id
    body = assert_signed_event(arrival(receiver, "user.signed_up"), "user.signed_up", admin)
    assert body["data"]["user_id"] == signed_up.json["user"]["id"]


@PRIVATE
def test_password_change_sends_user_password_changed(client, hooked, receiver):
    response = client.post(
        f"{SETTINGS}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=hooked.headers,
    )

    assert response.status_code == 204, response.json
    delivery = arrival(receiver, "user.password_changed")
    body = assert_signed_event(delivery, "user.password_changed", hooked)
    assert body["data"]["user_id"] == hooked.id


@PRIVATE
def test_password_reset_sends_user_password_changed(client, hooked, receiver, mailing):
    """RS-3: a reset is a password change for the organization's receiver too."""
    forgot = client.post(f"{AUTH}/password/forgot", json={"email": hooked.email})
    assert forgot.status_code == 202

    def reset_link() -> str | None:
        for message in mailing.mailbox.to(hooked.email):
            found = re.search(RESET_LINK, Mailbox.text(message))
            if found:
                return found.group(1)
        return None

    token = wait_for(reset_link)
    reset = client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert reset.status_code == 204, reset.json
    delivery = arrival(receiver, "user.password_changed")
    body = assert_signed_event(delivery, "user.password_changed", hooked)
    assert body["data"]["user_id"] == hooked.id


@PRIVATE
def test_disabling_a_member_sends_user_disabled(client, make_user, hooked, receiver):
    member = make_user(email="member@hooks.example", organization=hooked.organization_id)

    response = client.patch(
        f"{SETTINGS}/members/{member['id']}", json={"is_active": False}, headers=hooked.headers
    )

    assert response.status_code == 200, response.json
    body = assert_signed_event(arrival(receiver, "user.disabled"), "user.disabled", hooked)
    assert body["data"]["user_id"] == member["id"]


@PRIVATE
def test_refresh_replay_after_the_grace_window_sends_session_reuse_detected(
    client, hooked, receiver
):
    """RT-3 seen from the receiver: the replayed parent revokes the session and tells it."""
    rotated = client.post(f"{AUTH}/refresh", json={"refresh_token": hooked.refresh_token})
    assert rotated.status_code == 200, rotated.json
    set_clock(client, 11)  # past REFRESH_REUSE_GRACE_SECONDS (10)

    replay = client.post(f"{AUTH}/refresh", json={"refresh_token": hooked.refresh_token})

    assert replay.status_code == 401
    assert replay.json["error"]["code"] == "token_reused"
    delivery = arrival(receiver, "session.reuse_detected")
    body = assert_signed_event(delivery, "session.reuse_detected", hooked)
    assert body["data"]["user_id"] == hooked.id
    assert body["data"]["session_id"]


@PRIVATE
def test_api_key_creation_and_revocation_send_events(client, hooked, receiver):
    created = client.post(
        f"{SETTINGS}/api-keys",
        json={"name": "ci", "scopes": ["users:read"]},
        headers=hooked.headers,
    )
    assert created.status_code == 201, created.json
    key_id = created.json["id"]
    revoked = client.delete(f"{SETTINGS}/api-keys/{key_id}", headers=hooked.headers)
    assert revoked.status_code == 204

    made = assert_signed_event(arrival(receiver, "api_key.created"), "api_key.created", hooked)
    gone = assert_signed_event(arrival(receiver, "api_key.revoked"), "api_key.revoked", hooked)
    assert made["data"]["api_key_id"] == key_id
    assert made["data"]["scopes"] == ["users:read"]
    assert gone["data"]["api_key_id"] == key_id
    assert made["id"] != gone["id"]
    for body in (made, gone):  # AU-2: the key itself never leaves
        assert created.json["key"] not in str(body)


@PRIVATE
def test_rotated_secret_signs_the_next_delivery_and_the_old_one_stops(client, hooked, receiver):
    """CF-2: after POST /webhooks/secret only the new secret verifies."""
    old = hooked.secret
    rotated = client.post(f"{SETTINGS}/webhooks/secret", headers=hooked.headers)
    assert rotated.status_code == 200, rotated.json
    new = rotated.json["webhook_secret"]
    assert new.startswith("whsec_")
    assert new != old

    ping(client, hooked)
    delivery = arrival(receiver, "ping")

    assert signed_with(delivery, new)
    assert not signed_with(delivery, old)
    assert "webhook_secret" not in client.get(ORGANIZATION, headers=hooked.headers).json


@PRIVATE
def test_organization_without_webhook_url_gets_no_webhook_rows(app, client, make_user, owner):
    member = make_user(email="member@hooks.example", organization=owner.organization_id)
    created = client.post(
        f"{SETTINGS}/api-keys", json={"name": "ci", "scopes": ["users:read"]}, headers=owner.headers
    )
    assert created.status_code == 201
    assert client.delete(f"{SETTINGS}/api-keys/{created.json['id']}", headers=owner.headers)
    disabled = client.patch(
        f"{SETTINGS}/members/{member['id']}", json={"is_active": False}, headers=owner.headers
    )
    assert disabled.status_code == 200
    changed = client.post(
        f"{SETTINGS}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=owner.headers,
    )
    assert changed.status_code == 204

    assert webhook_rows(app) == []


@PRIVATE
def test_webhook_test_without_url_is_409(client, owner):
    response = client.post(PING, headers=owner.headers)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "webhook_not_configured"


@PRIVATE
def test_removing_the_url_stops_events_and_a_new_url_gets_a_new_secret(
    app, client, hooked, receiver
):
    removed = set_webhook(client, hooked, None)
    assert removed.status_code == 200
    assert removed.json["webhook_url"] is None
    assert client.post(PING, headers=hooked.headers).status_code == 409

    again = set_webhook(client, hooked, receiver.url)

    assert again.status_code == 200
    assert again.json["webhook_secret"] != hooked.secret
    assert webhook_rows(app) == []


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
        # Issue 15 item 11: IPv6 forms that reach IPv4 addresses, refused on every Python.
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
    """Issue 15 item 11: a name that already resolves to a private address is refused when the
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
    """Issue 15 item 11. The address is a public literal: nothing is looked up or dialled."""
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
    """F5, DESIGN rule 2: the request that causes the event does not wait for the receiver."""
    receiver.answer(200, delay=3)

    started = time.perf_counter()
    delivery_id = ping(client, hooked)
    elapsed = time.perf_counter() - started

    assert elapsed < 2, f"POST /webhooks/test took {elapsed:.2f} s"
    row = wait_for(settled(app, delivery_id, status="pending"), timeout=5)
    assert row["attempts"] == 1
    assert "timed out" in row["last_error"].lower() or "timeout" in row["last_error"].lower()
