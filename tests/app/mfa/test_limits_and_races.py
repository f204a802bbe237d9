"""The second factor under pressure, in-process on PostgreSQL with a real Redis: the per-account
TOTP budget (RL-4, MF-2) that login, confirm and disable all spend, Redis down for it (F12), and
twenty concurrent uses of one code (F10). A Redis database of this module's own per xdist worker
(tests/app/auth uses 1-14 from gw0 up, tests/server 14-15), emptied before each test."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.models import RecoveryCode, Session, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at, wrong_code
from tests.app.web.conftest import alert, field_error, form_login, submit, text
from tests.conftest import PASSWORD
from tests.servers import free_port

REDIS_DB = 3 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 4
REDIS_URI = f"redis://127.0.0.1:6379/{REDIS_DB}"
# The TOTP budget at its default (10/15 minutes); the per-address login limit and the password
# guesses' budget out of its way, so that a 429 here can only be the TOTP budget's.
LIMITED = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": REDIS_URI,
    "RATELIMIT_LOGIN": "1000/minute",
    "RATELIMIT_PASSWORD_CHANGE": "1000/15 minutes",
}
RACERS = 20
# Races: the budget too is out of the way, so every loser's answer is the code's refusal; and a
# connection per racer and one more each for the testing clock, which reads its offset over a
# connection of its own (platform/clock.py), possibly while the racer holds the session's: with
# the default pool (10 + 10 overflow) twenty racers could each hold one and wait for another,
# and the winner's answer was a 503 after DATABASE_POOL_TIMEOUT. The races are about one code
# winning once, not about the pool; production's clock reads no database.
RACING = {**LIMITED, "RATELIMIT_TOTP": "1000/15 minutes", "DATABASE_POOL_SIZE": 2 * RACERS}
REDIS_DOWN = {**LIMITED, "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0"}
BUDGET_WINDOW = 15 * 60
CONFIRM_PAGE = "/settings/security/totp/confirm"
TOO_MANY = "Too many codes tried for this account; wait before trying again."


@pytest.fixture(autouse=True)
def empty_redis() -> None:
    redis.Redis.from_url(REDIS_URI).flushdb()


def assert_rate_limited(response: TestResponse) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "rate_limited"
    assert response.json["error"]["message"] == TOO_MANY
    # The budget's wait (its window began seconds ago), not the login limit's minute.
    assert BUDGET_WINDOW - 300 < int(response.headers["Retry-After"]) <= BUDGET_WINDOW


def answer(response: TestResponse) -> tuple[int, str | None]:
    """(status, error code or None)."""
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    return response.status_code, error["code"] if error else None


@pytest.fixture
def second(client, make_user: Callable[..., dict[str, Any]], login) -> Account:
    """Another account on the same app, MFA on."""
    user = make_user(email="grace@example.com")
    account = Account(client, user, login(user))
    account.enrol()
    return account


# The budget: 10 codes per account per 15 minutes (RL-4, MF-2)


@pytest.mark.config(**LIMITED)
def test_the_eleventh_login_code_is_429_even_when_right(account: Account, second: Account):
    account.enrol()  # spends one: the confirmation's code
    assert account.secret is not None
    wrong = wrong_code(account.secret)

    answers = [answer(account.log_in(wrong)) for _ in range(9)]
    refused = account.log_in(code_at(account.secret, +1))

    assert answers == [(401, "invalid_mfa_code")] * 9
    assert_rate_limited(refused)
    assert second.secret is not None
    assert account.log_in(account.recovery_codes[0]).status_code == 429  # a recovery code too
    assert second.log_in(code_at(second.secret, +1)).status_code == 200  # not another's


@pytest.mark.config(**LIMITED)
def test_a_wrong_password_spends_no_code_attempt(account: Account):
    """Only a code checked after the right password counts: guessing passwords is the login
    back-off's business, and must not lock the owner's codes."""
    account.enrol()
    assert account.secret is not None
    wrong_password = {"password": "not the password at all"}
    for _ in range(5):
        response = account.client.post(
            "/api/v1/auth/login",
            json={"login": account.user["email"], "totp_code": "123456", **wrong_password},
        )
        assert response.json["error"]["code"] == "invalid_credentials"

    assert [answer(account.log_in(wrong_code(account.secret)))[0] for _ in range(8)] == [401] * 8
    assert account.log_in(code_at(account.secret, +1)).status_code == 200  # the tenth


@pytest.mark.config(**LIMITED)
def test_confirm_disable_and_login_spend_one_budget(account: Account, second: Account):
    """Every place a code is checked draws on the same per-account count."""
    assert account.start().status_code == 200
    assert account.secret is not None
    wrong = wrong_code(account.secret)
    spent = [answer(account.confirm(wrong)) for _ in range(3)]  # 3
    assert account.confirm(code_at(account.secret)).status_code == 200  # 4
    spent += [answer(account.log_in(wrong)) for _ in range(3)]  # 7
    spent += [answer(account.disable(wrong)) for _ in range(3)]  # 10

    assert spent == (
        [(422, "invalid_mfa_code")] * 3
        + [(401, "invalid_mfa_code")] * 3
        + [(422, "invalid_mfa_code")] * 3
    )
    assert_rate_limited(account.disable(account.recovery_codes[0]))
    assert_rate_limited(account.log_in(code_at(account.secret, +1)))
    with account.client.application.app_context():
        assert db.session.get(User, account.user["id"]).mfa_enabled is True
        unused = sa.select(sa.func.count()).where(RecoveryCode.used_at.is_(None))
        assert db.session.scalar(unused) == 20  # no refused code was spent, hers or grace's
    assert second.secret is not None
    assert second.disable(code_at(second.secret, +1)).status_code == 204


@pytest.mark.config(**LIMITED)
def test_a_new_confirmation_after_a_spent_budget_is_429(account: Account):
    """Starting the set-up again does not reset the count."""
    assert account.start().status_code == 200
    assert account.secret is not None
    for _ in range(10):
        assert account.confirm(wrong_code(account.secret)).status_code == 422
    assert account.start().status_code == 200

    assert_rate_limited(account.confirm(code_at(account.secret)))


def refused_on_a_page(app: Flask, account: Account, where: str) -> tuple[FlaskClient, TestResponse]:
    """Ten codes spent through the API, then the right code `where`: the login form's second
    step ("login code") or the set-up's confirmation ("confirm"). (The browser, its answer.)"""
    browser = app.test_client()
    if where == "login code":
        account.enrol()  # 1
        assert account.secret is not None
        for _ in range(9):
            assert account.log_in(wrong_code(account.secret)).status_code == 401
        asked = form_login(browser, account.user["email"])
        assert asked.status_code == 303, text(asked)
        assert asked.headers["Location"] == "/login/code"  # the password step spends nothing
        return browser, submit(browser, "/login/code", {"totp_code": code_at(account.secret, +1)})
    assert account.start().status_code == 200
    assert account.secret is not None
    for _ in range(10):
        assert account.confirm(wrong_code(account.secret)).status_code == 422
    assert form_login(browser, account.user["email"]).status_code == 303  # MFA still off
    code = {"code": code_at(account.secret)}
    return browser, submit(browser, CONFIRM_PAGE, code, page="/settings/security")


