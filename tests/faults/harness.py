"""What every fault scenario needs: its own gunicorn (2 gthread workers) on its own PostgreSQL
database, load from threads of the test, and figures that say what happened.

`launch` starts `gunicorn -c gunicorn.conf.py wsgi:app` as tests/server's `server` fixture does
(bench/launch.py, the same environment, `flask db upgrade` and `flask seed` first), but hands the
test the process too: SIGTERM, worker pids and their memory are part of the scenarios. Every
request carries its own X-Request-ID, so an answer can be matched with the server's access log.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import launch as launcher
from tests.conftest import SERVER
from tests.server.conftest import Server, healthy, run_flask, served_by, server_env
from tests.servers import wait_for

ANSWER_TIMEOUT = 30.0  # the client's own limit: far past every bound a scenario asserts
ERROR_PAUSE = 0.05


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it. `status` 0: no HTTP answer, `error` says why."""

    label: str
    request_id: str
    started: float  # time.monotonic() just before connecting
    elapsed: float
    status: int = 0
    code: str = ""  # the error envelope's code
    retry_after: str | None = None
    error: str = ""
    body: Any = None

    @property
    def ended(self) -> float:
        return self.started + self.elapsed


def exchange(
    server: Server,
    label: str,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = ANSWER_TIMEOUT,
) -> Answer:
    """One request: over `conn` (kept alive) or a fresh connection closed afterwards.

    A connection error is an answer to count, never an exception: scenarios assert on them.
    """
    request_id = f"{label}-{uuid.uuid4().hex[:16]}"
    sent = {"X-Request-ID": request_id, **(headers or {})}
    fresh = conn is None
    if fresh:
        sent["Connection"] = "close"
        conn = http.client.HTTPConnection(
            server.host, server.port, timeout=timeout, source_address=server.source_address
        )
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()  # a kept-alive connection reconnects on its next request
        return Answer(label, request_id, started, time.monotonic() - started, error=exc_name(exc))
    finally:
        if fresh:
            conn.close()
    elapsed = time.monotonic() - started
    payload = (
        json.loads(raw) if raw and "json" in (response.getheader("Content-Type") or "") else None
    )
    code = payload.get("error", {}).get("code", "") if isinstance(payload, dict) else ""
    return Answer(
        label,
        request_id,
        started,
        elapsed,
        status=response.status,
        code=code,
        retry_after=response.getheader("Retry-After"),
        body=payload,
    )


def exc_name(exc: BaseException) -> str:
    return type(exc).__name__


class Load:
    """`threads` threads calling `plan(thread, n)` until the block ends; every Answer kept.

    `plan` sends one request and returns its Answer; each thread numbers its calls from 0.
    """

    def __init__(self, plan: Callable[[int, int], Answer], threads: int) -> None:
        self.plan = plan
        self.answers: list[Answer] = []
        self.stopping = threading.Event()
        self.failures: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def _run(self, thread: int) -> None:
        n = 0
        while not self.stopping.is_set():
            try:
                answer = self.plan(thread, n)
            except BaseException as exc:  # a broken plan must fail the test, not hang it
                self.failures.append(exc)
                return
            self.answers.append(answer)  # list.append is atomic
            if answer.error:
                time.sleep(ERROR_PAUSE)  # a refused connection returns at once: no busy loop
            n += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=ANSWER_TIMEOUT + 5)
        if exc_type is None:  # else the block's own error is the one to see
            assert not self.failures, self.failures

    def between(self, start: float, end: float) -> list[Answer]:
        """The answers to requests sent in [start, end)."""
        return [a for a in self.answers if start <= a.started < end]


def summary(answers: Sequence[Answer]) -> str:
    """Requests, statuses (with error codes), connection errors and latency, in one line."""
    if not answers:
        return "0 requests"
    outcomes = Counter(
        f"{a.status}" + (f" {a.code}" if a.code else "") if a.status else a.error for a in answers
    )
    latencies = sorted(a.elapsed for a in answers)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    shown = ", ".join(f"{outcome}: {count}" for outcome, count in sorted(outcomes.items()))
    return (
        f"{len(answers)} requests ({shown}); latency p50 {statistics.median(latencies) * 1000:.0f}"
        f" ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )


def by_label(answers: Sequence[Answer]) -> dict[str, list[Answer]]:
    grouped: dict[str, list[Answer]] = {}
    for answer in answers:
        grouped.setdefault(answer.label, []).append(answer)
    return grouped


def lock_waiters(engine: sa.Engine) -> int:
    """Connections to the engine's database waiting on a lock (a held row or table lock)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :db AND wait_event_type = 'Lock'"
                ),
                {"db": engine.url.database},
            ).scalar_one()
        )


@contextmanager
def prepared_database(name: str) -> Iterator[str]:
    """A scratch database, migrated and seeded the way an operator does it; dropped after.

    tests/conftest's scratch_database keeps a pooled admin connection, which the PostgreSQL
    restart scenario kills; this one connects afresh for the CREATE and again for the DROP.
    """
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    try:
        env = server_env(url, {})
        run_flask(env, "db", "upgrade")
        run_flask(env, "seed")
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Gunicorn:
    server: Server
    launched: launcher.Launched

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.launched.process

    @property
    def pid(self) -> int:
        return self.launched.pid

    def worker_pids(self) -> list[int]:
        return self.launched.worker_pids()

    def rss_kib(self) -> dict[int, int]:
        """Each worker's resident memory (VmRSS, KiB)."""
        sizes = {}
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[pid] = int(line.split()[1])
        return sizes

    def client_connections(self) -> dict[int, int]:
        """Established connections to the server's port that each worker holds (from /proc)."""
        established = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == self.server.port and fields[3] == "01":
                established.add(f"socket:[{fields[9]}]")
        held = {}
        for pid in self.worker_pids():
            fds = Path(f"/proc/{pid}/fd")
            held[pid] = sum(1 for fd in fds.iterdir() if _readlink(fd) in established)
        return held

    def wait_for_workers(self, count: int = 2) -> list[int]:
        return wait_for(lambda: len(self.worker_pids()) == count and self.worker_pids(), 20)

    def access_log_ids(self) -> set[str]:
        """Request ids of every answer gunicorn's access log shows."""
        ids = set()
        for line in self.server.logs().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("logger") == "gunicorn.access" and event.get("request_id"):
                ids.add(str(event["request_id"]))
        return ids

    def worker_timeouts(self) -> list[str]:
        return [line for line in self.server.logs().splitlines() if "WORKER TIMEOUT" in line]

    def terminate(self, timeout: float = 15.0) -> int | None:
        return self.launched.stop(timeout)


@contextmanager
def launch(
    logs: Path,
    database_url: str,
    extra: Mapping[str, str] | None = None,
    *,
    app_database_url: str | None = None,
) -> Iterator[Gunicorn]:
    """gunicorn on `database_url` (migrated and seeded); `app_database_url` is what the app is
    given instead, e.g. a port that nothing listens on yet. Waits for /healthz only: readiness
    is the scenarios' business."""
    env = server_env(app_database_url or database_url, extra or {})
    launched = launcher.start_gunicorn(env, logs, wait=False)
    running = Gunicorn(served_by(launched, env), launched)
    try:
        healthy(running.launched)
        running.wait_for_workers()
        yield running
    finally:
        running.terminate()


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


def database_engine(url: str) -> sa.Engine:
    """The scenario's own look at its database (AUTOCOMMIT: every check sees the latest)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
