"""F15: more concurrent requests than database connections, while the connections that exist
are stuck inside PostgreSQL.

The test's own connection takes `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`, so every GET /me
that has a pooled connection waits inside the database (a plain lock wait, like a slow query);
the requests beyond the pool wait for a connection. With DATABASE_POOL_SIZE=1 and
DATABASE_POOL_TIMEOUT=2, and enough gunicorn threads that no request queues inside gunicorn.

Pass criteria (F15): the requests that cannot get a connection answer 503
service_unavailable with Retry-After after pool_timeout (bound: pool_timeout + 2 s), never
hanging on towards gunicorn's 30 s timeout; no WORKER TIMEOUT; the requests holding connections
finish (200) once the lock is released, and the service answers normally right after.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults.harness import Answer, exchange, lock_waiters, summary
from tests.server.conftest import all_at_once, bearer, sign_up

pytestmark = pytest.mark.slow

POOL_TIMEOUT = 2.0
MARGIN = 2.0  # scheduling and the request's own work; far below gunicorn's 30 s timeout
HOLD = 8.0  # the lock outlives every pool wait, so a 503 cannot be a lock wait that ended
REQUESTS = 40
THREADS = 48  # per worker, above REQUESTS: every request gets a thread at once
GUNICORN_ENV = {
    "DATABASE_POOL_SIZE": "1",
    "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT),
    "GUNICORN_THREADS": str(THREADS),
    "GUNICORN_TIMEOUT": "30",
    "OUTBOX_SWEEP_SECONDS": "0",  # no sweeper thread taking connections of its own
}
ME = "/api/v1/auth/me"


def test_requests_beyond_the_pool_get_a_503_after_pool_timeout_not_a_hang(start, engine, figures):
    gunicorn = start(GUNICORN_ENV)
    server = gunicorn.server
    workers = gunicorn.worker_pids()
    token = sign_up(server)["access_token"]
    assert exchange(server, "warm", "GET", ME, headers=bearer(token)).status == 200

    holder = engine.connect()
    try:
        # AUTOCOMMIT engine: an explicit transaction keeps the lock until the commit.
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        peak = [0]

        def watch() -> None:
            deadline = time.monotonic() + HOLD
            while time.monotonic() < deadline:
                peak[0] = max(peak[0], lock_waiters(engine))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        locked_at = time.monotonic()
        released_at = [0.0]

        def release() -> None:
            time.sleep(max(0.0, HOLD - (time.monotonic() - locked_at)))
            released_at[0] = time.monotonic()
            holder.exec_driver_sql("COMMIT")

        releaser = threading.Thread(target=release)
        releaser.start()
        answers: list[Answer] = all_at_once(
            REQUESTS, lambda: exchange(server, "me", "GET", ME, headers=bearer(token))
        )
        releaser.join()
        watcher.join()
    finally:
        holder.close()

    after = [exchange(server, "after", "GET", ME, headers=bearer(token)) for _ in range(20)]

    refused = [a for a in answers if a.status == 503]
    waited = [a for a in answers if a.status == 200]
    figures(f"{REQUESTS} concurrent GET /me, users locked {HOLD:.0f} s: {summary(answers)}")
    figures(f"503s: {summary(refused)}")
    figures(f"200s (had a connection, waited for the lock): {summary(waited)}")
    figures(f"backends waiting on the lock at peak: {peak[0]}; after the release: {summary(after)}")

    assert len(refused) + len(waited) == REQUESTS, summary(answers)
    assert refused, "no request waited for a connection: the pool was not exhausted"
    for answer in refused:
        assert answer.code == "service_unavailable", answer
        assert int(answer.retry_after or 0) > 0, answer
        assert POOL_TIMEOUT - 0.1 <= answer.elapsed <= POOL_TIMEOUT + MARGIN, answer
    for answer in waited:
        assert answer.ended >= released_at[0], answer  # it waited for the lock, not the pool
    assert peak[0] == len(waited), (peak[0], len(waited))
    assert [a.status for a in after] == [200] * len(after), summary(after)
    assert max(a.elapsed for a in after) < 1.0, summary(after)
    assert gunicorn.worker_timeouts() == []
    assert gunicorn.worker_pids() == workers
