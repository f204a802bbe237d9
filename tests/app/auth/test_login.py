import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import sqlalchemy as sa

from authapp.models import AuditEvent, LoginThrottle, User
from authapp.platform import config
from authapp.platform.errors import ServiceUnavailable
from authapp.platform.extensions import db
from authapp.security.passwords import HASHERS_KEY, LINE_KEY, HashingLine
from tests.conftest import PASSWORD, build_app

LOGIN = "/api/v1/auth/login"


def test_login_by_email_or_username_case_insensitively(client, make_user):
    make_user(email="Ada@Example.com", username="Ada_L")

    for login in ("ada@example.com", " ADA@EXAMPLE.COM ", "ada_l", "ADA_L"):
        response = client.post(LOGIN, json={"login": login, "password": PASSWORD})
        assert response.status_code == 200, login
        assert response.json["user"]["email"] == "Ada@Example.com"
        assert response.json["token_type"] == "Bearer"


def test_each_login_starts_a_new_session(client, make_user, login, app):
    """SE-5."""
    user = make_user()
    first, second = login(user), login(user)

    sid = [jwt.decode(p["access_token"], options={"verify_signature": False})["sid"]
           for p in (first, second)]  # fmt: skip
    assert sid[0] != sid[1]
    assert first["user"]["last_login_at"] is not None


def _comparable(response):
    body = dict(response.json)
    body.pop("request_id")
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
    return response.status_code, body, headers


def test_login_failures_are_indistinguishable(app, client, make_user):
    """EN-1: unknown account, wrong password, disabled account with a wrong password."""
    make_user(email="known@example.com")
    make_user(email="off@example.com", username="off")
    app.test_cli_runner().invoke(args=["disable-user", "off"])

    unknown = client.post(LOGIN, json={"login": "nobody@example.com", "password": PASSWORD})
    wrong = client.post(LOGIN, json={"login": "known@example.com", "password": PASSWORD + "x"})
    disabled = client.post(LOGIN, json={"login": "off@example.com", "password": PASSWORD + "x"})

    assert _comparable(unknown) == _comparable(wrong) == _comparable(disabled)
    assert unknown.status_code == 401
    assert unknown.json["error"]["code"] == "invalid_credentials"
    assert unknown.headers["WWW-Authenticate"] == "Bearer"


