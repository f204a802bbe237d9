"""Per-login back-off after consecutive failures: RL-2, EN-4 (the testing clock moves time)."""

import pytest

from authapp.auth import link_tokens, recovery
from authapp.auth.sessions import Client
from authapp.extensions import db
from authapp.models import User
from tests.conftest import PASSWORD

LOGIN = "/api/v1/auth/login"
WRONG = "not the password at all"
AFTER = 10  # LOGIN_BACKOFF_AFTER's default


def attempt(client, login, password=WRONG):
    return client.post(LOGIN, json={"login": login, "password": password})


def set_clock(client, seconds):
    assert client.post("/_testing/clock", json={"offset_seconds": seconds}).status_code == 200


def fail(client, login, times):
    for _ in range(times):
        assert attempt(client, login).status_code == 401


def test_the_back_off_starts_after_ten_failures_and_doubles(client, make_user):
    user = make_user()
    fail(client, user["email"], AFTER)

    first = attempt(client, user["email"], user["password"])  # even the right password waits
    assert first.status_code == 429
    assert first.json["error"]["code"] == "rate_limited"
    assert first.headers["Retry-After"] == "1"

    waits = []
    for elapsed in (2, 5, 10, 20):
        set_clock(client, elapsed)
        assert attempt(client, user["email"]).status_code == 401
        waits.append(int(attempt(client, user["email"]).headers["Retry-After"]))
    assert waits == [2, 4, 8, 16]


@pytest.mark.config(LOGIN_BACKOFF_AFTER=1, LOGIN_BACKOFF_MAX=900)
def test_the_wait_never_grows_past_the_cap(client, make_user):
    """The owner is never locked out for good: at most 15 minutes between attempts."""
    user = make_user()
    offset = 0
    for _ in range(14):
        assert attempt(client, user["email"]).status_code == 401
        offset += 901
        set_clock(client, offset)
    assert attempt(client, user["email"]).status_code == 401

    locked = attempt(client, user["email"])
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) == 900
    set_clock(client, offset + 901)
    assert attempt(client, user["email"], user["password"]).status_code == 200


def test_unknown_accounts_are_throttled_exactly_like_real_ones(client, make_user):
    """EN-4: the same statuses, codes and waits for an email nobody has."""
    user = make_user()
    answers = {}
    for login in (user["email"], "nobody@example.com"):
        seen = [attempt(client, login) for _ in range(AFTER + 1)]
        answers[login] = [
            (r.status_code, r.json["error"]["code"], r.headers.get("Retry-After")) for r in seen
        ]
    assert answers[user["email"]] == answers["nobody@example.com"]
    assert answers["nobody@example.com"][-1] == (429, "rate_limited", "1")


def test_a_success_starts_the_count_again(client, make_user):
    user = make_user()
    fail(client, user["email"], AFTER - 1)
    assert attempt(client, user["email"], user["password"]).status_code == 200

    fail(client, user["email"], AFTER - 1)  # nine more: no wait yet
    assert attempt(client, user["email"]).status_code == 401


def test_the_username_and_the_email_are_counted_apart_but_a_success_clears_both(client, make_user):
    user = make_user(username="ada_l")
    fail(client, "ada_l", AFTER)
    assert attempt(client, "ada_l").status_code == 429
    fail(client, user["email"], AFTER - 1)

    set_clock(client, 2)
    assert attempt(client, "ada_l", user["password"]).status_code == 200
    assert attempt(client, user["email"]).status_code == 401  # the email's count was cleared too


def test_a_password_reset_clears_the_back_off_and_forgot_password_still_works(
    app, client, make_user
):
    """RL-2: the owner can always get back in through the mailbox."""
    user = make_user()
    fail(client, user["email"], AFTER)
    assert attempt(client, user["email"]).status_code == 429
    forgot = client.post("/api/v1/auth/password/forgot", json={"email": user["email"]})
    assert forgot.status_code == 202

    with app.test_request_context():
        account = db.session.get(User, user["id"])
        token = link_tokens.issue(account, "password_reset")
        db.session.commit()
        recovery.reset_password(token, "a new and different passphrase", Client())

    assert attempt(client, user["email"], "a new and different passphrase").status_code == 200


def test_the_back_off_answers_on_the_login_page_too(client, make_user):
    user = make_user()
    fail(client, user["email"], AFTER)
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]

    answer = client.post(
        "/login", data={"csrf_token": token, "login": user["email"], "password": PASSWORD}
    )

    assert answer.status_code == 429
    assert "Too many failed logins" in answer.get_data(as_text=True)
