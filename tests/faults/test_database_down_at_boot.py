"""F2: gunicorn starts while its database is unreachable, and turns ready by itself.

The database is migrated and seeded, but the app's DATABASE_URL names a port where nothing
listens (connections are refused, as with a database host that is down). Load runs from the
start: /healthz, /readyz, sign-ups and logins. Then a TCP proxy starts on that port and forwards
to PostgreSQL, with no signal to gunicorn and no restart.

Pass criteria (F2, F1's 503): while the database is away /healthz is 200, /readyz
and the API are 503 service_unavailable with Retry-After, within DOWN_BOUND, never a 500 or a
hang; once the proxy forwards, /readyz is 200 within READY_WITHIN, and sign-up, login and GET
/me work on the same master and workers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD
from tests.faults.harness import Answer, Load, by_label, exchange, summary
from tests.faults.proxy import TcpProxy
from tests.server.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, bearer, unique
from tests.servers import free_port, wait_for

pytestmark = pytest.mark.slow

DOWN_FOR = 4.0
DOWN_BOUND = 2.0  # a refused connection is answered at once; DATABASE_CONNECT_TIMEOUT is 5 s
READY_WITHIN = 10.0
POSTGRES = ("127.0.0.1", 5432)


def plan_for(server: Server) -> Callable[[int, int], Answer]:
    def plan(thread: int, n: int) -> Answer:
        kind = thread % 4
        if kind == 0:
            return exchange(server, "healthz", "GET", "/healthz")
        if kind == 1:
            return exchange(server, "readyz", "GET", "/readyz")
        if kind == 2:
            body = {"email": f"{unique('boot.')}@example.com", "password": PASSWORD}
            return exchange(server, "signup", "POST", "/api/v1/auth/signup", body)
        body = {"login": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        return exchange(server, "login", "POST", "/api/v1/auth/login", body)

    return plan


def test_gunicorn_starts_without_its_database_and_turns_ready_by_itself(start, database, figures):
    port = free_port()  # nothing listens here until the proxy starts
    app_url = sa.make_url(database).set(port=port).render_as_string(hide_password=False)
    gunicorn = start(app_database_url=app_url)
    server = gunicorn.server
    workers = gunicorn.worker_pids()
    proxy = TcpProxy(port, POSTGRES)
    try:
        with Load(plan_for(server), 8) as load:
            time.sleep(DOWN_FOR)
            back = time.monotonic()
            proxy.start()
            ready = wait_for(
                lambda: exchange(server, "ready-probe", "GET", "/readyz").status == 200,
                timeout=READY_WITHIN,
                step=0.1,
            )
            ready_after = time.monotonic() - back
            time.sleep(2.0)  # load on the recovered service
        account = exchange(
            server,
            "signup-after",
            "POST",
            "/api/v1/auth/signup",
            {"email": f"{unique('after.')}@example.com", "password": PASSWORD},
        )
        me = exchange(
            server,
            "me-after",
            "GET",
            "/api/v1/auth/me",
            headers=bearer(account.body["access_token"]),
        )
    finally:
        proxy.stop()

    away = [a for a in load.answers if a.ended < back]  # answered before the proxy started
    down = by_label(away)
    up = by_label(load.between(back + ready_after, back + 3600))
    for label in sorted(down):
        figures(f"database away, {label}: {summary(down[label])}")
    for label in sorted(up):
        figures(f"database reachable, {label}: {summary(up[label])}")
    figures(
        f"/readyz 200 {ready_after:.2f} s after the proxy started ({proxy.connections} "
        "connections through it)"
    )

    assert ready
    everything = load.answers
    assert [a for a in everything if a.error] == [], summary(everything)
    assert [a for a in everything if a.status >= 500 and a.status != 503] == [], summary(everything)
    assert {a.status for a in down["healthz"]} == {200}
    for label in ("readyz", "signup", "login"):
        outcomes = Counter((a.status, a.code) for a in down[label])
        assert outcomes.keys() == {(503, "service_unavailable")}, (label, outcomes)
        assert all(int(a.retry_after or 0) > 0 for a in down[label]), label
    assert max(a.elapsed for a in away) <= DOWN_BOUND
    assert {a.status for a in up["readyz"]} == {200}
    assert {a.status for a in up["signup"]} == {201}
    assert {a.status for a in up["login"]} == {200}
    assert (account.status, me.status) == (201, 200), (account, me)
    assert gunicorn.process.poll() is None
    assert gunicorn.worker_pids() == workers  # same master, same workers: nothing restarted
    assert gunicorn.worker_timeouts() == []
