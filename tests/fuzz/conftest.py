"""The caller the fuzz acts as: a seeded organization's owner, with fresh credentials on demand.

`caller.headers(kind)` is a bearer header for the owner ("bearer"), an `X-API-Key` with every
scope ("api_key"), or nothing ("none"). Any successful call that changes state may have ended
the caller's session (logout, logout-all, deleting the current session, a password change) or
revoked its key, so after one the next case logs in and mints a key again; reads keep them.
`caller.known` holds real values (the owner's login and password, ids of a member, a custom
role, a key, the current session) that a case may use instead of random ones, so operations
on existing resources are exercised beyond 404.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient

from authapp.delivery import offload
from tests.app.settings.conftest import BUILTIN_PERMISSIONS
from tests.conftest import PASSWORD, auth_header

OWNER = "owner@fuzz.example"
SETTINGS = "/api/v1/settings"
# Answers only the view (or the arguments it validates) gives: past the guard and platform/hooks.py.
REACHED_THE_VIEW = {200, 201, 202, 204, 404, 409, 422}
ALL_SCOPES = list(BUILTIN_PERMISSIONS)


class Caller:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.password = PASSWORD
        self.statuses: Counter[int] = Counter()  # of the operation's own method
        self.other_methods = 0
        self._pair: dict[str, Any] | None = None
        self._key: dict[str, Any] | None = None
        self.ids: dict[str, str] = {}

    def headers(self, kind: str) -> dict[str, str]:
        if kind == "bearer":
            return auth_header(self.pair()["access_token"])
        if kind == "api_key":
            return {"X-API-Key": self.key()["key"]}
        return {}

    def pair(self) -> dict[str, Any]:
        if self._pair is None:
            answer = self.client.post(
                "/api/v1/auth/login", json={"login": OWNER, "password": self.password}
            )
            assert answer.status_code == 200, answer.json
            self._pair = answer.json
        return self._pair

    def key(self) -> dict[str, Any]:
        if self._key is None:
            answer = self.client.post(
                f"{SETTINGS}/api-keys",
                json={"name": "fuzz", "scopes": ALL_SCOPES},
                headers=auth_header(self.pair()["access_token"]),
            )
            assert answer.status_code == 201, answer.json
            self._key = answer.json
        return self._key

    def known(self) -> dict[str, str]:
        """Real values by parameter or field name."""
        access = self.pair()["access_token"]
        claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
        return self.ids | {
            "login": OWNER,
            "password": self.password,
            "current_password": self.password,
            "refresh_token": self.pair()["refresh_token"],
            "key_id": self.key()["id"],
            "session_id": claims["sid"],
        }

    def record(self, case: schemathesis.Case, status: int) -> None:
        """After a case: let its background work finish, note its status, and forget
        credentials a change may have ended."""
        # Mails the case caused (a new-login notice, a verification link) are composed on the
        # offload pool, and the stdlib's email package takes MIME boundaries from the global
        # `random`: Hypothesis must not see that state move while it draws the next case.
        offload.shutdown(self.client.application)
        method = case.method.upper()
        if method != case.operation.method.upper():
            self.other_methods += 1  # the coverage phase tries others: 405 (OPTIONS: 200)
            return
        self.statuses[status] += 1
        if method == "GET" or not 200 <= status < 300:
            return
        if isinstance(case.body, dict) and isinstance(case.body.get("new_password"), str):
            self.password = case.body["new_password"]  # a password change went through
        self._pair = self._key = None


@pytest.fixture
def caller(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., dict[str, Any]],
    request: pytest.FixtureRequest,
) -> Iterator[Caller]:
    """The owner of the default organization, which also has a member and a custom role."""
    make_user(email=OWNER, role_names=("owner",))
    member = make_user(email="member@fuzz.example")
    fuzzing = Caller(client)
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "auditor", "permissions": ["audit:read"]},
        headers=fuzzing.headers("bearer"),
    )
    assert role.status_code == 201, role.json
    fuzzing.ids = {"user_id": member["id"], "role_id": role.json["id"]}
    yield fuzzing
    tally = dict(sorted(fuzzing.statuses.items())) | {"other methods": fuzzing.other_methods}
    request.node.user_properties.append(("fuzz_statuses", tally))
    # Each operation's own code ran, not only the guard and the body checks in front of it.
    assert set(fuzzing.statuses) & REACHED_THE_VIEW, (
        f"no case got past the guard: {fuzzing.statuses}"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How much the fuzz did: cases per operation and the statuses they got (with -v), and the
    total. Shown when pytest is pointed at tests/fuzz (under xdist only the conftests loaded at
    start-up report, and a whole-suite run loads this one in the workers only)."""
    tallies = [
        (report.head_line, dict(report.user_properties)["fuzz_statuses"])
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "teardown"
        and "fuzz_statuses" in dict(report.user_properties)
    ]
    if not tallies:
        return
    if terminalreporter.verbosity > 0:
        for name, statuses in sorted(tallies):
            terminalreporter.write_line(f"{name}: {statuses}")
    total = sum(sum(statuses.values()) for _name, statuses in tallies)
    terminalreporter.write_line(f"schemathesis: {total} cases over {len(tallies)} operations")
