"""F9 with REFRESH_REUSE_GRACE_SECONDS=0 on real gunicorn (2 gthread workers).

docs/api.md "Tokens and sessions": of many concurrent refreshes with one token, exactly one rotation
happens, none gets a 5xx, and with the window set to 0 exactly one gets 200 while the rest get
401 token_reused; that reuse revokes the whole session, the winner's new tokens included.
"""

from __future__ import annotations

from tests.server.conftest import bearer, describe, refresh_race, request_json, sign_up

GUNICORN_ENV = {"REFRESH_REUSE_GRACE_SECONDS": "0"}

REFRESH = "/api/v1/auth/refresh"
RACERS = 30
ROUNDS = 3


def test_without_a_grace_window_one_racer_wins_and_the_rest_are_token_reused(server):
    for round_number in range(ROUNDS):
        token = sign_up(server)["refresh_token"]

        answers = refresh_race(server, token, RACERS)

        seen = describe(answers)
        assert not [a for a in answers if isinstance(a, BaseException)], (round_number, seen)
        assert not [a for a in answers if a[0] >= 500], (round_number, seen)
        winners = [a for a in answers if a[0] == 200]
        losers = [a for a in answers if a[0] != 200]
        assert len(winners) == 1, (round_number, seen)
        assert [(a[0], a[2]["error"]["code"]) for a in losers] == [(401, "token_reused")] * (
            RACERS - 1
        ), (round_number, seen)

        # The reuse revoked the session: the winner's fresh pair is dead too.
        pair = winners[0][2]
        status, _, body = request_json(
            server, "POST", REFRESH, {"refresh_token": pair["refresh_token"]}
        )
        assert status == 401, (round_number, body)
        assert body["error"]["code"] == "token_reused"
        status, _, body = request_json(
            server, "GET", "/api/v1/auth/me", headers=bearer(pair["access_token"])
        )
        assert status == 401, (round_number, body)
        assert body["error"]["code"] == "token_revoked"
