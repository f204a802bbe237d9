"""`make soak`: authapp under a steady mixed load for SOAK_DURATION (default 10 minutes),
sampling every SOAK_SAMPLE seconds (default 10) each worker's RSS, the PostgreSQL connections
to its database and the outbox backlog (F18, docs/security.md).

PASS when each worker's RSS stays within ±10 % of its level after the warm-up, the
connection count makes no new high in the second half, the backlog is back to 0 once the load
stops (with no dead messages), and no answer is a 5xx or a socket error.

Workers are not recycled during a soak (GUNICORN_MAX_REQUESTS=0): recycling would hide a leak.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

from bench import deploy, report, stack
from bench.deploy import say, show
from bench.loadgen import Load, Result, Running
from bench.options import Options, seconds
from bench.scenarios import ME, ORGANIZATION

RSS_TOLERANCE = 0.10
DRAIN_SECONDS = 90.0  # the backlog must be empty this long after the load stops
# The mix, as wrk connections per script: mostly token checks, some keyed calls, a steady
# trickle of refreshes, logins and sign-ups (bcrypt-bound, so few connections suffice).
MIX = {"me": 8, "api_key": 4, "refresh": 4, "login": 2, "signup": 1}


@dataclass
class Sample:
    at: float  # seconds since the load started
    rss_kib: dict[int, int]  # worker pid -> resident set size
    connections: int
    outbox: dict[str, int]  # status -> messages

    def as_json(self) -> dict[str, Any]:
        return {
            "t": round(self.at, 1),
            "rss_mib": {str(pid): round(kib / 1024, 1) for pid, kib in self.rss_kib.items()},
            "pg_connections": self.connections,
            "outbox": self.outbox,
        }


@dataclass
class Observer:
    """Reads what the soak watches: /proc for the workers, PostgreSQL for the rest."""

    server: stack.Server
    database_url: str
    database: str
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> Sample:
        rss = {pid: _rss_kib(pid) for pid in self.server.worker_pids()}
        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cur:
            # Our own connection excluded: only the service's pool counts.
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (self.database,),
            )
            connections = int(cur.fetchone()[0])  # type: ignore[index]
            cur.execute("SELECT status, count(*) FROM outbox_messages GROUP BY status")
            outbox = {status: int(n) for status, n in cur.fetchall()}
        conn.close()
        return Sample(time.monotonic() - self.started, rss, connections, outbox)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # exited between the listing and the read
    return 0


def loads(
    opts: Options, server: stack.Server, prepared: deploy.Prepared, nonce: str, duration: float
) -> dict[str, Load]:
    def load(script: str, name: str, *args: str) -> Load:
        return Load(script, server.url, MIX[name], duration, threads=1, args=args)

    bearer = ("Authorization", "Bearer ", str(prepared.access_tokens))
    return {
        "me": load("get.lua", "me", ME, *bearer),
        "api_key": load(
            "get.lua", "api_key", ORGANIZATION, "X-API-Key", "", str(prepared.api_keys)
        ),
        "refresh": load("refresh.lua", "refresh", str(prepared.refresh_tokens), "1"),
        "login": load("login.lua", "login", str(prepared.emails), stack.PASSWORD),
        "signup": load("signup.lua", "signup", f"soak{nonce}", stack.PASSWORD),
    }


def rss_target(samples: list[Sample], warmup: float) -> report.Target:
    """The largest drift of any worker from its first sample after the warm-up."""
    settled = [s for s in samples if s.at >= warmup] or samples[-1:]
    reference = settled[0].rss_kib
    drift = 0.0
    for sample in settled:
        if sample.rss_kib.keys() != reference.keys():
            drift = float("inf")  # a worker died or was replaced: not flat
            break
        for pid, kib in sample.rss_kib.items():
            drift = max(drift, abs(kib - reference[pid]) / reference[pid])
    return report.Target(
        "worker RSS drift after warm-up (<= 0.10)", drift, RSS_TOLERANCE, at_least=False
    )


def connections_target(samples: list[Sample], warmup: float) -> report.Target:
    """How far the second half's highest connection count exceeds the first half's."""
    settled = [s for s in samples if s.at >= warmup] or samples
    half = len(settled) // 2
    first = max((s.connections for s in settled[: max(half, 1)]), default=0)
    second = max((s.connections for s in settled[half:]), default=0)
    return report.Target(
        "PostgreSQL connections: new high in 2nd half", float(second - first), 0, at_least=False
    )


def backlog_target(after: Sample) -> report.Target:
    left = after.outbox.get("pending", 0) + after.outbox.get("dead", 0)
    return report.Target(
        "outbox pending + dead after the load (= 0)", float(left), 0, at_least=False
    )


def errors_target(results: dict[str, Result]) -> report.Target:
    bad = sum(
        sum(n for status, n in r.statuses.items() if status >= 500) + r.socket_errors
        for r in results.values()
    )
    return report.Target("5xx answers + socket errors (= 0)", float(bad), 0, at_least=False)


def drain(observer: Observer) -> Sample:
    """Samples until the outbox has nothing pending, or DRAIN_SECONDS pass."""
    deadline = time.monotonic() + DRAIN_SECONDS
    sample = observer.sample()
    while sample.outbox.get("pending", 0) and time.monotonic() < deadline:
        time.sleep(5)
        sample = observer.sample()
    return sample


@dataclass
class Outcome:
    samples: list[Sample]
    after: Sample  # once the backlog drained (or DRAIN_SECONDS passed)
    results: dict[str, Result]
    found: list[report.Target]

    def as_json(self) -> dict[str, Any]:
        return {
            "samples": [s.as_json() for s in self.samples],
            "after_load": self.after.as_json(),
            "loads": {name: r.as_json() for name, r in self.results.items()},
            "targets": [t.as_json() for t in self.found],
        }


def soak(
    opts: Options, workdir: Path, nonce: str, duration: float, every: float, warmup: float
) -> Outcome:
    with ExitStack() as exits:
        authapp = deploy.start_authapp(opts, exits, workdir, nonce, GUNICORN_MAX_REQUESTS="0")
        prepared = deploy.prepare_authapp(opts, authapp.server, workdir, nonce)
        observer = Observer(authapp.server, authapp.database_url, f"bench_{nonce}")
        say(
            f"mixed load for {duration:.0f} s (wrk connections: {MIX}), "
            f"a sample every {every:.0f} s"
        )
        running = {
            name: Running(load)
            for name, load in loads(opts, authapp.server, prepared, nonce, duration).items()
        }
        samples = []
        for tick in range(1, max(1, int(duration // every)) + 1):
            # On a fixed schedule: the time a sample takes does not push the next one back.
            time.sleep(max(0.0, observer.started + tick * every - time.monotonic()))
            samples.append(observer.sample())
            say(_sample_line(samples[-1]))
        results = {name: run.result() for name, run in running.items()}
        after = drain(observer)
        say(f"after the load: {_sample_line(after)}")
    found = [
        rss_target(samples, warmup),
        connections_target(samples, warmup),
        backlog_target(after),
        errors_target(results),
    ]
    return Outcome(samples, after, results, found)


def _sample_line(sample: Sample) -> str:
    rss = " ".join(f"{pid}:{kib / 1024:.1f}MiB" for pid, kib in sample.rss_kib.items())
    return (
        f"t={sample.at:5.0f}s rss {rss}  pg connections {sample.connections}  "
        f"outbox {sample.outbox}"
    )


def summary(found: list[report.Target], results: dict[str, Result]) -> str:
    lines = [f"{'load':<8} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  non-2xx"]
    for name, result in results.items():
        statuses = " ".join(f"{s}:{n}" for s, n in result.non_2xx.items()) or "-"
        lines.append(
            f"{name:<8} {MIX[name]:>5} {result.rps:>8.1f} {result.p50_ms:>8.1f} "
            f"{result.p99_ms:>8.1f}  {statuses}"
        )
    lines += ["", "targets"]
    for target in found:
        figure = "-" if target.figure is None else f"{target.figure:.3f}"
        lines.append(f"  {target.verdict:<5} {target.text:<48} {figure:>8}")
    return "\n".join(lines)


def main() -> None:
    opts = Options.from_env()
    deploy.check_prerequisites(opts)
    duration = seconds(os.environ.get("SOAK_DURATION", "") or "10m")
    every = seconds(os.environ.get("SOAK_SAMPLE", "") or "10s")
    warmup = seconds(os.environ.get("SOAK_WARMUP", "") or str(min(60.0, duration / 5)))
    stack.raise_open_files()
    nonce = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix="authapp-soak-"))
    document: dict[str, Any] = {
        "kind": "soak",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": deploy.machine(),
        "settings": {
            "duration_s": duration,
            "sample_s": every,
            "warmup_s": warmup,
            "mix_connections": MIX,
            "ratelimit": deploy.ratelimit_note(opts),
            "gunicorn": deploy.gunicorn_note(GUNICORN_MAX_REQUESTS="0 (no recycling)"),
            "authapp": deploy.AUTHAPP_NOTE,
            "environment": deploy.overrides(),
        },
    }
    say(deploy.ratelimit_note(opts))
    try:
        outcome = soak(opts, workdir, nonce, duration, every, warmup)
    finally:
        if opts.keep_logs:
            say(f"server logs and data files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document |= outcome.as_json()
    document["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    show(f"\n{summary(outcome.found, outcome.results)}\n")
    say(f"written: {report.write(document).relative_to(stack.ROOT)}")


if __name__ == "__main__":
    main()
