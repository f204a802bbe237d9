"""F1: the PostgreSQL server itself restarts while sign-ups and GET /me run.

A real restart of the local cluster (`pg_ctlcluster <version> <cluster> stop -m fast`, OUTAGE
seconds down, then `start`), as root. It breaks every other client of that server, so the
test refuses to run while another pytest or benchmark runs on this machine: `make faults`
alone. PostgreSQL is started again, and waited for, however the test ends.

Pass criteria (F1): while the server is down, sign-ups and GET /me are 503
service_unavailable with Retry-After (never a 500), /healthz stays 200 and /readyz is 503; no
request takes longer than HANG_BOUND; the same gunicorn (master and workers) serves again within
RECOVERY_WITHIN of PostgreSQL accepting connections, without a restart; no sign-up is half
written: every account has its role, organization, first session and audit event, every 201
can log in, and every sign-up that got no 201 left either no account or a complete one.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD, SERVER
from tests.faults.harness import Answer, Load, by_label, exchange, summary
from tests.server.conftest import Server, bearer, sign_up, unique
from tests.servers import wait_for

pytestmark = pytest.mark.slow

OUTAGE = 3.0
HANG_BOUND = 5.0  # DATABASE_CONNECT_TIMEOUT (5 s): the longest a request may wait on the database
RECOVERY_WITHIN = 10.0
AFTER = 4.0  # load on the recovered service
GUNICORN_ENV = {"GUNICORN_MAX_REQUESTS": "0"}  # no recycling: "the same workers" is checkable
PREFIX = "restart."


def local_cluster() -> tuple[str, str]:
    """The Debian cluster serving TEST_DATABASE_URL's port; the test is skipped without one."""
    url = sa.make_url(SERVER)
    if url.host not in ("127.0.0.1", "localhost") or not shutil.which("pg_lsclusters"):
        pytest.skip("needs the PostgreSQL server on this machine (Debian's pg_ctlcluster)")
    if os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs root")
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    for line in listing.splitlines():
        version, cluster, port, *_ = line.split()
        if int(port) == (url.port or 5432):
            return version, cluster
    pytest.skip(f"no cluster listens on port {url.port or 5432}")


def other_test_runs() -> list[str]:
    """pytest or bench processes outside this run's process group: a restart would break them."""
    mine = os.getpgid(0)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            group = os.getpgid(int(proc.name))
        except (OSError, ProcessLookupError):
            continue
        if group != mine and ("pytest" in cmdline or "-m bench." in cmdline):
            found.append(f"{proc.name}: {cmdline.strip()[:120]}")
    return found


def accepting(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        return False
    return True


@contextmanager
def postgres_down(cluster: tuple[str, str], engine: sa.Engine) -> Iterator[Callable[[], float]]:
    """Stops the cluster; the yielded callable starts it and returns the moment it accepted
    connections (pg_ctlcluster itself returns up to a second later). Started in any case on
    the way out, and waited for."""
    control = ["pg_ctlcluster", *cluster]
    subprocess.run([*control, "stop", "-m", "fast"], check=True, timeout=60, capture_output=True)
    started = False

    def start_again() -> float:
        nonlocal started
        starting = subprocess.Popen([*control, "start"], stdout=subprocess.DEVNULL)
        started = True
        wait_for(lambda: accepting(engine), timeout=60, step=0.05)
        accepted = time.monotonic()
        assert starting.wait(timeout=60) == 0
        return accepted

    try:
        yield start_again
    finally:
        if not started:
            subprocess.run([*control, "start"], check=False, timeout=60, capture_output=True)
        wait_for(lambda: accepting(engine), timeout=60, step=0.2)


def integrity(engine: sa.Engine) -> dict[str, dict[str, bool]]:
    """Per sign-up address: which parts of the sign-up transaction exist."""
    query = sa.text(
        "SELECT u.email_normalized AS email,"
        " EXISTS (SELECT 1 FROM memberships m JOIN membership_roles r ON r.membership_id = m.id"
        "         WHERE m.user_id = u.id) AS role,"
        " EXISTS (SELECT 1 FROM memberships m JOIN organizations o ON o.id = m.organization_id"
        "         WHERE m.user_id = u.id) AS organization,"
        " EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id) AS session,"
        " EXISTS (SELECT 1 FROM audit_events a"
        "         WHERE a.user_id = u.id AND a.event = 'user.signed_up') AS audited"
        " FROM users u WHERE u.email_normalized LIKE :prefix"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"prefix": f"{PREFIX}%"}).mappings()
        return {row["email"]: {k: v for k, v in row.items() if k != "email"} for row in rows}


