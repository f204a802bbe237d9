"""SIGNUP_MODE (docs/api.md "Sign-up policy and verified email"): `open` signs anyone up as
before; `closed` and, until invitations exist, `invite` refuse every sign-up with
`403 signup_closed`, before the body is judged, and operators still create accounts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from authapp.models import User
from authapp.platform import config
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, build_app

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"


def accounts(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def test_sign_up_is_open_by_default(app, client):
    response = client.post(SIGNUP, json={"email": "new@example.com", "password": PASSWORD})

    assert app.config["SIGNUP_MODE"] == "open"
    assert response.status_code == 201
    assert {"access_token", "refresh_token"} <= set(response.json)


@pytest.mark.config(SIGNUP_MODE="closed")
def test_closed_sign_up_is_403_signup_closed_and_creates_nothing(app, client, mailbox):
    before = accounts(app)

    response = client.post(SIGNUP, json={"email": "new@example.com", "password": PASSWORD})

    assert response.status_code == 403
    error = response.json["error"]
    assert error["code"] == "signup_closed"
    assert "closed" in error["message"]
    assert "access_token" not in response.json
    assert accounts(app) == before
    assert len(mailbox.to("new@example.com")) == 0


@pytest.mark.config(SIGNUP_MODE="invite")
def test_invite_only_refuses_like_closed_and_says_an_invitation_is_needed(app, client):
    before = accounts(app)

    response = client.post(SIGNUP, json={"email": "new@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "signup_closed"
    assert "invitation" in response.json["error"]["message"]
    assert accounts(app) == before


@pytest.mark.config(SIGNUP_MODE="closed")
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "not-an-email", "password": "short"},
        {"email": "a\x00b@example.com", "password": PASSWORD},
        {"email": "x" * 5000, "password": "p" * 5000},
        {"email": ["ada@example.com"], "password": {"nested": True}},
        {"email": "ada@example.com", "password": PASSWORD, "is_admin": True},
        ["not", "an", "object"],
        "\ud800",
    ],
)
def test_closed_sign_up_refuses_before_judging_the_body(client, body):
    """A closed sign-up answers 403 whatever the body: a 422 would only say which fields a form
    nobody may send got wrong. Hostile bodies never reach a 500."""
    response = client.post(SIGNUP, json=body)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "signup_closed"


@pytest.mark.config(SIGNUP_MODE="closed")
def test_closed_sign_up_still_refuses_broken_json_first(client):
    response = client.post(SIGNUP, data=b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


@pytest.mark.config(SIGNUP_MODE="closed")
@pytest.mark.parametrize(
    "command",
    [
        ["create-user", "--email", "op@example.com", "--password", PASSWORD],
        ["users", "create", "op@example.com", "--password-stdin"],
    ],
)
def test_operators_still_create_accounts_when_sign_up_is_closed(app, client, command):
    result = app.test_cli_runner().invoke(args=command, input=f"{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    login = client.post(LOGIN, json={"login": "op@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.json
    assert login.json["user"]["email_verified"] is True


@pytest.mark.config(SIGNUP_MODE="invite")
def test_operators_still_create_accounts_when_sign_up_needs_an_invitation(app, client):
    result = app.test_cli_runner().invoke(
        args=["create-user", "--email", "op@example.com", "--password", PASSWORD]
    )

    assert result.exit_code == 0, result.output
    login = client.post(LOGIN, json={"login": "op@example.com", "password": PASSWORD})
    assert login.status_code == 200


@pytest.mark.parametrize("value", ["sometimes", "Open", "CLOSED", "invited", " open", ""])
def test_an_unknown_signup_mode_stops_the_start(database_url, monkeypatch, value):
    monkeypatch.setenv("SIGNUP_MODE", value)

    with pytest.raises(config.ConfigError, match="SIGNUP_MODE") as raised:
        build_app(database_url)

    assert "\n" not in str(raised.value.message)
    assert "open, closed, invite" in str(raised.value.message)


@pytest.mark.parametrize("value", ["open", "closed", "invite"])
def test_each_signup_mode_is_read_from_the_environment(tmp_path, monkeypatch, value):
    monkeypatch.setenv("AUTHAPP_ENV", "testing")
    monkeypatch.setenv("SIGNUP_MODE", value)

    assert config.load(str(tmp_path))["SIGNUP_MODE"] == value


@pytest.mark.config(SIGNUP_MODE="sometimes")
def test_a_mode_that_slipped_past_the_parser_fails_closed(client):
    """Overrides are not parsed (tests set typed values): anything but `open` refuses."""
    response = client.post(SIGNUP, json={"email": "new@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "signup_closed"


def test_the_openapi_document_lists_the_refusal_and_the_answer_without_tokens(client):
    document = client.get("/api/openapi.json").json
    signup = document["paths"][SIGNUP]["post"]["responses"]
    codes = document["components"]["schemas"]["ForbiddenBody"]["properties"]["code"]["enum"]

    assert signup["403"] == {"$ref": "#/components/responses/FORBIDDEN"}
    assert set(signup) >= {"201", "202", "409", "422"}
    assert signup["202"]["content"]["application/json"]["schema"]["$ref"].endswith("AcceptedOut")
    assert {"signup_closed", "email_unverified"} <= set(codes)
