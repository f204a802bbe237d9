"""deploy/nginx/ in front of gunicorn (docs/deployment.md "nginx in front"): what authapp believes
from it and what it refuses before gunicorn sees a byte. The slow-client, abuse and flood scenarios
through it are in tests/faults/test_behind_nginx.py (`make faults`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import PASSWORD
from tests.server.conftest import (
    Server,
    all_at_once,
    bearer,
    describe,
    request_json,
    unique,
)
from tests.server.nginx import another_client, nginx_in_front

GUNICORN_ENV = {"TRUSTED_PROXIES": "127.0.0.1"}  # nginx's address, as authapp.conf says
LOGIN = "/api/v1/auth/login"


@pytest.fixture(scope="module")
def front(server: Server) -> Iterator[Server]:
    with nginx_in_front(server) as front:
        yield front


def test_authapp_records_the_client_nginx_saw_not_the_one_it_claims(front: Server) -> None:
    """RL-3: nginx replaces a client-sent X-Forwarded-For with the socket peer, and authapp
    (TRUSTED_PROXIES=nginx) takes that for the client: limits and sessions see the real one."""
    client = another_client(front)
    forged = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
    body = {"email": f"{unique('front.')}@example.com", "password": PASSWORD}
    status, _, signed_up = request_json(client, "POST", "/api/v1/auth/signup", body, forged)
    assert status == 201, signed_up

    status, _, listed = request_json(
        client,
        "GET",
        "/api/v1/settings/sessions",
        headers=bearer(signed_up["access_token"]) | forged,
    )

    assert status == 200, listed
    assert [session["ip"] for session in listed["sessions"]] == ["127.0.0.2"]


def test_a_body_over_the_limit_is_refused_by_nginx_in_the_envelope(
    front: Server, server: Server
) -> None:
    request_id = unique("big-body-")
    status, headers, body = request_json(
        front,
        "POST",
        "/api/v1/auth/signup",
        {"email": "x@example.com", "password": "p" * 70_000},
        {"X-Request-ID": request_id},
    )

    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "error": {"code": "payload_too_large", "message": "The request body is too large."},
        "request_id": request_id,
    }
    assert headers["X-Request-ID"] == request_id
    assert request_id not in server.logs()  # gunicorn never saw it


def test_a_password_flood_from_one_client_is_429_at_nginx_and_others_still_log_in(
    front: Server,
) -> None:
    """Per client, 5 password checks a second (bursts of 10) reach authapp; the rest are
    `429 rate_limited` with Retry-After, and another client is not held by them."""

    def wrong() -> dict[str, str]:  # unknown accounts: no per-login back-off builds up
        return {"login": f"{unique('ghost.')}@example.com", "password": "not the password"}

    answers = all_at_once(30, lambda: request_json(front, "POST", LOGIN, wrong()))
    other = request_json(another_client(front), "POST", LOGIN, wrong())

    statuses = sorted(a[0] for a in answers if not isinstance(a, BaseException))
    assert len(statuses) == 30, describe(answers)
    assert set(statuses) == {401, 429}, describe(answers)
    assert statuses.count(401) <= 12, describe(answers)  # 1 + a burst of 10, + 1 s of rate
    for status, headers, body in (a for a in answers if not isinstance(a, BaseException)):
        if status == 429:
            assert headers["Retry-After"] == "1"
            assert body["error"]["code"] == "rate_limited", json.dumps(body)
    assert other[0] == 401, other
