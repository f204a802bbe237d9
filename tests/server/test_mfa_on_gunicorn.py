"""Two-factor authentication on real gunicorn (2 gthread workers) with PostgreSQL and Redis: what
one worker accepts or spends, every worker knows (MF-2, MF-3, RL-4, F10, F13). Every request
opens a fresh connection, so both workers answer; codes are computed by pyotp."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from tests.app.mfa.conftest import code_at, wrong_code
from tests.conftest import PASSWORD
from tests.server.conftest import (
    Response,
    Server,
    all_at_once,
    bearer,
    describe,
    request_json,
    sign_up,
)

# A Redis database of this module's own per xdist worker (tests/app/auth: 1-14 from gw0 up,
# tests/app/mfa/test_limits_and_races.py: 3-6, tests/server/test_limits_across_workers.py: 14-15).
REDIS_URI = (
    f"redis://127.0.0.1:6379/{7 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0) % 2}"
)
# Limits on, in Redis; every budget but the one a test is about is out of the way.
GUNICORN_ENV = {
    "RATELIMIT_ENABLED": "true",
    "RATELIMIT_STORAGE_URI": REDIS_URI,
    "RATELIMIT_LOGIN": "1000/minute",
    "RATELIMIT_SIGNUP": "1000/minute",
    "RATELIMIT_PASSWORD_CHANGE": "1000/15 minutes",
    "RATELIMIT_TOTP": "1000/15 minutes",
}
DEFAULT_TOTP_BUDGET = {"RATELIMIT_TOTP": "10/15 minutes"}  # authapp's default, for its own test
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
MFA = "/api/v1/settings/mfa/totp"
ATTEMPTS = 10  # fresh connections per check, so both workers answer
RACERS = 20
BUDGET_WINDOW = 15 * 60


@pytest.fixture(scope="module", autouse=True)
def empty_redis() -> Iterator[None]:
    redis.Redis.from_url(REDIS_URI).flushdb()
    yield
    redis.Redis.from_url(REDIS_URI).flushdb()


@dataclass
class Live:
    """A signed-up account on the server, and what its MFA set-up showed."""

    email: str
    headers: dict[str, str]
    secret: str = ""
    recovery_codes: tuple[str, ...] = ()


def signed_up(server: Server) -> Live:
    account = sign_up(server, confirmed=True)  # MFA waits for a confirmed address
    return Live(account["user"]["email"], bearer(account["access_token"]))


def start(server: Server, live: Live) -> None:
    status, _, body = request_json(server, "POST", MFA, {"password": PASSWORD}, live.headers)
    assert status == 200, body
    live.secret = body["secret"]


def confirm(server: Server, live: Live) -> None:
    status, _, body = request_json(
        server, "POST", f"{MFA}/confirm", {"code": code_at(live.secret)}, live.headers
    )
    assert status == 200, body
    live.recovery_codes = tuple(body["recovery_codes"])


def enrolled(server: Server) -> Live:
    live = signed_up(server)
    start(server, live)
    confirm(server, live)
    return live


def log_in(server: Server, live: Live, code: str | None = None) -> Response:
    body = {"login": live.email, "password": PASSWORD}
    if code is not None:
        body["totp_code"] = code
    return request_json(server, "POST", LOGIN, body)


def outcome(answer: Response | BaseException) -> Any:
    """(status, error code or None), or the connection error itself."""
    if isinstance(answer, BaseException):
        return answer
    status, _, body = answer
    error = body.get("error") if isinstance(body, dict) else None
    return status, error["code"] if error else None


def outcomes(server: Server, live: Live, code: str | None, times: int = ATTEMPTS) -> list[Any]:
    return [outcome(log_in(server, live, code)) for _ in range(times)]


def test_the_lifecycle_over_fresh_connections(server: Server) -> None:
    """Pending, on, the code step, a recovery code, off: every worker agrees at each stage."""
    live = signed_up(server)
    start(server, live)
    assert outcomes(server, live, None) == [(200, None)] * ATTEMPTS  # pending: not on yet

    confirm(server, live)

    assert len(set(live.recovery_codes)) == 10
    assert outcomes(server, live, None) == [(401, "mfa_required")] * ATTEMPTS
    for _ in range(ATTEMPTS):
        status, _, me = request_json(server, "GET", ME, headers=live.headers)
        assert (status, me["user"]["mfa_enabled"]) == (200, True)
        assert live.secret not in str(me)
    assert outcome(log_in(server, live, code_at(live.secret, +1))) == (200, None)
    assert outcome(log_in(server, live, live.recovery_codes[0])) == (200, None)
    status, _, body = request_json(
        server, "DELETE", MFA, {"password": PASSWORD, "code": wrong_code(live.secret)}, live.headers
    )
    assert (status, body["error"]["code"]) == (422, "invalid_mfa_code")

    status, _, body = request_json(
        server, "DELETE", MFA, {"password": PASSWORD, "code": live.recovery_codes[1]}, live.headers
    )

    assert status == 204, body
    assert outcomes(server, live, None) == [(200, None)] * ATTEMPTS  # the password alone again
    status, _, body = request_json(server, "POST", MFA, {"password": PASSWORD}, live.headers)
    assert status == 200, body  # and it can be set up anew
    assert body["secret"] != live.secret


def test_a_code_accepted_by_one_worker_is_refused_by_every_worker(server: Server) -> None:
    """MF-2: the step is spent in PostgreSQL, not in a worker's memory."""
    live = enrolled(server)
    code = code_at(live.secret, +1)
    assert outcome(log_in(server, live, code)) == (200, None)

    assert outcomes(server, live, code) == [(401, "invalid_mfa_code")] * ATTEMPTS


