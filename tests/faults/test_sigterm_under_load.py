"""F7: SIGTERM to the gunicorn master during a steady stream of requests (a deploy).

Load: threads sending GET /me, sign-ups and /healthz on fresh connections, and GET /me on
kept-alive ones. Besides, a few logins are held in flight on purpose: the test locks the
`login_throttles` table (every login reads it before the password, nothing else does) and
sends SIGTERM only once PostgreSQL shows those logins waiting, then releases the lock while
gunicorn is stopping.

Pass criteria (F7): the requests in flight finish (the held logins answer 200);
no 5xx at all; a request the server accepted is never cut off: every request that ended without
an answer (reset, refused) is absent from gunicorn's access log, i.e. gunicorn never took it;
the master exits with status 0 within graceful_timeout; no WORKER TIMEOUT.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pytest

from tests.conftest import PASSWORD
from tests.faults.harness import Answer, Load, exchange, lock_waiters, summary
from tests.server.conftest import bearer, sign_up, unique
from tests.servers import wait_for

pytestmark = pytest.mark.slow

GRACEFUL_TIMEOUT = 10
HELD_LOGINS = 4
HELD_AFTER_SIGTERM = 2.0  # the held logins are still running this long into the shutdown
GUNICORN_ENV = {"GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
ME = "/api/v1/auth/me"


def test_sigterm_under_load_finishes_what_was_accepted_and_exits_0(start, engine, figures):
    gunicorn = start(GUNICORN_ENV)
    server = gunicorn.server
    token = sign_up(server)["access_token"]
    held_account = sign_up(server)["user"]["email"]
    kept_alive: dict[int, http.client.HTTPConnection] = {}

    def plan(thread: int, n: int) -> Answer:
        kind = thread % 4
        if kind == 0:
            return exchange(server, "me", "GET", ME, headers=bearer(token))
        if kind == 1:
            body = {"email": f"{unique('term.')}@example.com", "password": PASSWORD}
            return exchange(server, "signup", "POST", "/api/v1/auth/signup", body)
        if kind == 2:
            return exchange(server, "healthz", "GET", "/healthz")
        conn = kept_alive.setdefault(
            thread, http.client.HTTPConnection(server.host, server.port, timeout=30)
        )
        return exchange(server, "me-keepalive", "GET", ME, headers=bearer(token), conn=conn)

    held: list[Answer] = []
    credentials = {"login": held_account, "password": PASSWORD}

    def held_login() -> None:
        held.append(exchange(server, "held-login", "POST", "/api/v1/auth/login", credentials))

    holder = engine.connect()
    try:
        with Load(plan, 8) as load:
            time.sleep(2.0)  # a steady stream first
            holder.exec_driver_sql("BEGIN")
            holder.exec_driver_sql("LOCK TABLE login_throttles IN ACCESS EXCLUSIVE MODE")
            senders = [threading.Thread(target=held_login) for _ in range(HELD_LOGINS)]
            for sender in senders:
                sender.start()
            wait_for(lambda: lock_waiters(engine) == HELD_LOGINS, timeout=10)

            signalled = time.monotonic()
            os.kill(gunicorn.pid, signal.SIGTERM)
            time.sleep(HELD_AFTER_SIGTERM)
            holder.exec_driver_sql("COMMIT")
            for sender in senders:
                sender.join()
            try:
                gunicorn.process.wait(timeout=GRACEFUL_TIMEOUT + 5)
            finally:
                exited = time.monotonic()
    finally:
        holder.close()
        for conn in kept_alive.values():
            conn.close()

    logged = gunicorn.access_log_ids()
    before = load.between(0, signalled)
    after = load.between(signalled, exited + 60)
    unanswered = [a for a in load.answers if a.error]
    figures(f"before SIGTERM: {summary(before)}")
    figures(f"after SIGTERM: {summary(after)}")
    figures(f"held logins: {summary(held)}")
    figures(
        f"master exited {exited - signalled:.1f} s after SIGTERM with status "
        f"{gunicorn.process.returncode} (graceful_timeout {GRACEFUL_TIMEOUT} s)"
    )

    assert gunicorn.process.returncode == 0, gunicorn.server.logs()
    assert exited - signalled < GRACEFUL_TIMEOUT
    assert [a.status for a in held] == [200] * HELD_LOGINS, held
    assert min(a.ended for a in held) >= signalled + HELD_AFTER_SIGTERM
    assert [a for a in load.answers if a.status >= 500] == []
    assert [a for a in before if a.status == 0 and a.ended < signalled] == []
    cut_off = [a for a in unanswered if a.request_id in logged]
    assert cut_off == [], cut_off
    assert all(a.request_id in logged for a in load.answers if a.status), "access log incomplete"
    assert gunicorn.worker_timeouts() == []
