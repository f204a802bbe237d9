"""F17 and F11 through deploy/nginx/ (docs/deployment.md "nginx in front"): nginx → gunicorn, as
shipped.

gunicorn alone gives a thread to every connection that has sent a byte, so clients that
trickle their headers fill a worker (test_body_and_header_abuse.py's strict xfail). Behind
nginx the same clients, and clients that trickle a body, hold only nginx connections: nginx
passes a request on once it has all of it. Each scenario is small (a few seconds of load):

- slow clients: as many as would fill both workers twice over, half trickling header lines and
  half a body; another client's `/healthz` stays fast, gunicorn holds none of them, and nginx
  hangs up on the header tricklers at `client_header_timeout` (10 s);
- body and header abuse: test_body_and_header_abuse.py's five kinds, 10 each, with the same
  answers (nginx refuses the bodies and the 20 KB header itself, in authapp's envelope; gunicorn
  still answers the 200 headers and the long line), while another client's traffic is served;
- login flood at the production password cost from one client: nginx lets 5 a second (bursts
  of 10) through to the hashing line and answers the rest `429 rate_limited` at once, and
  another client's token checks stay fast.

The attacker is 127.0.0.1 and the other client 127.0.0.2: nginx's limits are per client.
"""

from __future__ import annotations

import socket
import statistics
import time

import pytest

from tests.conftest import PASSWORD
from tests.faults.harness import Answer, Load, by_label, exchange, summary
from tests.faults.test_body_and_header_abuse import ABUSE, ABUSE_BOUND, EXPECTED, THREADS
from tests.server.conftest import Server, bearer, sign_up, unique
from tests.server.nginx import another_client, hung_up, nginx_in_front

pytestmark = pytest.mark.slow

# No recycling (the same workers all along); nginx is the trusted proxy (authapp.conf).
GUNICORN_ENV = {"GUNICORN_MAX_REQUESTS": "0", "TRUSTED_PROXIES": "127.0.0.1"}
SLOW_CLIENTS = 2 * 2 * THREADS  # both workers' threads, twice over
SLOW_HOLD = 6.0
HEADER_TIMEOUT = 10.0  # authapp-server.conf's client_header_timeout
HANG_UP_MARGIN = 2.0
PER_KIND = 10
FLOOD_THREADS = 16
FLOOD_SECONDS = 6.0
PASSWORD_RATE, PASSWORD_BURST = 5, 10  # authapp-http.conf's authapp_password zone
CONNECTIONS_PER_CLIENT = 64  # authapp-server.conf's limit_conn
PACE = 0.1  # another client's requests: one per thread every 0.1 s, under its 50 a second


