"""authapp.testing, the pytest plugin authapp installs (docs/testing.md), on the whole app: the
pieces this suite's own fixtures reuse (make_user's permissions and organizations, the login,
the mailbox) and the factory option. examples/host_app/test_host_app.py runs the plugin's
own fixtures on a host app; tests/server/test_testing_plugin_installed.py runs that suite in a
fresh virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from authapp.testing.accounts import bearer, login_path
from authapp.testing.apps import load_factory
from examples.host_app.app import create_app as host_factory

MEMBERS = "/api/v1/settings/members"


def test_make_user_with_permissions_gets_a_role_holding_them(client, make_user, login):
    member = make_user(email="member@example.com")
    reader = make_user(email="reader@example.com", permissions=["users:read", "reports:read"])
    again = make_user(email="again@example.com", permissions=["reports:read", "users:read"])

    assert client.get(MEMBERS, headers=bearer(login(member))).status_code == 403
    assert client.get(MEMBERS, headers=bearer(login(reader))).status_code == 200
    me = client.get("/api/v1/auth/me", headers=bearer(login(again))).json["user"]
    assert {"reports:read", "users:read"} <= set(me["permissions"])
    assert reader.email == reader["email"] == "reader@example.com"


def test_make_user_makes_the_organization_it_names_once(client, make_user, login):
    first = make_user(email="first@example.com", organization="Acme")
    second = make_user(email="second@example.com", organization="Acme")

    orgs = {
        client.get("/api/v1/auth/me", headers=bearer(login(user))).json["user"]["organization"][
            "name"
        ]
        for user in (first, second)
    }

    assert orgs == {"Acme"}


def test_the_mailbox_holds_what_the_outbox_sent_during_the_test(client, mailbox):
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": "ada@example.com", "password": "a long passphrase nobody guesses"},
    )

    message = mailbox.last(to="ADA@example.com")
    [link] = [x for x in mailbox.links(message) if "/verify-email?token=" in x]

    assert response.status_code == 201
    assert message["Subject"] == "Confirm your email address"
    assert link.startswith("http://127.0.0.1:8000/verify-email?token=")
    assert len(mailbox.to("someone@example.com")) == 0
    with pytest.raises(AssertionError, match="no mail"):
        mailbox.last(to="someone@example.com")


def test_the_login_path_follows_the_prefix(app):
    assert login_path(app) == "/api/v1/auth/login"


def test_the_factory_option_names_a_function():
    assert load_factory("examples.host_app.app:create_app") is host_factory
    with pytest.raises(ValueError, match="package.module:function"):
        load_factory("examples.host_app.app")
    with pytest.raises(AttributeError):
        load_factory("examples.host_app.app:no_such_factory")


def test_the_plugin_is_inert_until_a_fixture_is_asked_for(tmp_path):
    """Loaded by every pytest run where authapp is installed: a suite that asks for none of its
    fixtures never imports the factory nor reaches the database, even unusable ones."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nauthapp_app_factory = no_such_package:create_app\n"
        "authapp_test_database_url = postgresql+psycopg2://nobody@127.0.0.1:1/none\n"
    )
    (tmp_path / "test_plain.py").write_text("def test_plain(tmp_path):\n    assert tmp_path\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AUTHAPP_"))}

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
