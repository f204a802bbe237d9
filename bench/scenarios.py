"""The scenarios of `make bench`, each a wrk run (or two at once) against authapp or the
baseline (the floor). Pairs run back to back, so a noisy neighbour skews both sides of a ratio
alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import calibrate
from bench.calibrate import BcryptLimit
from bench.loadgen import Load, Result, Running, run
from bench.options import Options
from bench.stack import PASSWORD, Server

ME = "/api/v1/auth/me"
PING = "/ping"  # the baseline's constant answer
ORGANIZATION = "/api/v1/settings/organization"
FLOOD_HEAD_START = 1.0  # the flood saturates the cores before /me is measured
ME8_CONNECTIONS = 8  # `me8`: /me below saturation, for latency rather than throughput
# ... paced: each connection pauses this long after an answer, so 8 connections ask for at most
# 8 / (latency + pause), a few hundred requests a second: well below what the server can do.
ME8_PAUSE_MS = 20
# After wrk stops, gunicorn still finishes the requests its threads hold (a queue of bcrypt
# checks can take seconds): the next scenario starts once, for this long, the log has not grown
# and the workers have used under IDLE_CPU of a core. The baseline writes no access log: only
# the CPU tells when it is done.
QUIET_SECONDS = 2.0
IDLE_CPU = 0.05
SETTLE_LIMIT = 120.0


@dataclass
class Row:
    """One measured load: which scenario, against which server, and what wrk saw."""

    scenario: str
    title: str
    server: str
    connections: int
    result: Result
    workers: dict[str, int] = field(default_factory=dict)  # boots and timeouts in the log

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "server": self.server,
            "connections": self.connections,
            **self.result.as_json(),
            "gunicorn": self.workers,
        }


@dataclass(frozen=True)
class Files:
    """What prepare.py wrote for the Lua scripts."""

    emails: Path  # both servers have these accounts
    authapp_tokens: Path
    baseline_tokens: Path
    refresh_tokens: Path
    api_keys: Path
    captured: Path  # refresh tokens of sessions made by the login and sign-up scenarios


class Bench:
    """Runs the scenarios in order and keeps a Row for each measured load."""

    def __init__(
        self,
        opts: Options,
        authapp: Server,
        baseline: Server,
        files: Files,
        nonce: str,
        *,
        log: Callable[[str], None],
    ) -> None:
        self.opts, self.authapp, self.baseline = opts, authapp, baseline
        self.files, self.nonce = files, nonce
        self.rows: list[Row] = []
        self.limit: BcryptLimit | None = None
        self.log = log

    def _tokens(self, server: Server) -> Path:
        return self.files.authapp_tokens if server is self.authapp else self.files.baseline_tokens

    def _load(self, script: str, server: Server, *args: str, **kw: Any) -> Load:
        kw.setdefault("connections", self.opts.connections)
        kw.setdefault("duration", self.opts.duration)
        kw.setdefault("threads", self.opts.wrk_threads)
        return Load(script, server.url, args=args, **kw)

    def _me(self, server: Server, path: str = ME, **kw: Any) -> Load:
        return self._load(
            "get.lua", server, path, "Authorization", "Bearer ", str(self._tokens(server)), **kw
        )

    def _measure(self, scenario: str, title: str, server: Server, load: Load) -> Row:
        self.log(f"  {scenario:<10} {server.name:<8} {load.connections:>5} connections")
        offset = server.log_size()
        result = run(load)
        settle(server)  # a worker timeout while the server drains counts for this run too
        return self._keep(scenario, title, server, load, result, offset)

    def _keep(
        self, scenario: str, title: str, server: Server, load: Load, result: Result, offset: int
    ) -> Row:
        row = Row(
            scenario, title, server.name, load.connections, result, _worker_events(server, offset)
        )
        self.rows.append(row)
        return row

    def warm_up(self) -> None:
        for server in (self.baseline, self.authapp):
            run(self._me(server, duration=self.opts.warmup))
            settle(server)

    def ping(self) -> None:
        """The floor's check: the baseline's /ping under the same load as its /me, bearer
        tokens included (ignored there), so wrk spends the same on both."""
        self._measure("ping", "GET /ping", self.baseline, self._me(self.baseline, PING))

    def me(self) -> None:
        for server in (self.baseline, self.authapp):
            self._measure("me", "GET /auth/me", server, self._me(server))

    def me8(self) -> None:
        load = self._load(
            "get.lua",
            self.authapp,
            ME,
            "Authorization",
            "Bearer ",
            str(self._tokens(self.authapp)),
            str(ME8_PAUSE_MS),
            connections=ME8_CONNECTIONS,
        )
        self._measure("me8", f"GET /auth/me, {load.connections} conns", self.authapp, load)

    def flood(self) -> None:
        """/me measured while a login flood keeps every core hashing."""
        for server in (self.authapp, self.baseline):
            flood = self._load(
                "flood.lua",
                server,
                self.nonce,
                connections=self.opts.flood_connections,
                duration=self.opts.duration + 2 * FLOOD_HEAD_START,
                threads=1,
            )
            offset = server.log_size()
            self.log(f"  {'flood':<10} {server.name:<8} {flood.connections:>5} + /me")
            flooding = Running(flood)
            time.sleep(FLOOD_HEAD_START)
            me_load = self._me(server)
            me_result = run(me_load)
            flood_result = flooding.result()
            settle(server)
            self._keep("me_flood", "GET /auth/me during flood", server, me_load, me_result, offset)
            self._keep("flood", "login flood (wrong pw)", server, flood, flood_result, offset)

    def api_key(self) -> None:
        load = self._load(
            "get.lua", self.authapp, ORGANIZATION, "X-API-Key", "", str(self.files.api_keys)
        )
        self._measure("api_key", "GET /settings/org (key)", self.authapp, load)

    def calibrate(self) -> None:
        """Right before the bcrypt-bound scenarios: the machine's load drifts during a run."""
        self.log("  bcrypt    timing checkpw and hashpw at cost 12, servers idle")
        self.limit = calibrate.measure()

    def login(self) -> None:
        for server in (self.baseline, self.authapp):
            load = self._load("login.lua", server, str(self.files.emails), PASSWORD)
            if server is self.authapp:
                load = load.capturing(self.files.captured.with_suffix(".login"))
            self._measure("login", "POST /auth/login", server, load)

    def signup(self) -> None:
        for server in (self.baseline, self.authapp):
            load = self._load("signup.lua", server, self.nonce, PASSWORD)
            if server is self.authapp:
                load = load.capturing(self.files.captured.with_suffix(".signup"))
            self._measure("signup", "POST /auth/signup", server, load)

    def refresh(self) -> None:
        """Rotates every refresh token it has: the prepared ones and those the login and
        sign-up scenarios captured."""
        tokens = []
        for path in (
            self.files.refresh_tokens,
            self.files.captured.with_suffix(".login"),
            self.files.captured.with_suffix(".signup"),
        ):
            if path.exists():
                tokens += path.read_text().split()
        if len(tokens) < 2 * self.opts.connections:
            self.log(
                f"  refresh: only {len(tokens)} tokens for {self.opts.connections} connections"
            )
        self.files.captured.write_text("".join(f"{t}\n" for t in tokens))
        load = self._load(
            "refresh.lua", self.authapp, str(self.files.captured), str(self.opts.wrk_threads)
        )
        row = self._measure("refresh", "POST /auth/refresh", self.authapp, load)
        row.result.extra["token_pool"] = len(tokens)

    def many_connections(self) -> None:
        load = self._me(self.authapp, connections=self.opts.many_connections)
        self._measure("many", f"GET /auth/me, {load.connections} conns", self.authapp, load)

    def run_all(self) -> list[Row]:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("ping", self.ping),
            ("me", self.me),
            ("me8", self.me8),
            ("flood", self.flood),
            ("api_key", self.api_key),
            ("bcrypt", self.calibrate),
            ("login", self.login),
            ("signup", self.signup),
            ("refresh", self.refresh),
            ("many", self.many_connections),
        ]
        self.warm_up()
        for name, step in steps:
            if self.opts.wants(name) or name == "bcrypt":
                step()
        return self.rows


def settle(server: Server) -> None:
    """Wait until `server` has finished what the last load left in its threads: one interval
    with a quiet log and idle workers (SETTLE_LIMIT at most)."""
    deadline = time.monotonic() + SETTLE_LIMIT
    size, cpu = server.log_size(), server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(QUIET_SECONDS)
        size_before, cpu_before = size, cpu
        size, cpu = server.log_size(), server.cpu_seconds()
        if size == size_before and cpu - cpu_before < IDLE_CPU * QUIET_SECONDS:
            return


def _worker_events(server: Server, offset: int) -> dict[str, int]:
    """gunicorn's own lines during a run: workers booted (max_requests recycling, or a crash)
    and workers killed for blowing the timeout."""
    text = server.log_since(offset)
    return {
        "worker_boots": text.count("Booting worker"),
        "worker_timeouts": text.count("WORKER TIMEOUT"),
    }
