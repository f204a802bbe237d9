"""MFA fixtures: a logged-in user, and helpers that enrol them with codes computed by pyotp."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask.testing import FlaskClient

from tests.conftest import auth_header

STEP = 30
SECRET_SHOWN = re.compile(r'<code class="secret" data-testid="totp-secret">([A-Z2-7]+)</code>')


def code_at(secret: str, steps_from_now: int = 0) -> str:
    """The code an authenticator shows `steps_from_now` 30-second steps from now."""
    return pyotp.TOTP(secret).at(time.time() + steps_from_now * STEP)


def wrong_code(secret: str) -> str:
    """Six digits that are no code of the window (nor of the steps next to it)."""
    near = {code_at(secret, steps) for steps in range(-2, 3)}
    return next(code for code in (f"{d}" * 6 for d in range(10)) if code not in near)


def shown_secret(body: str) -> str:
    """The TOTP key on the set-up page's answer."""
    match = SECRET_SHOWN.search(body)
    assert match is not None, "no TOTP key on the page"
    return match.group(1)


class Account:
    """One user driven through the JSON API."""

    def __init__(self, client: FlaskClient, user: dict[str, Any], tokens: dict[str, Any]) -> None:
        self.client, self.user = client, user
        self.headers = auth_header(tokens["access_token"])
        self.secret: str | None = None
        self.recovery_codes: list[str] = []

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.post(f"/api/v1/settings{path}", json=body, headers=self.headers)

    def start(self) -> Any:
        response = self.post("/mfa/totp", {"password": self.user["password"]})
        if response.status_code == 200:
            self.secret = response.json["secret"]
        return response

    def confirm(self, code: str) -> Any:
        response = self.post("/mfa/totp/confirm", {"code": code})
        if response.status_code == 200:
            self.recovery_codes = response.json["recovery_codes"]
        return response

    def enrol(self) -> None:
        assert self.start().status_code == 200
        assert self.secret is not None
        response = self.confirm(code_at(self.secret))
        assert response.status_code == 200, response.json

    def disable(self, code: str, password: str | None = None) -> Any:
        body = {"password": password or self.user["password"], "code": code}
        return self.client.delete("/api/v1/settings/mfa/totp", json=body, headers=self.headers)

    def log_in(self, totp_code: str | None = None, **extra: Any) -> Any:
        body = {"login": self.user["email"], "password": self.user["password"], **extra}
        if totp_code is not None:
            body["totp_code"] = totp_code
        return self.client.post("/api/v1/auth/login", json=body)


@pytest.fixture
def account(
    client: FlaskClient,
    make_user: Callable[..., dict[str, Any]],
    login: Callable[[dict[str, Any]], dict[str, Any]],
) -> Account:
    user = make_user()
    return Account(client, user, login(user))
