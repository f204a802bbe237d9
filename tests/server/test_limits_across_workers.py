"""Rate limits and the login back-off on real gunicorn (2 gthread workers) with Redis: one count
for every worker, not one per worker (RL-1, RL-2, RL-4, F13). Each request opens a fresh
connection, so both workers answer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import PASSWORD
from tests.server.conftest import ADMIN_EMAIL, Server, request_json, unique

# A Redis database of this module's own per xdist worker (tests/app/auth uses 1-14).
REDIS_URI = (
    f"redis://127.0.0.1:6379/{15 - int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0) % 2}"
)
GUNICORN_ENV = {
    "RATELIMIT_ENABLED": "true",
    "RATELIMIT_STORAGE_URI": REDIS_URI,
    "RATELIMIT_SIGNUP": "5/minute",
    "RATELIMIT_LOGIN": "100/minute",  # out of the back-off test's way
}


@pytest.fixture(scope="module", autouse=True)
def empty_redis() -> Iterator[None]:
    redis.Redis.from_url(REDIS_URI).flushdb()
    yield
    redis.Redis.from_url(REDIS_URI).flushdb()


def test_the_sign_up_limit_is_one_count_for_both_workers(server: Server) -> None:
    answers = [
        request_json(
            server,
            "POST",
            "/api/v1/auth/signup",
            {"email": f"{unique('limited.')}@example.com", "password": PASSWORD},
        )
        for _ in range(7)
    ]

    statuses = [status for status, _, _ in answers]
    assert statuses == [201] * 5 + [429, 429], statuses  # per worker it would be 10
    headers = answers[-1][1]
    assert 0 < int(headers["Retry-After"]) <= 60
    assert answers[-1][2]["error"]["code"] == "rate_limited"


def test_the_login_back_off_is_one_count_for_both_workers(server: Server) -> None:
    """RL-2: the eleventh attempt after ten failures waits, whichever worker takes it; the
    same for an unknown login (EN-4)."""
    for login in (ADMIN_EMAIL, f"{unique('ghost.')}@example.com"):  # the seeded admin exists
        body = {"login": login, "password": "not the password at all"}
        statuses = [request_json(server, "POST", "/api/v1/auth/login", body)[0] for _ in range(11)]
        assert statuses == [401] * 10 + [429], (login, statuses)
