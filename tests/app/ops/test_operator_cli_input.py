"""`flask users ...` and the other commands with unknown or hostile arguments (a clean error,
never a traceback), and the groups' place under `flask authapp` in a host app."""

from __future__ import annotations

import pytest
from flask import Flask

from authapp.cli import commands
from tests.app.ops.operator_cli import refused
from tests.conftest import PASSWORD

# Unknown and hostile logins


@pytest.mark.parametrize("command", ["set-password", "disable", "enable", "revoke-sessions"])
def test_an_unknown_login_is_named(app, command):
    extra = ["--password-stdin"] if command == "set-password" else []

    error = refused(app, "users", command, "nobody@example.com", *extra, input=f"{PASSWORD}\n")

    assert "No account matches 'nobody@example.com'." in error


@pytest.mark.parametrize(
    "hostile",
    ["\udcff", "ada\x00@example.com", "ada\x1b[31m", "line\nbreak", "x" * 5000, "\u202e\x7f"],
    ids=["surrogate", "nul", "escape", "newline", "long", "del"],
)
@pytest.mark.parametrize(
    "args",
    [
        ["users", "set-password", "LOGIN", "--password-stdin"],
        ["users", "disable", "LOGIN"],
        ["users", "enable", "LOGIN"],
        ["users", "revoke-sessions", "LOGIN"],
        ["users", "list", "--organization", "LOGIN"],
        ["users", "create", "LOGIN", "--organization", "LOGIN", "--password-stdin"],
        ["disable-user", "LOGIN"],
        ["mfa", "reset", "LOGIN"],
    ],
    ids=lambda args: " ".join(a for a in args if a != "LOGIN" and not a.startswith("--")),
)
def test_hostile_input_is_a_clean_error(app, make_user, hostile, args):
    make_user(email="ada@example.com")

    error = refused(app, *[hostile if a == "LOGIN" else a for a in args], input=f"{PASSWORD}\n")

    assert error.startswith("Error: ")


@pytest.mark.parametrize("search", ["\udcff", "a\x00b", "x" * 300])
def test_a_hostile_search_is_a_clean_error(app, search):
    assert "search: " in refused(app, "users", "list", "--search", search)


def test_mounted_in_a_host_the_groups_are_under_flask_authapp():
    host = Flask("host")

    commands.init_app(host, group="authapp")

    group = host.cli.commands["authapp"]
    assert {"users", "outbox", "prune", "create-user", "disable-user"} <= set(group.commands)
    assert "users" not in host.cli.commands  # the host's own namespace stays free
    users = group.commands["users"].commands
    outbox = group.commands["outbox"].commands
    assert set(users) == {"list", "create", "set-password", "disable", "enable", "revoke-sessions"}
    assert set(outbox) == {"drain", "status", "retry-dead", "work"}
