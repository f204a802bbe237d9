"""The host's own routes behind authapp's guards, tested through the authapp.testing plugin
(fixtures `client`, `make_user`, `login`, `mailbox`; docs/testing.md)."""

from __future__ import annotations

SIGNUP = "/auth/api/v1/auth/signup"
PASSWORD = "a long passphrase nobody guesses"


def test_whoami_wants_a_login(client, make_user, login):
    user = make_user(email="ada@example.com")

    anonymous = client.get("/whoami")
    logged_in = client.get("/whoami", headers=login(user))

    assert anonymous.status_code == 401
    assert anonymous.json["error"]["code"] == "missing_token"
    assert logged_in.status_code == 200
    assert logged_in.json["email"] == "ada@example.com"


def test_reports_want_the_permission(client, make_user, login):
    member = make_user(email="member@example.com")
    reader = make_user(email="reader@example.com", permissions=["reports:read"])

    refused = client.get("/reports", headers=login(member))
    allowed = client.get("/reports", headers=login(reader))

    assert client.get("/reports").status_code == 401
    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json == {"reports": []}


def test_the_public_routes_stay_the_hosts(client):
    home = client.get("/")
    notes = client.get("/notes")  # the host's own table, made by authapp_prepare_database
    missing = client.get("/no-such-page")

    assert home.status_code == 200
    assert "Content-Security-Policy" not in home.headers  # authapp's headers are for its paths
    assert notes.status_code == 200
    assert notes.json == []
    assert missing.json == {"detail": "not here"}  # the host's 404, not authapp's envelope


def test_sign_up_mails_a_verification_link_under_the_prefix(app, client, mailbox):
    response = client.post(SIGNUP, json={"email": "new@example.com", "password": PASSWORD})

    message = mailbox.last(to="new@example.com")
    [link] = [x for x in mailbox.links(message) if "token=" in x]
    verified = client.post(
        "/auth/api/v1/auth/email/verify", json={"token": link.partition("token=")[2]}
    )

    assert response.status_code == 201
    assert message["Subject"] == "Confirm your email address"
    assert link.startswith(app.config["PUBLIC_BASE_URL"] + "/auth/verify-email?token=")
    assert verified.status_code == 204


def test_each_test_starts_from_an_empty_database(client, make_user, mailbox):
    make_user(email="ada@example.com")  # the same address as the first test: no conflict

    assert len(mailbox) == 0