@pytest.mark.config(**LIMITED)
def test_the_login_page_s_code_step_spends_the_same_budget(app: Flask, account: Account):
    browser, refused = refused_on_a_page(app, account, "login code")

    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert alert(text(refused)) == TOO_MANY
    assert browser.get_cookie("access_token") is None


@pytest.mark.config(**LIMITED)
def test_the_settings_page_s_confirm_spends_the_same_budget(app: Flask, account: Account):
    browser, refused = refused_on_a_page(app, account, "confirm")

    assert refused.status_code == 429
    assert alert(text(refused)) == TOO_MANY
    assert "Status: <strong>off</strong>" in text(browser.get("/settings/security"))


@pytest.mark.config(**LIMITED)
@pytest.mark.parametrize("where", ["login code", "confirm"])
def test_a_page_s_429_says_how_long_the_budget_lasts(app: Flask, account: Account, where: str):
    """RL-1's Retry-After on the pages too: the wait of the TOTP budget, whose 15-minute window
    began seconds ago, not the login limit's minute."""
    _browser, refused = refused_on_a_page(app, account, where)

    assert refused.status_code == 429
    assert BUDGET_WINDOW - 300 < int(refused.headers.get("Retry-After", "0")) <= BUDGET_WINDOW


# Redis down (F12): the budget falls back to this process, never a 500


