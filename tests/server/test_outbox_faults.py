"""Fault scenarios of the outbox and the offload pool against real gunicorn (2 gthread workers),
a real SMTP server (aiosmtpd) that comes and goes on one fixed port, a TCP tarpit and a real HTTP
receiver that hangs.

F3 (SMTP down: requests unchanged, mail pending, the breaker opens, every mail
arrives once SMTP is back), F4 (SMTP tarpit: request threads never blocked, pool tasks time out,
no WORKER TIMEOUT), F5 (a hanging webhook receiver does not slow requests; retries keep the
delivery id; CF-2), F6 (kill -9 of a worker loses nothing), and docs/architecture.md "Rules", rule 3
(two processes draining one outbox: at least once, nothing lost).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD
from tests.server.conftest import (
    BIN,
    ROOT,
    Server,
    bearer,
    gunicorn_processes,
    request_json,
    sign_up,
    unique,
)
from tests.servers import Mailbox, SmtpServer, Tarpit, free_port, wait_for, webhook_receiver

# The server's SMTP_URL is fixed when gunicorn starts, so the port is chosen at import time and
# the SMTP server (or the tarpit) is started and stopped on it by the tests themselves.
SMTP_PORT = free_port()
GUNICORN_ENV = {
    "SMTP_URL": f"smtp://127.0.0.1:{SMTP_PORT}",
    "OUTBOX_SWEEP_SECONDS": "1",
    "OUTBOX_RETRY_SECONDS": "0.5",
    # Capped backoff and a high attempt limit: a mail that waited out an outage of the length
    # of a test is retried within seconds of the peer's return, and never goes dead here.
    "OUTBOX_RETRY_MAX_SECONDS": "2",
    "OUTBOX_MAX_ATTEMPTS": "100",
    "BREAKER_RESET_SECONDS": "2",
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_TIMEOUT": "2",
    "OFFLOAD_TIMEOUT": "2",
}
SIGNUP = "/api/v1/auth/signup"
ME = "/api/v1/auth/me"
ORGANIZATION = "/api/v1/settings/organization"
PING = "/api/v1/settings/webhooks/test"
ARRIVAL_SECONDS = 15.0  # a few sweep intervals, retry delays and a breaker reset


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    """The SMTP server of SMTP_URL, down until a test starts it."""
    peer = SmtpServer(port=SMTP_PORT, mailbox=Mailbox())
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def database(server: Server) -> Iterator[sa.Engine]:
    """The server's own database, to look at its outbox rows."""
    engine = sa.create_engine(server.env["DATABASE_URL"])
    yield engine
    engine.dispose()


@contextmanager
def smtp_up(smtp: SmtpServer) -> Iterator[Mailbox]:
    smtp.start()
    try:
        yield smtp.mailbox
    finally:
        smtp.stop()


def timed_sign_ups(server: Server, count: int, prefix: str) -> tuple[list[str], list[float]]:
    """`count` sign-ups, one after another on fresh connections: addresses and latencies."""
    addresses, latencies = [], []
    for _ in range(count):
        address = f"{unique(prefix)}@example.com"
        started = time.perf_counter()
        status, _, body = request_json(
            server, "POST", SIGNUP, {"email": address, "password": PASSWORD}
        )
        latencies.append(time.perf_counter() - started)
        assert status == 201, body
        addresses.append(address)
    return addresses, latencies


def unchanged(slow: list[float], baseline: list[float]) -> bool:
    """Behaviour, not a benchmark: a median within 3x its baseline plus 0.2 s of slack."""
    return statistics.median(slow) <= 3 * statistics.median(baseline) + 0.2


