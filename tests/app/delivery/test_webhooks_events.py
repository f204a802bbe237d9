"""Webhooks against a real HTTP receiver: the set-up these tests share, and why, is webhooks.py's
docstring.

This part: the secret and the settings, and every event arriving signed."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.app.delivery.webhooks import (
    AUTH,
    ORGANIZATION,
    PING,
    PRIVATE,
    SETTINGS,
    Owner,
    arrival,
    assert_signed_event,
    ping,
    set_webhook,
    settled,
    signed_with,
    webhook_rows,
)
from tests.conftest import PASSWORD
from tests.servers import Mailbox, wait_for

NEW_PASSWORD = "another long passphrase for the test"
RESET_LINK = r"/reset-password\?token=([A-Za-z0-9_-]+)"
CHANGE_LINK = r"/confirm-email-change\?token=([A-Za-z0-9_-]+)"


def set_clock(client: FlaskClient, seconds: int) -> None:
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200, response.json


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
def test_an_email_change_sends_user_email_changed(client, hooked, receiver, mailing):
    """EC-1: the receiver hears of the change when the link is used, not when it is asked."""
    body = {"new_email": "moved@example.net", "password": PASSWORD}
    asked = client.post(f"{SETTINGS}/email", json=body, headers=hooked.headers)
    assert asked.status_code == 202, asked.json

    def change_link() -> str | None:
        for message in mailing.mailbox.to("moved@example.net"):
            found = re.search(CHANGE_LINK, Mailbox.text(message))
            if found:
                return found.group(1)
        return None

    confirmed = client.post(f"{AUTH}/email/confirm-change", json={"token": wait_for(change_link)})

    assert confirmed.status_code == 204, confirmed.json
    delivery = arrival(receiver, "user.email_changed")
    event = assert_signed_event(delivery, "user.email_changed", hooked)
    assert event["data"] == {"user_id": hooked.id}


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
