"""Scale-out: the set-up these tests share, and why, is scale_out.py's docstring.

This part: two masters on one database: tokens, logouts, password changes, rate limits and API
key budgets across them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import PASSWORD
from tests.server.conftest import bearer, confirm_email_on
from tests.server.scale_out import (
    ATTEMPTS,
    LOGIN,
    ME,
    Pair,
    answers,
    call,
    client_address,
    code_of,
    every,
    log_in,
    masters,
    refresh,
    sign_up,
)

SETTINGS = "/api/v1/settings"
NEW_PASSWORD = "another long passphrase nobody guesses"
LOGIN_LIMIT = 10  # RATELIMIT_LOGIN's default, 10/minute per client address
FREE_TIER_BUDGET = 100  # a new organization's API requests per minute (tier free)


@pytest.fixture(scope="module")
def pair(deployment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # No grace window: a parent replayed after its rotation is reuse at once (docs/api.md).
    env = {**deployment, "REFRESH_REUSE_GRACE_SECONDS": "0"}
    with masters([env, env], tmp_path_factory) as (a, b):
        yield Pair(a, b)


def test_a_token_issued_by_one_master_is_accepted_by_the_other(pair):
    """F13: access and refresh tokens, and the password hash, from A work on B and back."""
    signed_up = sign_up(pair.a)
    user_id = signed_up["user"]["id"]

    for server in pair.both:
        for _ in range(ATTEMPTS):
            status, _, body = call(server, "GET", ME, headers=bearer(signed_up["access_token"]))
            assert status == 200, body
            assert body["user"]["id"] == user_id
    logged_in = log_in(pair.b, signed_up["user"]["email"])  # hashed on A, checked on B
    assert answers(pair.both, "GET", ME, headers=bearer(logged_in["access_token"])) == every(
        pair.both, 200
    )
    status, _, rotated = refresh(pair.b, signed_up)  # A's refresh token, rotated by B
    assert status == 200, rotated
    assert answers(pair.both, "GET", ME, headers=bearer(rotated["access_token"])) == every(
        pair.both, 200
    )
    assert [code_of(call(server, "GET", "/readyz")) for server in pair.both] == [(200, None)] * 2


def test_a_logout_on_one_master_is_seen_by_the_other_at_the_next_request(pair):
    """F13, SE-1: B refuses the session A logged out; the user's other session lives on."""
    signed_up = sign_up(pair.a)
    other = log_in(pair.b, signed_up["user"]["email"])
    headers = bearer(signed_up["access_token"])
    assert answers((pair.b,), "GET", ME, headers=headers) == every((pair.b,), 200)

    status, _, body = call(pair.a, "POST", "/api/v1/auth/logout", headers=headers)

    assert status == 204, body
    assert answers((pair.b, pair.a), "GET", ME, headers=headers) == every(
        pair.both, 401, "token_revoked"
    )
    assert code_of(refresh(pair.b, signed_up)) == (401, "token_revoked")
    assert answers(pair.both, "GET", ME, headers=bearer(other["access_token"])) == every(
        pair.both, 200
    )


def test_a_logout_all_on_one_master_revokes_every_session_on_the_other(pair):
    """F13, SE-2: sessions opened on either master all end with B's logout-all."""
    signed_up = sign_up(pair.a)
    email = signed_up["user"]["email"]
    sessions = [signed_up, log_in(pair.b, email), log_in(pair.a, email)]

    status, _, body = call(
        pair.b, "POST", "/api/v1/auth/logout-all", headers=bearer(sessions[1]["access_token"])
    )

    assert status == 204, body
    for session in sessions:
        assert answers(
            (pair.a, pair.b), "GET", ME, headers=bearer(session["access_token"])
        ) == every(pair.both, 401, "token_revoked")
        assert code_of(refresh(pair.a, session)) == (401, "token_revoked")


def test_a_password_change_on_one_master_revokes_the_other_sessions_on_the_other(pair):
    """F13, SE-3: B changes the password; A refuses the other session and the old password."""
    signed_up = sign_up(pair.a)
    email = signed_up["user"]["email"]
    kept = log_in(pair.b, email)

    status, _, body = call(
        pair.b,
        "POST",
        f"{SETTINGS}/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        bearer(kept["access_token"]),
    )

    assert status == 204, body
    assert answers((pair.a, pair.b), "GET", ME, headers=bearer(signed_up["access_token"])) == every(
        pair.both, 401, "token_revoked"
    )
    assert answers(pair.both, "GET", ME, headers=bearer(kept["access_token"])) == every(
        pair.both, 200
    )
    wrong = call(pair.a, "POST", LOGIN, {"login": email, "password": PASSWORD})
    assert code_of(wrong) == (401, "invalid_credentials")
    log_in(pair.a, email, NEW_PASSWORD)


def test_a_parent_replayed_on_one_master_after_a_rotation_on_the_other_is_reuse(pair):
    """F13, RT-1, RT-2 with REFRESH_REUSE_GRACE_SECONDS=0: A rotates, B sees the replay as
    reuse and revokes the session, so the child A issued dies on both masters."""
    parent = sign_up(pair.a)
    status, _, child = refresh(pair.a, parent)
    assert status == 200, child

    assert code_of(refresh(pair.b, parent)) == (401, "token_reused")

    assert code_of(refresh(pair.a, child)) == (401, "token_reused")
    assert answers(pair.both, "GET", ME, headers=bearer(child["access_token"])) == every(
        pair.both, 401, "token_revoked"
    )


def test_the_login_limit_is_one_count_for_both_masters(pair):
    """F13, RL-1, RL-3: ten logins from one client split over A and B, the eleventh is 429 on
    either; another client behind the same balancer still logs in."""
    email = sign_up(pair.a)["user"]["email"]
    client = client_address()

    for attempt in range(LOGIN_LIMIT):
        log_in(pair.both[attempt % 2], email, client=client)

    for server in pair.both:
        status, headers, body = call(
            server, "POST", LOGIN, {"login": email, "password": PASSWORD}, client=client
        )
        assert (status, body["error"]["code"]) == (429, "rate_limited"), body
        assert 0 < int(headers["Retry-After"]) <= 60
    log_in(pair.b, email, client=client_address())


def test_an_api_keys_budget_is_one_count_for_both_masters(pair):
    """F13, RL-5: the organization's requests per minute, spent half on A and half on B; the
    next request is 429 on either."""
    account = sign_up(pair.a)
    confirm_email_on(pair.a, account["user"]["email"])  # keys wait for a confirmed address
    owner = bearer(account["access_token"])
    status, _, organization = call(pair.b, "GET", f"{SETTINGS}/organization", headers=owner)
    assert status == 200, organization
    assert organization["rate_limit_per_minute"] == FREE_TIER_BUDGET
    status, _, created = call(
        pair.b,
        "POST",
        f"{SETTINGS}/api-keys",
        {"name": "scale-out key", "scopes": ["users:read"]},
        owner,
    )
    assert status == 201, created
    key = {"X-API-Key": created["key"]}

    spent = [
        code_of(call(pair.both[n % 2], "GET", f"{SETTINGS}/members", headers=key))
        for n in range(FREE_TIER_BUDGET)
    ]

    assert spent == [(200, None)] * FREE_TIER_BUDGET
    for server in pair.both:
        status, headers, body = call(server, "GET", f"{SETTINGS}/members", headers=key)
        assert (status, body["error"]["code"]) == (429, "rate_limited"), body
        assert 0 < int(headers["Retry-After"]) <= 60