def open_slow_clients(front: Server) -> tuple[list[socket.socket], list[socket.socket]]:
    """SLOW_CLIENTS connections: half have sent part of a header, half a header and part of a
    body (POST /refresh: the body is read before anything else happens)."""
    headers: list[socket.socket] = []
    bodies: list[socket.socket] = []
    for n in range(SLOW_CLIENTS):
        sock = socket.create_connection((front.host, front.port))
        if n % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            headers.append(sock)
        else:
            sock.sendall(
                b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            bodies.append(sock)
    return headers, bodies


def trickle(socks: list[socket.socket], data: bytes, gone: dict[int, float], since: float) -> None:
    """One more piece from each client; `gone` gets, by fileno, when the server hung up."""
    for sock in socks:
        if sock.fileno() in gone:
            continue
        try:
            sock.sendall(data)
        except OSError:
            gone[sock.fileno()] = time.monotonic() - since
            continue
        if hung_up(sock):
            gone[sock.fileno()] = time.monotonic() - since


def test_slow_clients_hold_nginx_connections_not_gunicorn_threads(start, figures):
    gunicorn = start(GUNICORN_ENV)
    with nginx_in_front(gunicorn.server) as front:
        probe = another_client(front)
        opened = time.monotonic()
        slow_headers, slow_bodies = open_slow_clients(front)
        answers: list[Answer] = []
        held: list[int] = []
        headers_gone: dict[int, float] = {}
        bodies_gone: dict[int, float] = {}
        try:
            while time.monotonic() < opened + HEADER_TIMEOUT + HANG_UP_MARGIN:
                trickle(slow_headers, b"X-Slow: 1\r\n", headers_gone, opened)  # never the end
                trickle(slow_bodies, b" ", bodies_gone, opened)  # never the last byte
                if time.monotonic() < opened + SLOW_HOLD:
                    answers.append(exchange(probe, "healthz", "GET", "/healthz", timeout=SLOW_HOLD))
                    held.append(sum(gunicorn.client_connections().values()))
                elif len(headers_gone) == len(slow_headers):
                    break
                time.sleep(0.5)
        finally:
            for sock in slow_headers + slow_bodies:
                sock.close()
        after = [exchange(probe, "after", "GET", "/healthz") for _ in range(10)]

    cut = sorted(headers_gone.values())
    figures(f"{len(slow_headers)} trickling headers, {len(slow_bodies)} trickling bodies")
    figures(f"gunicorn's client connections meanwhile: at most {max(held)}")
    figures(f"/healthz of another client meanwhile: {summary(answers)}")
    figures(f"nginx hung up on {len(cut)} header tricklers, after {cut[0]:.1f}–{cut[-1]:.1f} s")
    figures(f"body tricklers refused at once (per-client connections): {len(bodies_gone)}")
    assert answers
    assert not [a for a in answers if a.status != 200 or a.elapsed > ABUSE_BOUND], summary(answers)
    # Only nginx's kept-alive connections for the probes, never one per slow client.
    assert max(held) <= 4, held
    assert len(cut) == len(slow_headers), f"{len(cut)} of {len(slow_headers)} cut"
    assert cut[-1] <= HEADER_TIMEOUT + HANG_UP_MARGIN, cut
    # A body that keeps coming is waited for, by nginx, up to 64 requests per client at once.
    assert len(slow_bodies) - len(bodies_gone) == min(len(slow_bodies), CONNECTIONS_PER_CLIENT)
    assert [a.status for a in after] == [200] * 10


def test_body_and_header_abuse_is_answered_as_without_nginx(start, figures):
    gunicorn = start(GUNICORN_ENV)
    with nginx_in_front(gunicorn.server) as front:
        other = another_client(front)
        token = sign_up(other)["access_token"]
        workers = gunicorn.worker_pids()

        def plan(_thread: int, _n: int) -> Answer:
            time.sleep(PACE)
            return exchange(other, "me", "GET", "/api/v1/auth/me", headers=bearer(token))

        with Load(plan, 4) as load:
            abuse = [send(front) for send in ABUSE * PER_KIND]
            time.sleep(0.5)
        reached_gunicorn = gunicorn.access_log_ids()

    for kind, answers in sorted(by_label(abuse).items()):
        figures(f"{kind}: {summary(answers)}")
    figures(f"another client's /me meanwhile: {summary(load.answers)}")
    for answer in abuse:
        assert (answer.status, answer.code) == EXPECTED[answer.label], answer
        assert answer.elapsed <= ABUSE_BOUND, answer
    refused_by_nginx = {"declared-10MB", "chunked-1MB", "header-20KB"}
    assert not [
        a for a in abuse if a.label in refused_by_nginx and a.request_id in reached_gunicorn
    ]
    assert load.answers
    assert [a for a in load.answers if a.status != 200] == [], summary(load.answers)
    assert gunicorn.worker_pids() == workers
    assert gunicorn.worker_timeouts() == []


def test_a_login_flood_from_one_client_reaches_the_hashing_line_at_nginx_rate(start, figures):
    gunicorn = start(GUNICORN_ENV | {"BCRYPT_ROUNDS": "12"})
    with nginx_in_front(gunicorn.server) as front:
        other = another_client(front)
        token = sign_up(other)["access_token"]
        quiet = [me(other, token) for _ in range(10)]

        def flood(_thread: int, _n: int) -> Answer:
            body = {"login": f"{unique('ghost.')}@example.com", "password": "not " + PASSWORD}
            return exchange(front, "login", "POST", "/api/v1/auth/login", body)

        checks: list[Answer] = []
        with Load(flood, FLOOD_THREADS) as load:
            started = time.monotonic()
            while time.monotonic() < started + FLOOD_SECONDS:
                checks.append(me(other, token))
                time.sleep(0.2)
            flooded = time.monotonic() - started

    passed = [a for a in load.answers if a.status != 429]
    refused = [a for a in load.answers if a.status == 429]
    figures(f"flood ({FLOOD_THREADS} threads, {flooded:.1f} s): {summary(load.answers)}")
    figures(f"another client's /me before: {summary(quiet)}")
    figures(f"another client's /me during: {summary(checks)}")
    assert {a.status for a in load.answers} <= {401, 429, 503}, summary(load.answers)
    assert refused, summary(load.answers)
    assert all(a.code == "rate_limited" and a.retry_after == "1" for a in refused)
    # The hashing line saw at most nginx's rate (one more second for the last requests).
    assert len(passed) <= PASSWORD_BURST + PASSWORD_RATE * (flooded + 1), summary(passed)
    assert [a.status for a in checks] == [200] * len(checks), summary(checks)
    assert max(a.elapsed for a in checks) <= ABUSE_BOUND, summary(checks)
    assert statistics.median(a.elapsed for a in checks) <= ABUSE_BOUND / 4, summary(checks)


def me(server: Server, token: str) -> Answer:
    return exchange(server, "me", "GET", "/api/v1/auth/me", headers=bearer(token))
