"""F9: 50 concurrent refreshes of one refresh token, spread over both workers under load, with
the reuse grace window at 0 and at its default 10 s.

Pass criteria (F9, docs/api.md "Tokens and sessions"): exactly one rotation (one child
token) and 0 × 5xx. Window 0: exactly one 200, the other 49 are 401 token_reused. Window 10: all
50 are 200 with the same child (one new jti). tests/server races 30 with no other traffic.
"""

from __future__ import annotations

from collections import Counter

import jwt
import pytest

from tests.conftest import PASSWORD
from tests.faults.harness import Answer, Load, exchange, summary
from tests.server.conftest import Server, all_at_once, bearer, sign_up, unique

pytestmark = pytest.mark.slow

REFRESH = "/api/v1/auth/refresh"
RACERS = 50
ROUNDS = 4
BACKGROUND_THREADS = 4


def jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def race(server: Server, token: str) -> list[Answer]:
    body = {"refresh_token": token}
    return all_at_once(RACERS, lambda: exchange(server, "refresh", "POST", REFRESH, body))


def background_load(server: Server) -> Load:
    token = sign_up(server)["access_token"]

    def plan(thread: int, n: int) -> Answer:
        if thread % 2:
            return exchange(server, "me", "GET", "/api/v1/auth/me", headers=bearer(token))
        body = {"email": f"{unique('bg.')}@example.com", "password": PASSWORD}
        return exchange(server, "signup", "POST", "/api/v1/auth/signup", body)

    return Load(plan, BACKGROUND_THREADS)


@pytest.mark.parametrize("window", [0, 10])
def test_fifty_concurrent_refreshes_of_one_token_rotate_it_once(start, figures, window):
    gunicorn = start({"REFRESH_REUSE_GRACE_SECONDS": str(window)})
    server = gunicorn.server

    with background_load(server) as load:
        rounds = []
        for _ in range(ROUNDS):
            token = sign_up(server)["refresh_token"]
            rounds.append((token, race(server, token)))

    for number, (token, answers) in enumerate(rounds):
        outcomes = Counter((a.status, a.code) for a in answers)
        figures(f"window {window} s, round {number}: {summary(answers)}")
        assert not [a for a in answers if a.error or a.status >= 500], (number, outcomes)
        winners = [a for a in answers if a.status == 200]
        children = {jti(a.body["refresh_token"]) for a in winners}
        assert len(children) == 1, (number, children)  # one rotation
        assert children != {jti(token)}
        if window == 0:
            assert outcomes == {(200, ""): 1, (401, "token_reused"): RACERS - 1}, (number, outcomes)
        else:
            assert outcomes == {(200, ""): RACERS}, (number, outcomes)
    figures(f"window {window} s, background: {summary(load.answers)}")
    assert not [a for a in load.answers if a.status >= 500 or a.error], summary(load.answers)
    assert gunicorn.worker_timeouts() == []
