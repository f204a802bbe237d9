"""`flask users ...`: accounts for operators, through the app's CLI runner on PostgreSQL."""

from __future__ import annotations

import pytest

from authapp.models import OutboxMessage, RefreshToken
from authapp.platform.extensions import db
from tests.app.ops.operator_cli import audit_events, ok, refused, run, user_row
from tests.conftest import PASSWORD, auth_header

NEW_PASSWORD = "an operator's new passphrase, long enough"
ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


def log_in(client, email, password=PASSWORD):
    return client.post(LOGIN, json={"login": email, "password": password})


# users list


def test_list_is_a_table_by_creation_with_a_count(app, make_user):
    make_user(email="first@example.com", username="first")
    make_user(email="second@example.com")

    lines = ok(app, "users", "list").splitlines()

    assert lines[0].split() == ["id", "email", "username", "verified", "disabled", "mfa", "created"]
    emails = [line.split()[1] for line in lines[1:-1]]
    assert emails == ["admin@example.com", "first@example.com", "second@example.com"]
    first = lines[2].split()
    assert first[2:6] == ["first", "yes", "no", "no"]
    assert lines[2].split()[0] == user_row(app, "first@example.com").id
    assert lines[-1] == "3 accounts"


def test_list_filters_by_organization_search_and_disabled(app, client, make_user):
    make_user(email="ada@example.com", username="lovelace")
    make_user(email="grace@example.com", full_name="Grace Hopper")
    signed_up = client.post(
        "/api/v1/auth/signup",
        json={"email": "owner@acme.example", "password": PASSWORD, "organization_name": "Acme"},
    )
    assert signed_up.status_code == 201
    ok(app, "users", "disable", "grace@example.com")

    in_acme = ok(app, "users", "list", "--organization", "Acme")
    searched = ok(app, "users", "list", "--search", "LOVE")
    by_name = ok(app, "users", "list", "--search", "hopper")
    disabled = ok(app, "users", "list", "--disabled")
    limited = ok(app, "users", "list", "--limit", "2")
    nothing = ok(app, "users", "list", "--search", "100%_")

    assert "owner@acme.example" in in_acme
    assert "ada@" not in in_acme
    assert in_acme.splitlines()[-1] == "1 account"
    assert "ada@example.com" in searched
    assert "grace@" not in searched
    assert "grace@example.com" in by_name
    assert "grace@example.com" in disabled
    assert "ada@" not in disabled
    assert disabled.splitlines()[1].split()[4] == "yes"
    assert limited.splitlines()[-1] == "4 accounts (first 2 of 4; --limit shows more)"
    assert nothing.strip() == "0 accounts"


def test_list_names_an_unknown_organization(app):
    assert "No organization matches 'Nope'" in refused(
        app, "users", "list", "--organization", "Nope"
    )


# users create and create-user


def test_create_prompts_twice_then_the_account_logs_in(app, client):
    output = ok(
        app, "users", "create", "op@example.com", "--username", "operator", "--role", "admin",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip

    assert "created user op@example.com" in output
    response = log_in(client, "operator")
    assert response.status_code == 200
    assert response.json["user"]["roles"] == ["admin"]
    assert response.json["user"]["email_verified"] is True
    assert audit_events(app, "user.created")[0]["actor"] == "system"


def test_create_reads_the_password_from_stdin(app, client):
    ok(app, "users", "create", "script@example.com", "--password-stdin", input=f"{PASSWORD}\n")

    assert log_in(client, "script@example.com").status_code == 200


def test_create_refuses_two_different_typings(app):
    result = run(app, "users", "create", "x@example.com", input=f"{PASSWORD}\n{PASSWORD}x\n" * 3)

    assert result.exit_code != 0
    assert "do not match" in result.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["not-an-email"], "email: Must be a valid email address."),
        (["x@example.com", "--username", "a b"], "username: Must be 3 to 32 letters"),
        (["x@example.com", "--role", "king"], "roles: Unknown role: king."),
        (["x@example.com", "--organization", "Nope"], "No organization matches 'Nope'."),
    ],
)
def test_create_explains_bad_input_one_line_each(app, args, line):
    error = refused(app, "users", "create", *args, "--password-stdin", input=f"{PASSWORD}\n")

    assert line in error
    assert "{" not in error
    assert "[" not in error


def test_create_refuses_a_bad_email_before_asking_for_the_password(app):
    result = run(app, "users", "create", "not-an-email")

    assert result.exit_code == 1
    assert "email: Must be a valid email address." in result.stderr
    assert "Password" not in result.output