def mixed_load(
    server: Server, emails: dict[str, str], kept_alive: dict[int, http.client.HTTPConnection]
) -> Load:
    token = sign_up(server)["access_token"]

    def plan(thread: int, n: int) -> Answer:
        kind = thread % 8
        if kind < 3:
            email = f"{unique(PREFIX)}@example.com"
            body = {"email": email, "password": PASSWORD}
            answer = exchange(server, "signup", "POST", "/api/v1/auth/signup", body)
            emails[answer.request_id] = email
            return answer
        if kind < 5:
            return exchange(server, "me", "GET", "/api/v1/auth/me", headers=bearer(token))
        if kind == 5:
            conn = kept_alive.setdefault(
                thread, http.client.HTTPConnection(server.host, server.port, timeout=30)
            )
            return exchange(
                server, "me-keepalive", "GET", "/api/v1/auth/me", headers=bearer(token), conn=conn
            )
        if kind == 6:
            return exchange(server, "healthz", "GET", "/healthz")
        return exchange(server, "readyz", "GET", "/readyz")

    return Load(plan, 8)


def test_postgres_restart_under_load_is_503_then_recovery_without_a_restart(start, engine, figures):
    cluster = local_cluster()
    others = other_test_runs()
    assert not others, "other test runs use this PostgreSQL; run `make faults` alone:\n" + (
        "\n".join(others)
    )
    gunicorn = start(GUNICORN_ENV)
    server = gunicorn.server
    workers = gunicorn.worker_pids()
    emails: dict[str, str] = {}
    kept_alive: dict[int, http.client.HTTPConnection] = {}

    try:
        with mixed_load(server, emails, kept_alive) as load:
            time.sleep(2.0)
            stopping = time.monotonic()
            with postgres_down(cluster, engine) as start_again:
                down = time.monotonic()
                time.sleep(OUTAGE)
                restarting = time.monotonic()
                back = start_again()
            time.sleep(RECOVERY_WITHIN + AFTER)
    finally:
        for conn in kept_alive.values():
            conn.close()

    answers = load.answers
    # Sent once the server was down, answered before it was told to start: nothing can succeed.
    outage = by_label([a for a in answers if a.started >= down and a.ended <= restarting])
    failed = [a for a in answers if a.status != 0 and a.status >= 400 and a.label != "readyz"]
    recovered = max((a.ended for a in failed if a.started >= stopping), default=back)
    figures(
        f"PostgreSQL stopped in {down - stopping:.1f} s, down {back - down:.1f} s "
        f"(start issued after {restarting - down:.1f} s, then accepting connections)"
    )
    figures(f"before: {summary(load.between(0, stopping))}")
    for label in sorted(outage):
        figures(f"outage, {label}: {summary(outage[label])}")
    figures(f"after: {summary(load.between(back, back + 3600))}")
    figures(f"last failure answered {recovered - back:+.2f} s from PostgreSQL's return")

    assert [a for a in answers if a.error] == [], summary(answers)
    assert {a.status for a in answers} <= {200, 201, 503}, summary(answers)
    for answer in (a for a in answers if a.status == 503):
        assert answer.code == "service_unavailable", answer
        assert int(answer.retry_after or 0) > 0, answer
    assert max(a.elapsed for a in answers) <= HANG_BOUND, summary(answers)
    for label in ("signup", "me", "me-keepalive", "readyz"):
        seen = outage.get(label, [])
        assert {a.status for a in seen} == {503}, (label, summary(seen))
    assert {a.status for a in outage.get("healthz", [])} == {200}
    assert recovered - back <= RECOVERY_WITHIN
    late = load.between(back + RECOVERY_WITHIN, back + 3600)
    assert late
    assert {a.status for a in late} <= {200, 201}, summary(late)
    assert gunicorn.process.poll() is None
    assert gunicorn.worker_pids() == workers

    accounts = integrity(engine)
    half_written = {email: parts for email, parts in accounts.items() if not all(parts.values())}
    assert half_written == {}
    created = [emails[a.request_id] for a in answers if a.label == "signup" and a.status == 201]
    refused = [emails[a.request_id] for a in answers if a.label == "signup" and a.status != 201]
    assert set(created) <= set(accounts)
    committed_anyway = [email for email in refused if email in accounts]
    figures(
        f"sign-ups: {len(created)} × 201, {len(refused)} refused, of which "
        f"{len(committed_anyway)} committed before the answer was lost (complete); "
        f"{len(half_written)} half-written"
    )
    logins = [
        exchange(
            server, "login", "POST", "/api/v1/auth/login", {"login": email, "password": PASSWORD}
        )
        for email in created
    ]
    figures(f"every 201 logs in: {summary(logins)}")
    assert {a.status for a in logins} == {200}, summary(logins)
