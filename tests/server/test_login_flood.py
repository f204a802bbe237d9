"""A login flood on real gunicorn (F11): the hashing line of a worker is bounded, the
logins beyond it are refused at once with 503 + Retry-After, and a token check still finds a
gunicorn thread while the line is full. One worker with 4 threads and a line of 2 (one hashing,
one waiting), at the production password cost, so that hashing is slow enough to watch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.server.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Response,
    Server,
    all_at_once,
    bearer,
    describe,
    request_json,
    unique,
)

GUNICORN_ENV = {
    "GUNICORN_WORKERS": "1",
    "GUNICORN_THREADS": "4",
    "PASSWORD_HASH_CONCURRENCY": "1",
    "PASSWORD_HASH_QUEUE": "1",
    "PASSWORD_HASH_WAIT_SECONDS": "20",  # a place in line waits; only a full line refuses
    "BCRYPT_ROUNDS": "12",
}
FLOOD = 8
LOGIN = "/api/v1/auth/login"


def _wrong_login(server: Server) -> Response:
    """An unknown account (checked against the dummy hash), so no back-off builds up."""
    body = {"login": f"{unique('ghost.')}@example.com", "password": "not the password at all"}
    return request_json(server, "POST", LOGIN, body)


def test_a_flood_beyond_the_line_is_refused_at_once(server: Server) -> None:
    answers = all_at_once(FLOOD, lambda: _wrong_login(server))

    statuses = [a[0] for a in answers if not isinstance(a, BaseException)]
    assert len(statuses) == FLOOD, describe(answers)
    assert set(statuses) <= {401, 503}, describe(answers)
    assert statuses.count(401) >= 2, describe(answers)  # the line's two places were served
    refused = [a for a in answers if not isinstance(a, BaseException) and a[0] == 503]
    assert refused, describe(answers)  # more than the line holds arrived at once
    for _, headers, body in refused:
        assert headers["Retry-After"] == "1"
        assert body["error"]["code"] == "service_unavailable"


def test_a_token_check_is_answered_while_the_line_is_full(server: Server) -> None:
    status, _, tokens = request_json(
        server, "POST", LOGIN, {"login": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert status == 200, tokens
    finished: list[tuple[str, int]] = []
    lock = threading.Lock()

    def login() -> None:
        status = _wrong_login(server)[0]
        with lock:
            finished.append(("login", status))

    with ThreadPoolExecutor(FLOOD) as pool:
        flood = [pool.submit(login) for _ in range(FLOOD)]
        time.sleep(0.1)  # the flood has taken the line and the threads it can
        me = request_json(server, "GET", "/api/v1/auth/me", headers=bearer(tokens["access_token"]))
        with lock:
            hashed_before_me = sum(1 for _, status in finished if status == 401)
        for future in flood:
            future.result(timeout=60)

    assert me[0] == 200, me
    # Had the waiting logins held all four threads, /me would have waited for several hashes
    # (about 0.3 s each) to finish; with the line bounded it needs none of them.
    assert hashed_before_me <= 1, finished
    assert sorted({status for _, status in finished}) in ([401], [401, 503]), finished