def test_create_explains_a_weak_password_and_the_old_command_too(app):
    new = refused(app, "users", "create", "x@example.com", "--password-stdin", input="short\n")
    old = refused(app, "create-user", "--email", "bad", "--password", PASSWORD)

    assert "The password does not meet the policy." in new
    assert "password: Must be at least 15 characters" in new
    assert "email: Must be a valid email address." in old
    assert "{" not in old


def test_create_twice_is_refused(app, make_user):
    make_user(email="dup@example.com")

    error = refused(
        app, "users", "create", "DUP@example.com", "--password-stdin", input=f"{PASSWORD}\n"
    )

    assert "An account with this email already exists." in error


def test_create_with_nothing_on_stdin_is_refused(app):
    error = refused(app, "users", "create", "x@example.com", "--password-stdin", input="")

    assert "No password on standard input." in error


# users set-password


def test_set_password_then_the_new_one_logs_in_and_the_old_refresh_is_refused(
    app, client, make_user, login
):
    user = make_user(email="ada@example.com")
    pair = login(user)

    output = ok(app, "users", "set-password", "ADA@example.com", input=f"{NEW_PASSWORD}\n" * 2)

    assert output.splitlines()[-1] == "password set for ADA@example.com; 1 session revoked"
    assert NEW_PASSWORD not in output  # prompted without echo
    assert log_in(client, "ada@example.com").status_code == 401
    assert log_in(client, "ada@example.com", NEW_PASSWORD).status_code == 200
    refreshed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    assert refreshed.json["error"]["code"] == "token_revoked"
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 401
    events = audit_events(app, "password.set_by_operator")
    assert events == [{"actor": "system", "user_id": user["id"], "sessions_revoked": 1}]


def test_set_password_mails_the_owner(app, make_user):
    user = make_user(email="ada@example.com")

    ok(app, "users", "set-password", "ada@example.com", "--password-stdin",
       input=f"{NEW_PASSWORD}\n")  # fmt: skip

    with app.app_context():
        templates = [
            (m.payload["template"], m.payload["user_id"])
            for m in db.session.query(OutboxMessage).filter_by(kind="email")
        ]
    assert ("password_changed", user["id"]) in templates


def test_set_password_holds_to_the_policy(app, client, make_user):
    make_user(email="ada@example.com", full_name="Ada Lovelace")

    weak = refused(app, "users", "set-password", "ada@example.com", "--password-stdin",
                   input="short\n")  # fmt: skip
    own_name = refused(app, "users", "set-password", "ada@example.com", "--password-stdin",
                       input="lovelace lovelace lovelace\n")  # fmt: skip

    assert "password: Must be at least 15 characters" in weak
    assert "password: " in own_name
    assert log_in(client, "ada@example.com").status_code == 200  # unchanged


# users disable / enable


def test_disable_refuses_login_refresh_and_the_live_token_then_enable(
    app, client, make_user, login
):
    user = make_user(email="ada@example.com", username="ada")
    pair = login(user)

    disabled = ok(app, "users", "disable", "ada")
    denied = log_in(client, "ada@example.com")
    me = client.get(ME, headers=auth_header(pair["access_token"]))
    refreshed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    enabled = ok(app, "users", "enable", "ADA@example.com")
    again = ok(app, "users", "enable", "ada")

    assert "disabled ada@example.com" in disabled
    assert denied.status_code == 403
    assert denied.json["error"]["code"] == "account_disabled"
    assert me.status_code == 401
    assert refreshed.status_code == 401
    assert enabled.strip() == "enabled ADA@example.com"
    assert again.strip() == "ada was not disabled"
    assert log_in(client, "ada@example.com").status_code == 200
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 401
    assert [e["user_id"] for e in audit_events(app, "user.disabled")] == [user["id"]]
    assert [e["user_id"] for e in audit_events(app, "user.enabled")] == [user["id"]]


# users revoke-sessions


def test_revoke_sessions_ends_every_session_and_says_how_many(app, client, make_user, login):
    user = make_user(email="ada@example.com")
    pairs = [login(user), login(user)]
    other = make_user(email="grace@example.com")
    kept = login(other)

    output = ok(app, "users", "revoke-sessions", "ada@example.com")

    assert output.strip() == (
        "revoked 2 sessions of ada@example.com (2 live refresh tokens with them)"
    )
    for pair in pairs:
        assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 401
        refreshed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 401
    assert client.get(ME, headers=auth_header(kept["access_token"])).status_code == 200
    assert log_in(client, "ada@example.com").status_code == 200  # not disabled
    assert ok(app, "users", "revoke-sessions", "ada@example.com").startswith("revoked 1 session")
    assert audit_events(app, "sessions.revoked_by_operator")[0]["sessions_revoked"] == 2
    with app.app_context():
        assert db.session.query(RefreshToken).count() == 4  # revoked, not deleted (reuse checks)