def test_twenty_concurrent_logins_with_one_code_succeed_once(server: Server) -> None:
    """F10 across workers: one 200; the others 401 invalid_mfa_code; no 5xx, no reset."""
    live = enrolled(server)
    code = code_at(live.secret, +1)

    answers = all_at_once(RACERS, lambda: log_in(server, live, code))

    got = [outcome(answer) for answer in answers]
    assert sorted(got) == [(200, None)] + [(401, "invalid_mfa_code")] * (RACERS - 1), describe(
        answers
    )


def test_a_recovery_code_works_once_across_workers(server: Server) -> None:
    """MF-3: each recovery code once, replayed or raced."""
    live = enrolled(server)
    assert outcome(log_in(server, live, live.recovery_codes[0])) == (200, None)

    assert outcomes(server, live, live.recovery_codes[0]) == [(401, "invalid_mfa_code")] * ATTEMPTS

    raced = all_at_once(RACERS, lambda: log_in(server, live, live.recovery_codes[1]))
    got = [outcome(answer) for answer in raced]
    assert sorted(got) == [(200, None)] + [(401, "invalid_mfa_code")] * (RACERS - 1), describe(
        raced
    )
    assert outcome(log_in(server, live, live.recovery_codes[2])) == (200, None)  # the others live


@pytest.mark.parametrize("server", [DEFAULT_TOTP_BUDGET], indirect=True)
def test_the_totp_budget_is_one_count_for_both_workers(server: Server) -> None:
    """RL-4: ten codes per account per 15 minutes in all, whichever worker checks them; the
    eleventh is 429 even when right, and another account is not affected."""
    live = enrolled(server)  # the confirmation spends one
    other = enrolled(server)

    spent = outcomes(server, live, wrong_code(live.secret), times=9)
    status, headers, body = log_in(server, live, code_at(live.secret, +1))

    assert spent == [(401, "invalid_mfa_code")] * 9  # per worker it would allow 20
    assert status == 429, body
    assert body["error"]["code"] == "rate_limited"
    assert BUDGET_WINDOW - 300 < int(headers["Retry-After"]) <= BUDGET_WINDOW
    status, _, body = request_json(
        server, "DELETE", MFA, {"password": PASSWORD, "code": live.recovery_codes[0]}, live.headers
    )
    assert status == 429, body  # turning it off draws on the same budget
    assert outcome(log_in(server, other, code_at(other.secret, +1))) == (200, None)
