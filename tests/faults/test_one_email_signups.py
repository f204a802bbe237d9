"""F8: 100 concurrent sign-ups with one email address, spelled in mixed case and padded with
whitespace, spread over both workers while other traffic runs.

Pass criteria (F8): exactly one 201 and 99 × 409 email_taken, 0 × 5xx, one `users`
row, at most one verification mail (the winner's: exactly one). The unique index on
`email_normalized` decides, never a SELECT first (tests/app/auth covers the same race in one
process; this is the real-server version).
"""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD
from tests.faults.harness import Answer, Load, exchange, summary
from tests.server.conftest import Server, all_at_once, bearer, sign_up, unique

pytestmark = pytest.mark.slow

SIGNUP = "/api/v1/auth/signup"
RACERS = 100
ROUNDS = 3
BACKGROUND_THREADS = 4


def spellings(local: str, count: int) -> list[str]:
    """`count` spellings of one address: case flipped per letter, some padded with spaces."""
    address = f"{local}@example.com"
    spelled = []
    for n in range(count):
        mixed = "".join(c.upper() if (n >> (i % 8)) & 1 else c for i, c in enumerate(address))
        spelled.append([mixed, f" {mixed}", f"{mixed} "][n % 3])
    return spelled


def race(server: Server, emails: list[str]) -> list[Answer]:
    """Every spelling at once (threads released by a barrier), each on a fresh connection."""
    queue = iter(emails)

    def one() -> Answer:
        email = next(queue)  # next() on one iterator from many threads: the GIL serialises it
        return exchange(server, "race", "POST", SIGNUP, {"email": email, "password": PASSWORD})

    return all_at_once(len(emails), one)  # exchange() returns connection errors as Answers


def test_one_address_signed_up_100_times_at_once_gives_exactly_one_account(start, engine, figures):
    gunicorn = start()
    server = gunicorn.server
    token = sign_up(server)["access_token"]

    def background(thread: int, n: int) -> Answer:
        if thread % 2:
            return exchange(server, "me", "GET", "/api/v1/auth/me", headers=bearer(token))
        body = {"email": f"{unique('bg.')}@example.com", "password": PASSWORD}
        return exchange(server, "signup", "POST", SIGNUP, body)

    with Load(background, BACKGROUND_THREADS) as load:
        rounds = []
        for _ in range(ROUNDS):
            local = unique("race.")
            rounds.append((local, race(server, spellings(local, RACERS))))

    for number, (local, answers) in enumerate(rounds):
        outcomes = Counter((a.status, a.code) for a in answers)
        figures(f"round {number}: {summary(answers)}")
        assert not [a for a in answers if a.error], (number, outcomes)
        assert outcomes == {(201, ""): 1, (409, "email_taken"): RACERS - 1}, (number, outcomes)
        winner = next(a for a in answers if a.status == 201)
        with engine.connect() as conn:
            users = (
                conn.execute(
                    sa.text("SELECT id::text FROM users WHERE email_normalized = :e"),
                    {"e": f"{local}@example.com"},
                )
                .scalars()
                .all()
            )
            mails = conn.execute(
                sa.text(
                    "SELECT count(*) FROM outbox_messages "
                    "WHERE kind = 'email' AND lower(trim(payload->>'to')) = :e"
                ),
                {"e": f"{local}@example.com"},
            ).scalar_one()
        assert users == [winner.body["user"]["id"]], (number, users)
        assert mails == 1, (number, mails)  # the winner's verification mail, and no other
    figures(f"background during the races: {summary(load.answers)}")
    assert not [a for a in load.answers if a.status >= 500 or a.error], summary(load.answers)
    assert gunicorn.worker_timeouts() == []