def test_disabled_account_is_403_only_after_the_right_password(app, client, make_user):
    """SE-4."""
    make_user(email="off@example.com", username="off")
    app.test_cli_runner().invoke(args=["disable-user", "off"])

    response = client.post(LOGIN, json={"login": "off@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "account_disabled"


def test_hash_is_upgraded_when_the_configured_cost_changes(database_url, make_user):
    """CS-1: stored at cost 4, logged in at cost 5, stored again at cost 5."""
    user = make_user()
    stronger = build_app(database_url, BCRYPT_ROUNDS=5)

    response = stronger.test_client().post(
        LOGIN, json={"login": user["email"], "password": PASSWORD}
    )

    assert response.status_code == 200
    with stronger.app_context():
        stored = db.session.get(User, user["id"]).password_hash
        assert stored.startswith("$2b$05$")
        db.engine.dispose()


def test_stored_hash_is_bcrypt_over_a_prehash(app, make_user):
    """CS-1: never the password, never plain bcrypt of it."""
    user = make_user()
    with app.app_context():
        stored = db.session.get(User, user["id"]).password_hash
    assert stored.startswith("$2b$04$")
    assert PASSWORD not in stored


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Waits for another thread of the test to reach a state."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the state never came"
        time.sleep(0.01)


@pytest.mark.config(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT_SECONDS=0.05)
def test_login_is_503_with_retry_after_when_no_hashing_slot_frees(app, client, make_user):
    """F11: a login in line waits at most PASSWORD_HASH_WAIT_SECONDS, then gets a 503."""
    make_user()
    line: HashingLine = app.extensions[LINE_KEY]
    with line.turn(wait=1):  # another request is hashing
        response = client.post(LOGIN, json={"login": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "1"
    retry = client.post(LOGIN, json={"login": "ada@example.com", "password": PASSWORD})
    assert retry.status_code == 200


@pytest.mark.config(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_QUEUE=0)
def test_a_full_hashing_line_refuses_a_login_before_any_other_work(
    app, client, make_user, count_sql
):
    """F11: when the line is full the 503 comes first: no statement, no failure counted
    towards the account's back-off, nothing audited."""
    make_user()
    line: HashingLine = app.extensions[LINE_KEY]
    with line.turn(wait=1), count_sql() as statements:
        refused = client.post(LOGIN, json={"login": "ada@example.com", "password": "wrong" * 4})

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert statements == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginThrottle)) == 0
        failures = sa.select(sa.func.count()).where(AuditEvent.event == "login.failed")
        assert db.session.scalar(failures) == 0
    assert (
        client.post(LOGIN, json={"login": "ada@example.com", "password": PASSWORD}).status_code
        == 200
    )


@pytest.mark.config(
    PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_QUEUE=2, PASSWORD_HASH_WAIT_SECONDS=5
)
def test_the_hashing_line_holds_concurrency_plus_queue_requests(app):
    """Two wait behind the one hashing; the fourth is refused at once, whatever the wait."""
    line: HashingLine = app.extensions[LINE_KEY]
    hashing, release = threading.Event(), threading.Event()

    def hold() -> None:
        with line.turn(wait=5):
            hashing.set()
            release.wait(10)

    def wait_in_line() -> str:
        with line.turn(wait=5):
            return "hashed"

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(hold)
        assert hashing.wait(5)
        behind = [pool.submit(wait_in_line) for _ in range(2)]
        _until(lambda: line.full)  # both have taken their place and wait for the slot
        with pytest.raises(ServiceUnavailable), line.turn(wait=5):
            pass
        release.set()
        first.result(10)
        assert [f.result(10) for f in behind] == ["hashed", "hashed"]
    assert not line.full


@pytest.mark.config(PASSWORD_HASH_NICE=7)
def test_bcrypt_runs_on_threads_of_lower_priority(app, client, make_user):
    """A login flood takes only the CPU the other requests leave (F11): the hashing
    threads run at PASSWORD_HASH_NICE, the request threads at the process's own priority."""
    make_user()
    login = client.post(LOGIN, json={"login": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 200
    hashers: ThreadPoolExecutor = app.extensions[HASHERS_KEY]

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert hashers.submit(priority).result() == 7
    assert priority() == os.getpriority(os.PRIO_PROCESS, 0) < 7


def test_login_requires_both_fields(client):
    response = client.post(LOGIN, json={"login": "ada@example.com"})

    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"password": ["Missing data for required field."]}


@pytest.mark.parametrize(
    ("cores", "workers", "explicit", "expected"),
    [(8, "1", None, 8), (8, "", None, 1), (8, "3", None, 2), (2, "16", None, 1), (8, "8", "5", 5)],
)
def test_hashing_threads_default_to_the_host_s_cores_shared_by_its_workers(
    monkeypatch, tmp_path, cores, workers, explicit, expected
):
    """One hash per core on the host in all (docs/decisions.md "The hashing line"); an
    explicit setting wins."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setenv("GUNICORN_WORKERS", workers)
    if explicit is None:
        monkeypatch.delenv("PASSWORD_HASH_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("PASSWORD_HASH_CONCURRENCY", explicit)

    assert config.load(str(tmp_path))["PASSWORD_HASH_CONCURRENCY"] == expected


@pytest.mark.config(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_QUEUE=3)
def test_the_hashing_line_serves_first_come_first_served(app):
    """A freed slot goes to the longest waiter, not to whichever thread wakes first."""
    line: HashingLine = app.extensions[LINE_KEY]
    served: list[int] = []

    def wait_in_line(number: int) -> None:
        with line.turn(wait=10):
            served.append(number)

    with ThreadPoolExecutor(3) as pool:
        with line.turn(wait=1):
            waiters = []
            for number in range(3):
                waiters.append(pool.submit(wait_in_line, number))
                # This one has its place before the next comes, so the order is known.
                _until(lambda n=number: line.in_line == n + 2)
            assert line.full
            assert served == []
        for waiter in waiters:
            waiter.result(10)
    assert served == [0, 1, 2]


@pytest.mark.config(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_QUEUE=3)
def test_a_newcomer_does_not_take_a_freed_slot_from_a_waiter(app):
    """The slot passes to the waiter at release, before its thread even wakes: a request that
    arrives just then waits behind it (here: past its short wait, so a 503)."""
    line: HashingLine = app.extensions[LINE_KEY]
    hashing, done = threading.Event(), threading.Event()

    def wait_in_line() -> None:
        with line.turn(wait=10):
            hashing.set()
            done.wait(10)

    with ThreadPoolExecutor(1) as pool:
        with line.turn(wait=1):
            waiter = pool.submit(wait_in_line)
            _until(lambda: line.in_line == 2)
        with pytest.raises(ServiceUnavailable), line.turn(wait=0.05):
            pass
        assert hashing.wait(5)
        done.set()
        waiter.result(10)
    assert line.in_line == 0