@pytest.mark.config(**REDIS_DOWN)
def test_with_redis_down_codes_are_still_answered_and_still_limited(account: Account):
    account.enrol()  # 1
    assert account.secret is not None
    wrong = wrong_code(account.secret)

    answers = [answer(account.log_in(code_at(account.secret, +1)))]  # 2
    answers.append(answer(account.disable(wrong)))  # 3
    answers += [answer(account.log_in(wrong)) for _ in range(7)]  # 10
    refused = account.log_in(code_at(account.secret, +1))

    assert answers == [(200, None), (422, "invalid_mfa_code")] + [(401, "invalid_mfa_code")] * 7
    assert_rate_limited(refused)


@pytest.mark.config(**REDIS_DOWN)
def test_with_redis_down_the_login_page_s_code_step_works(app: Flask, account: Account):
    account.enrol()
    assert account.secret is not None
    browser = app.test_client()
    assert form_login(browser, account.user["email"]).headers["Location"] == "/login/code"
    wrong = submit(browser, "/login/code", {"totp_code": wrong_code(account.secret)})
    assert wrong.status_code == 401
    assert field_error(text(wrong), "totp_code")

    right = submit(browser, "/login/code", {"totp_code": code_at(account.secret, +1)})

    assert right.status_code == 303, text(right)
    assert browser.get_cookie("access_token") is not None


# Twenty at once with one code (F10): exactly one success


def race(app: Flask, call: Callable[[Any], TestResponse]) -> list[tuple[int, str | None]]:
    """`call(client)` from RACERS threads released by one barrier, each with its own client."""
    barrier = threading.Barrier(RACERS)

    def one(_: int) -> tuple[int, str | None]:
        client = app.test_client()
        barrier.wait(timeout=10)
        return answer(call(client))

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def sessions_of(app: Flask, user_id: str) -> int:
    with app.app_context():
        return int(
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Session).where(Session.user_id == user_id)
            )
            or 0
        )


def log_in_with(account: Account, code: str) -> Callable[[Any], TestResponse]:
    body = {"login": account.user["email"], "password": PASSWORD, "totp_code": code}
    return lambda client: client.post("/api/v1/auth/login", json=body)


@pytest.mark.config(**RACING)
@pytest.mark.parametrize("attempt", range(3))
def test_twenty_concurrent_logins_with_one_totp_code_succeed_once(app, account, attempt):
    account.enrol()
    assert account.secret is not None
    before = sessions_of(app, account.user["id"])

    answers = race(app, log_in_with(account, code_at(account.secret, +1)))

    assert sorted(answers) == [(200, None)] + [(401, "invalid_mfa_code")] * (RACERS - 1), answers
    assert sessions_of(app, account.user["id"]) == before + 1


@pytest.mark.config(**RACING)
@pytest.mark.parametrize("attempt", range(3))
def test_twenty_concurrent_logins_with_one_recovery_code_succeed_once(app, account, attempt):
    account.enrol()
    before = sessions_of(app, account.user["id"])

    answers = race(app, log_in_with(account, account.recovery_codes[0]))

    assert sorted(answers) == [(200, None)] + [(401, "invalid_mfa_code")] * (RACERS - 1), answers
    assert sessions_of(app, account.user["id"]) == before + 1
    with app.app_context():
        used = db.session.scalars(
            sa.select(RecoveryCode).where(RecoveryCode.used_at.is_not(None))
        ).all()
    assert len(used) == 1


@pytest.mark.config(**RACING)
@pytest.mark.parametrize("attempt", range(3))
def test_twenty_concurrent_disables_with_one_recovery_code_succeed_once(app, account, attempt):
    """One 204; the others find the code spent (422) or MFA already off (409); never a 5xx."""
    account.enrol()
    body = {"password": PASSWORD, "code": account.recovery_codes[0]}

    answers = race(
        app,
        lambda client: client.delete(
            "/api/v1/settings/mfa/totp", json=body, headers=account.headers
        ),
    )

    assert answers.count((204, None)) == 1, answers
    others = {(422, "invalid_mfa_code"), (409, "mfa_not_enabled")}
    assert set(answers) - {(204, None)} <= others, answers
    with app.app_context():
        assert db.session.get(User, account.user["id"]).mfa_enabled is False
