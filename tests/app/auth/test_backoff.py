"""The login back-off after consecutive failures, with device cookies: RL-2, EN-4 (the testing
clock moves time)."""

import pytest
import sqlalchemy as sa

from authapp.auth import link_tokens
from authapp.auth.services import recovery
from authapp.auth.services.sessions import Client
from authapp.models import AuditEvent, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at, wrong_code
from tests.app.web import conftest as web
from tests.app.web.conftest import set_cookies
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


def test_the_username_and_the_email_are_one_account_with_one_count(client, make_user):
    """Two spellings of one account must not double the guesses before the wait."""
    user = make_user(username="ada_l")
    fail(client, "ada_l", AFTER // 2)
    fail(client, user["email"].upper(), AFTER - AFTER // 2)

    assert attempt(client, "ADA_L", user["password"]).status_code == 429
    set_clock(client, 2)
    assert attempt(client, "ada_l", user["password"]).status_code == 200


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


# Device cookies (docs/security.md "Login back-off and device cookies")


def device_cookie_of(response):
    return set_cookies(response).get("device")


def owner_device(app, user):
    """A client where the owner logged in: it holds the account's device cookie."""
    device = app.test_client()
    assert attempt(device, user["email"], user["password"]).status_code == 200
    return device


def test_a_login_sets_a_signed_http_only_device_cookie(app, client, make_user):
    user = make_user()
    assert device_cookie_of(attempt(client, user["email"])) is None  # a failure earns none

    cookie = device_cookie_of(attempt(client, user["email"], user["password"]))

    assert cookie is not None
    assert "httponly" in cookie
    assert cookie["samesite"] == "Strict"
    assert cookie["max-age"] == str(app.config["DEVICE_COOKIE_TTL"])
    assert user["id"] not in (cookie["value"] or "")  # signed, and the id is not in the clear


def test_the_owners_device_is_not_held_by_failures_from_elsewhere(app, client, make_user):
    """RL-2 without the lockout: ten failures from anywhere no longer make the right password
    429 for the owner, however long they go on."""
    user = make_user()
    device = owner_device(app, user)
    fail(client, user["email"], AFTER)
    for offset in (901, 1802, 2703):  # then one failure every 15 minutes keeps the lock on
        set_clock(client, offset)
        fail(client, user["email"], 1)
        assert attempt(client, user["email"], user["password"]).status_code == 429
        assert attempt(device, user["email"], user["password"]).status_code == 200


def test_a_devices_own_failures_lock_only_that_device(app, client, make_user):
    user = make_user()
    device = owner_device(app, user)
    fail(device, user["email"], AFTER)

    assert attempt(device, user["email"], user["password"]).status_code == 429
    assert attempt(client, user["email"], user["password"]).status_code == 200


def test_a_device_cookie_counts_for_its_own_account_only(app, client, make_user):
    ada, mallory = make_user(), make_user(email="mallory@example.com")
    mallorys_device = owner_device(app, mallory)
    fail(client, ada["email"], AFTER)

    assert attempt(mallorys_device, ada["email"], ada["password"]).status_code == 429
    forged = app.test_client()
    forged.set_cookie("device", "eyJ1c2VyIjoiYWRhIn0.forged.signature")
    assert attempt(forged, ada["email"], ada["password"]).status_code == 429


def test_a_password_reset_voids_the_accounts_device_cookies(app, client, make_user):
    user = make_user()
    device = owner_device(app, user)
    with app.test_request_context():
        account = db.session.get(User, user["id"])
        token = link_tokens.issue(account, "password_reset")
        db.session.commit()
        recovery.reset_password(token, "a new and different passphrase", Client())
    fail(client, user["email"], AFTER)

    assert attempt(device, user["email"], "a new and different passphrase").status_code == 429


def test_the_login_page_reads_and_sets_the_device_cookie(app, client, make_user):
    user = make_user()
    browser = app.test_client()
    assert web.form_login(browser, user["email"]).status_code == 303
    fail(client, user["email"], AFTER)

    assert web.form_login(browser, user["email"]).status_code == 303
    assert web.form_login(app.test_client(), user["email"]).status_code == 429


def test_a_password_without_the_second_factor_earns_no_device_cookie(app, client, make_user, login):
    """MF-2: the cookie comes with a whole login, so knowing the password alone never escapes
    the account's back-off."""
    user = make_user()
    ada = Account(client, user, login(user))
    ada.enrol()
    assert ada.secret is not None
    stranger = app.test_client()
    password = {"login": user["email"], "password": user["password"]}
    asked = stranger.post(LOGIN, json=password)
    wrong = stranger.post(LOGIN, json={**password, "totp_code": wrong_code(ada.secret)})
    assert (asked.status_code, device_cookie_of(asked)) == (401, None)  # mfa_required
    assert (wrong.status_code, device_cookie_of(wrong)) == (401, None)
    page = app.test_client()
    waiting = web.form_login(page, user["email"])
    assert waiting.headers["Location"].endswith("/login/code")
    assert device_cookie_of(waiting) is None

    entered = web.submit(page, "/login/code", {"totp_code": code_at(ada.secret, 1)})

    assert entered.status_code == 303
    assert device_cookie_of(entered) is not None
    fail(app.test_client(), user["email"], AFTER)  # from a client without a device cookie
    late = stranger.post(LOGIN, json={**password, "totp_code": code_at(ada.secret, 2)})
    assert late.status_code == 429
    assert web.form_login(page, user["email"]).headers["Location"].endswith("/login/code")


def lock_events(app):
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.data)
            .where(AuditEvent.event == "login.locked")
            .order_by(AuditEvent.created_at)
        ).all()
    return [
        (user_id, data["scope"], data["failures"], data["wait_seconds"]) for user_id, data in rows
    ]


def test_every_back_off_lock_is_audited(app, client, make_user):
    user = make_user()
    device = owner_device(app, user)
    fail(client, user["email"], AFTER - 1)
    fail(client, "nobody@example.com", AFTER - 1)
    fail(device, user["email"], AFTER - 1)
    assert lock_events(app) == []

    fail(client, user["email"], 1)
    fail(client, "nobody@example.com", 1)
    fail(device, user["email"], 1)
    set_clock(client, 2)
    fail(device, user["email"], 1)

    assert lock_events(app) == [
        (user["id"], "account", AFTER, 1),
        (None, "identifier", AFTER, 1),
        (user["id"], "device", AFTER, 1),
        (user["id"], "device", AFTER + 1, 2),
    ]
