"""Sessions on real gunicorn (2 gthread workers): what one worker decides, every worker honours.

docs/api.md "Tokens and sessions", docs/architecture.md "Time". F9/RT-3 (many concurrent
refreshes with one token: exactly one rotation, no 5xx, the grace window answers the others
with the session's current token), SE-1 (logout), SE-2 (logout-all): revocation is immediate on
every worker; the testing clock is shared by every worker. Every request goes over a fresh
connection so both workers serve; every test uses its own account and resets the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.server.conftest import (
    Server,
    bearer,
    describe,
    log_in,
    refresh_race,
    request_json,
    sign_up,
)

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
RACERS = 30
ROUNDS = 3
ATTEMPTS = 10  # fresh connections per check, so both workers answer
DAY = 86400
ACCESS_TOKEN_TTL = 900  # docs/configuration.md: 15 minutes by default
JWT_LEEWAY_SECONDS = 30  # docs/configuration.md: the default skew tolerated on `exp`


def jti_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def set_clock(server: Server, seconds: int) -> None:
    status, _, body = request_json(server, "POST", "/_testing/clock", {"offset_seconds": seconds})
    assert status == 200, body
    assert body == {"offset_seconds": seconds}


@pytest.fixture
def clock(server: Server) -> Iterator[Any]:
    """`clock(seconds)` moves the shared testing clock; it is back at 0 after the test."""
    try:
        yield lambda seconds: set_clock(server, seconds)
    finally:
        set_clock(server, 0)


def assert_every_answer(
    server: Server, method: str, path: str, status: int, code: str | None = None, **kwargs: Any
) -> None:
    answers = [request_json(server, method, path, **kwargs) for _ in range(ATTEMPTS)]
    statuses = [answer[0] for answer in answers]
    bodies = [answer[2] for answer in answers]
    assert statuses == [status] * ATTEMPTS, bodies
    if code is not None:
        assert [body["error"]["code"] for body in bodies] == [code] * ATTEMPTS, bodies


def test_concurrent_refreshes_with_one_token_rotate_exactly_once(server):
    """F9, RT-3 (grace window 10 s): 30 racers, all 200 with one new jti, which works once more."""
    for round_number in range(ROUNDS):
        token = sign_up(server)["refresh_token"]

        answers = refresh_race(server, token, RACERS)

        seen = describe(answers)
        assert not [a for a in answers if isinstance(a, BaseException)], (round_number, seen)
        statuses = [answer[0] for answer in answers]
        assert not [s for s in statuses if s >= 500], (round_number, seen)
        assert statuses == [200] * RACERS, (round_number, seen)
        rotated = {jti_of(answer[2]["refresh_token"]) for answer in answers}
        assert len(rotated) == 1, (round_number, rotated)
        assert rotated != {jti_of(token)}

        status, _, body = request_json(
            server, "POST", REFRESH, {"refresh_token": answers[0][2]["refresh_token"]}
        )
        assert status == 200, (round_number, body)
        assert jti_of(body["refresh_token"]) not in rotated | {jti_of(token)}


def test_logout_revokes_that_session_on_every_worker_and_only_that_one(server):
    """SE-1: the logged-out session's access token is 401 token_revoked on the very next request."""
    email = sign_up(server)["user"]["email"]
    a, b = log_in(server, email), log_in(server, email)

    status, _, body = request_json(
        server, "POST", "/api/v1/auth/logout", headers=bearer(a["access_token"])
    )

    assert status == 204, body
    assert_every_answer(server, "GET", ME, 401, "token_revoked", headers=bearer(a["access_token"]))
    assert_every_answer(server, "GET", ME, 200, headers=bearer(b["access_token"]))
    status, _, body = request_json(server, "POST", REFRESH, {"refresh_token": a["refresh_token"]})
    assert status == 401, body
    assert body["error"]["code"] == "token_revoked"


def test_logout_all_revokes_every_session_on_every_worker(server):
    """SE-2: every session of the user, the signup's included, is revoked at once."""
    signed_up = sign_up(server)
    email = signed_up["user"]["email"]
    pairs = [signed_up, log_in(server, email), log_in(server, email)]

    status, _, body = request_json(
        server, "POST", "/api/v1/auth/logout-all", headers=bearer(pairs[1]["access_token"])
    )

    assert status == 204, body
    for pair in pairs:
        assert_every_answer(
            server, "GET", ME, 401, "token_revoked", headers=bearer(pair["access_token"])
        )
        status, _, body = request_json(
            server, "POST", REFRESH, {"refresh_token": pair["refresh_token"]}
        )
        assert status == 401, body
        assert body["error"]["code"] == "token_revoked"


def test_the_testing_clock_moves_access_expiry_for_every_worker(server, clock):
    """docs/architecture.md "Time": one offset, read by every worker; RT-4/JW-5 through gunicorn.

    901 s is past the 15-minute lifetime but inside the documented 30 s leeway
    (docs/configuration.md `JWT_LEEWAY_SECONDS`), so the token is refused from 900 + 30 + 1 s on.
    """
    access = sign_up(server)["access_token"]
    assert_every_answer(server, "GET", ME, 200, headers=bearer(access))

    clock(ACCESS_TOKEN_TTL + 1)
    assert_every_answer(server, "GET", ME, 200, headers=bearer(access))

    clock(ACCESS_TOKEN_TTL + JWT_LEEWAY_SECONDS + 1)
    assert_every_answer(server, "GET", ME, 401, "token_expired", headers=bearer(access))

    clock(0)
    assert_every_answer(server, "GET", ME, 200, headers=bearer(access))


def test_refresh_token_expires_after_fourteen_idle_days_on_every_worker(server, clock):
    """RT-4 through gunicorn: 14 days and a second after sign-in, refresh is 401 token_expired."""
    email = sign_up(server)["user"]["email"]
    refresh = log_in(server, email)["refresh_token"]

    clock(14 * DAY + 1)

    assert_every_answer(
        server, "POST", REFRESH, 401, "token_expired", body={"refresh_token": refresh}
    )