def email_rows(database: sa.Engine, addresses: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The outbox email rows to each address (JSON payload: `to` is the address as typed)."""
    query = sa.text(
        "SELECT id::text AS id, status, attempts, last_error, payload->>'to' AS address "
        "FROM outbox_messages WHERE kind = 'email' AND payload->>'to' IN :addresses"
    ).bindparams(sa.bindparam("addresses", expanding=True))
    found: dict[str, list[dict[str, Any]]] = {address: [] for address in addresses}
    with database.connect() as conn:
        for row in conn.execute(query, {"addresses": addresses}).mappings():
            found[row["address"]].append(dict(row))
    return found


def statuses(database: sa.Engine, addresses: list[str]) -> set[str]:
    return {row["status"] for rows in email_rows(database, addresses).values() for row in rows}


def all_arrived(mailbox: Mailbox, addresses: list[str]) -> Callable[[], bool]:
    return lambda: all(mailbox.to(address) for address in addresses)


def delivery_ids(mailbox: Mailbox, address: str) -> list[str]:
    return [str(message["X-Authapp-Delivery"]) for message in mailbox.to(address)]


def both_workers(server: Server) -> set[int]:
    """The pids of the two workers, once both are forked (at start-up, or after a respawn)."""

    def two() -> set[int] | None:
        found = gunicorn_processes(server)[1]
        return found if len(found) == 2 else None

    return wait_for(two, timeout=15)


def new_log(server: Server, since: int) -> str:
    return server.logs()[since:]


def test_smtp_down_leaves_sign_ups_fast_and_every_mail_arrives_when_it_returns(
    server, smtp, database
):
    """F3: with SMTP down a sign-up is still a 201 in normal time, its verify mail is pending
    and the SMTP breaker opens; once SMTP is back on the same port every mail arrives, carrying
    its outbox row id as the delivery id."""
    with smtp_up(smtp) as mailbox:
        up, up_latencies = timed_sign_ups(server, 10, "up.")
        wait_for(all_arrived(mailbox, up), timeout=ARRIVAL_SECONDS)

    down, down_latencies = timed_sign_ups(server, 10, "down.")

    assert unchanged(down_latencies, up_latencies), (down_latencies, up_latencies)
    rows = email_rows(database, down)
    assert all(len(rows[address]) == 1 for address in down), rows
    assert statuses(database, down) == {"pending"}
    # Failures counted per worker open its breaker: later attempts are refused without a call.
    wait_for(
        lambda: any(
            (row["last_error"] or "").startswith("CircuitBreakerError")
            for found in email_rows(database, down).values()
            for row in found
        ),
        timeout=10,
    )

    with smtp_up(smtp) as mailbox:
        wait_for(all_arrived(mailbox, down), timeout=ARRIVAL_SECONDS)
        for address in down:
            assert set(delivery_ids(mailbox, address)) == {rows[address][0]["id"]}
        assert "/verify-email?token=" in Mailbox.text(mailbox.to(down[0])[0])
    wait_for(lambda: statuses(database, down) == {"sent"}, timeout=5)


def test_smtp_tarpit_never_blocks_requests_nor_times_out_a_worker(server, smtp, database):
    """F4: SMTP accepts TCP and never answers. Sign-ups answer as fast as with SMTP up, the
    pool's SMTP calls time out (OFFLOAD_TIMEOUT) and retry, the same gunicorn workers live on
    (no WORKER TIMEOUT), and every mail arrives once a real SMTP server is back."""
    log_start = len(server.logs())
    with smtp_up(smtp) as mailbox:
        up, up_latencies = timed_sign_ups(server, 8, "tarpit-base.")
        wait_for(all_arrived(mailbox, up), timeout=ARRIVAL_SECONDS)
    workers = both_workers(server)

    tarpit = Tarpit(SMTP_PORT)
    try:
        held, held_latencies = timed_sign_ups(server, 8, "tarpit.")
        # Each attempt holds a pool thread for OFFLOAD_TIMEOUT, then fails "timed out".
        wait_for(
            lambda: any(
                "timed out" in (row["last_error"] or "")
                for found in email_rows(database, held).values()
                for row in found
            ),
            timeout=10,
        )
        assert tarpit.accepted, "the pool never reached the tarpit"
        status, _, body = request_json(server, "GET", "/healthz")
        assert status == 200, body
    finally:
        tarpit.close()

    assert unchanged(held_latencies, up_latencies), (held_latencies, up_latencies)
    assert statuses(database, held) == {"pending"}
    assert gunicorn_processes(server)[1] == workers
    assert "WORKER TIMEOUT" not in new_log(server, log_start)
    with smtp_up(smtp) as mailbox:
        wait_for(all_arrived(mailbox, held), timeout=ARRIVAL_SECONDS)


def test_kill_9_of_a_worker_loses_no_mail(server, smtp, database):
    """F6: sign-ups run while a worker is killed with SIGKILL and SMTP is down. Whatever the
    clients saw, the database is consistent (an account has its verify mail row and vice
    versa), the master replaces the worker, and the mail of every account arrives once SMTP is
    back (the surviving or the new worker's sweeper sends it; duplicates carry one id)."""
    workers = both_workers(server)
    victim = min(workers)
    attempted: list[str] = []
    answers: dict[str, Any] = {}
    stop = threading.Event()

    def keep_signing_up() -> None:
        while not stop.is_set():
            address = f"{unique('f6.')}@example.com"
            attempted.append(address)
            try:
                answers[address] = request_json(
                    server, "POST", SIGNUP, {"email": address, "password": PASSWORD}
                )[0]
            except (OSError, http.client.HTTPException) as exc:  # the killed worker's answers:
                # a reset, or a response cut short (IncompleteRead); kept, not hidden
                answers[address] = exc

    clients = [threading.Thread(target=keep_signing_up) for _ in range(3)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.7)
        os.kill(victim, signal.SIGKILL)
        time.sleep(1.5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=15)

    created = [address for address in attempted if answers.get(address) == 201]
    assert len(created) >= 10, answers
    odd = {a: answers.get(a) for a in attempted if not isinstance(answers.get(a), int | Exception)}
    assert not odd, odd
    assert {answers[a] for a in attempted if isinstance(answers[a], int)} <= {201}, answers
    replaced = both_workers(server)
    assert victim not in replaced
    with database.connect() as conn:
        accounts = set(
            conn.scalars(
                sa.text("SELECT email FROM users WHERE email IN :emails").bindparams(
                    sa.bindparam("emails", expanding=True)
                ),
                {"emails": attempted},
            )
        )
    rows = email_rows(database, attempted)
    assert set(created) <= accounts
    assert {address for address, found in rows.items() if found} == accounts  # all or nothing
    assert all(len(rows[address]) == 1 for address in accounts), rows

    with smtp_up(smtp) as mailbox:
        # A row claimed by the killed worker is leased for 3 * OFFLOAD_TIMEOUT + 5 s = 11 s.
        wait_for(all_arrived(mailbox, sorted(accounts)), timeout=ARRIVAL_SECONDS + 11)
        for address in accounts:
            assert set(delivery_ids(mailbox, address)) == {rows[address][0]["id"]}


def _drain(server: Server) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "flask"), "--app", "authapp", "outbox", "drain"],
        cwd=ROOT,
        env=dict(server.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_drains_at_once_deliver_every_mail_and_report_duplicates(server, smtp, database):
    """Rule 3: two `flask outbox drain` processes on one outbox deliver every pending mail at
    least once; duplicates (allowed, same delivery id) are counted and reported. The rows are
    first made not due for a while (as a lease or a backoff does), so the workers' sweepers
    stay out of it and only the two drains compete."""
    addresses, _ = timed_sign_ups(server, 20, "drain.")
    ids = [row["id"] for found in email_rows(database, addresses).values() for row in found]
    assert len(ids) == 20

    def postpone() -> bool:
        # A delivery in flight when this runs reschedules its row itself: repeat until settled.
        with database.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE outbox_messages SET next_attempt_at = now() + interval '1 hour' "
                    "WHERE id IN :ids AND status = 'pending'"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": ids},
            )
        time.sleep(0.5)
        with database.connect() as conn:
            return conn.scalar(
                sa.text(
                    "SELECT count(*) FROM outbox_messages WHERE id IN :ids AND status = 'pending' "
                    "AND next_attempt_at > now() + interval '30 minutes'"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": ids},
            ) == len(ids)

    wait_for(postpone, timeout=10)

    with smtp_up(smtp) as mailbox:
        drains = [_drain(server), _drain(server)]
        outputs = [drain.communicate(timeout=60) for drain in drains]
        for drain, (out, err) in zip(drains, outputs, strict=True):
            assert drain.returncode == 0, (out, err)
        received = {address: delivery_ids(mailbox, address) for address in addresses}

    lost = [address for address, got in received.items() if not got]
    assert not lost, f"never delivered: {lost}"
    assert statuses(database, addresses) == {"sent"}
    duplicates = sum(len(got) - 1 for got in received.values())
    sent = sum(int(m) for out, _ in outputs for m in re.findall(r"^sent: (\d+)$", out, re.M))
    print(f"\ntwo drains: {len(ids)} mails, {duplicates} duplicates, {[o for o, _ in outputs]}")
    assert sent == len(ids) + duplicates, outputs  # each drain's "sent" is a real delivery
    assert all(len(set(got)) == 1 for got in received.values()), received  # one id per mail
    assert duplicates == 0, (
        f"{duplicates} of {len(ids)} mails were sent twice by two concurrent drains"
    )


def test_a_hanging_webhook_receiver_does_not_slow_requests(server, database):
    """F5, CF-2: while every delivery to a receiver hangs past WEBHOOK_TIMEOUT, GET /auth/me
    keeps its latency and no worker times out; once the receiver answers, every ping arrives
    with the delivery id the API returned."""
    log_start = len(server.logs())
    owner = sign_up(server, confirmed=True, organization_name=unique("Hooks "))
    headers = bearer(owner["access_token"])
    with webhook_receiver() as receiver:
        status, _, body = request_json(
            server, "PATCH", ORGANIZATION, {"webhook_url": receiver.url}, headers
        )
        assert status == 200, body
        try:
            baseline = [_timed(server, "GET", ME, headers) for _ in range(15)]
            receiver.answer(200, delay=30)
            pings = []
            for _ in range(6):
                status, _, body = request_json(server, "POST", PING, headers=headers)
                assert status == 202, body
                pings.append(body["delivery_id"])
            wait_for(lambda: len(receiver.deliveries) >= 2, timeout=10)  # pool threads now hang
            during = [_timed(server, "GET", ME, headers) for _ in range(30)]

            assert unchanged(during, baseline), (during, baseline)
            assert max(during) < 2.0, during  # a request blocked on a delivery would take longer
            receiver.answer(200)

            def delivered() -> bool:
                received = {d.headers.get("X-Authapp-Delivery") for d in receiver.deliveries}
                return received >= set(pings) and {
                    row["status"] for row in _webhook_rows(database, pings)
                } == {"sent"}

            try:
                wait_for(delivered, timeout=ARRIVAL_SECONDS + 5)
            except AssertionError:
                pytest.fail(
                    f"pings {pings} not all delivered: rows {_webhook_rows(database, pings)}, "
                    f"received {[d.headers.get('X-Authapp-Delivery') for d in receiver.deliveries]}"
                )
        finally:
            request_json(server, "PATCH", ORGANIZATION, {"webhook_url": None}, headers)

    assert "WORKER TIMEOUT" not in new_log(server, log_start)


def _timed(server: Server, method: str, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    status, _, body = request_json(server, method, path, headers=headers)
    elapsed = time.perf_counter() - started
    assert status == 200, body
    return elapsed


def _webhook_rows(database: sa.Engine, ids: list[str]) -> list[dict[str, Any]]:
    query = sa.text(
        "SELECT id::text AS id, status, attempts, last_error FROM outbox_messages WHERE id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    with database.connect() as conn:
        return [dict(row) for row in conn.execute(query, {"ids": ids}).mappings()]
