"""The targets (bench/README.md "Targets") as ratios to the floor (the baseline) taken in one run,
the floor's own check, the table, and the JSON under results/."""

from __future__ import annotations

import json
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.calibrate import BcryptLimit
from bench.scenarios import ME8_CONNECTIONS, Row

RESULTS = Path(__file__).resolve().parent / "results"
# The baseline is a floor only while its /me costs a fair share of a bare request: below this
# share of its own /ping, something other than the unavoidable work (a config, a log, a hook,
# a starved pool) dominates it, and ratios to it say nothing about authapp.
FLOOR_SHARE = 0.35


@dataclass(frozen=True)
class Target:
    text: str
    figure: float | None  # None: a scenario it needs was not run
    limit: float
    at_least: bool  # passes when figure >= limit; else when figure <= limit
    strict: bool = False  # > or < instead

    @property
    def passed(self) -> bool | None:
        if self.figure is None:
            return None
        if self.strict:
            return self.figure > self.limit if self.at_least else self.figure < self.limit
        return self.figure >= self.limit if self.at_least else self.figure <= self.limit

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]

    def as_json(self) -> dict[str, Any]:
        figure = None if self.figure is None else round(self.figure, 3)
        return {"target": self.text, "figure": figure, "limit": self.limit, "result": self.verdict}


class Figures:
    """Rows looked up by scenario and server."""

    def __init__(self, rows: Iterable[Row], limit: BcryptLimit) -> None:
        self.rows = {(row.scenario, row.server): row for row in rows}
        self.limit = limit

    def get(self, scenario: str, server: str = "authapp") -> Row | None:
        return self.rows.get((scenario, server))

    def metric(self, scenario: str, name: str, server: str = "authapp") -> float | None:
        """`Result.<name>` of a row; None when that scenario was not run."""
        row = self.get(scenario, server)
        return None if row is None else float(getattr(row.result, name))


def ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def _bad_answers(row: Row | None, allowed: Container[int]) -> float | None:
    """Socket errors, worker timeouts and statuses outside `allowed`."""
    if row is None:
        return None
    unexpected = sum(n for status, n in row.result.statuses.items() if status not in allowed)
    return float(unexpected + row.result.socket_errors + row.workers.get("worker_timeouts", 0))


def floor_target(f: Figures) -> Target:
    """The baseline's /me 2xx/s as a share of its /ping 2xx/s (same load, same run)."""
    return Target(
        f"floor: baseline /me vs its /ping (>= {FLOOR_SHARE:.2f}x)",
        ratio(f.metric("me", "ok_rps", "baseline"), f.metric("ping", "ok_rps", "baseline")),
        FLOOR_SHARE,
        at_least=True,
    )


def _against_floor(f: Figures, scenario: str, label: str) -> list[Target]:
    """An authapp GET's 2xx/s (>= 0.60x) and p99 (<= 2x) against the floor's /me."""
    return [
        Target(
            f"{label} 2xx req/s vs floor /me (>= 0.60x)",
            ratio(f.metric(scenario, "ok_rps"), f.metric("me", "ok_rps", "baseline")),
            0.60,
            at_least=True,
        ),
        Target(
            f"{label} p99 vs floor /me p99 (<= 2x)",
            ratio(f.metric(scenario, "p99_ms"), f.metric("me", "p99_ms", "baseline")),
            2.0,
            at_least=False,
        ),
    ]


def targets(f: Figures) -> list[Target]:
    floor_rps = f.metric("me", "ok_rps", "baseline")
    return [
        floor_target(f),
        *_against_floor(f, "me", "/me"),
        *_against_floor(f, "api_key", "API key"),
        Target(
            f"/me at {ME8_CONNECTIONS} conns: p50 (< 5 ms)",
            f.metric("me8", "p50_ms"),
            5.0,
            at_least=False,
            strict=True,
        ),
        Target(
            f"/me at {ME8_CONNECTIONS} conns: p99 (< 50 ms)",
            f.metric("me8", "p99_ms"),
            50.0,
            at_least=False,
            strict=True,
        ),
        Target(
            "login 2xx/s vs bcrypt limit (>= 0.95x)",
            ratio(f.metric("login", "ok_rps"), f.limit.login_rps),
            0.95,
            at_least=True,
        ),
        Target(
            "sign-up 2xx/s vs hash limit (>= 0.90x)",
            ratio(f.metric("signup", "ok_rps"), f.limit.signup_rps),
            0.90,
            at_least=True,
        ),
        Target(
            "refresh 2xx/s vs floor /me (>= 0.50x)",
            ratio(f.metric("refresh", "ok_rps"), floor_rps),
            0.50,
            at_least=True,
        ),
        Target(
            "/me p99 in login flood vs quiet (<= 2x)",
            ratio(f.metric("me_flood", "p99_ms"), f.metric("me", "p99_ms")),
            2.0,
            at_least=False,
        ),
        Target(
            "flood: only 401/429/503, no worker timeouts",
            _bad_answers(f.get("flood"), {401, 429, 503}),
            0,
            at_least=False,
        ),
        Target(
            "1,000 keep-alive conns: errors + non-2xx (= 0)",
            _bad_answers(f.get("many"), range(200, 300)),
            0,
            at_least=False,
        ),
    ]


def _bcrypt_text(row: Row, figures: Figures) -> str:
    """Login and sign-up: against the limit and, for authapp, the baseline. On a busy machine
    both fall short of a limit timed on one thread; the baseline shows how much is the machine."""
    res = row.result
    limit = figures.limit.login_rps if row.scenario == "login" else figures.limit.signup_rps
    text = f"{res.ok_rps / limit:.2f}x {'bcrypt' if row.scenario == 'login' else 'hash'} limit"
    base = figures.get(row.scenario, "baseline")
    if row.server == "authapp" and base and base.result.ok_rps:
        text += f", {res.ok_rps / base.result.ok_rps:.2f}x base"
    return text


def _floor_text(row: Row, figures: Figures) -> str:
    """authapp's /me, API-key and refresh rows against the floor's /me; the floor's /me against
    its own /ping."""
    res = row.result
    if row.server == "baseline":
        ping = figures.get("ping", "baseline")
        if not (ping and ping.result.ok_rps):
            return ""
        return f"{res.ok_rps / ping.result.ok_rps:.2f}x its /ping"
    floor = figures.get("me", "baseline")
    if not (floor and floor.result.ok_rps):
        return ""
    text = f"{res.ok_rps / floor.result.ok_rps:.2f}x floor /me"
    if row.scenario != "refresh" and floor.result.p99_ms:
        text += f", p99 {res.p99_ms / floor.result.p99_ms:.2f}x"
    return text


def ratio_text(row: Row, figures: Figures) -> str:
    """The row's figure against what bounds it: the floor, the bcrypt limit or quiet /me."""
    res = row.result
    if res.requests == 0:
        return "no answer within the run"
    if row.scenario == "me_flood":
        quiet = figures.get("me", row.server)
        return (
            f"p99 {res.p99_ms / quiet.result.p99_ms:.2f}x quiet"
            if quiet and quiet.result.p99_ms
            else ""
        )
    if row.scenario in ("login", "signup"):
        return _bcrypt_text(row, figures)
    if (row.scenario, row.server) in (
        ("me", "baseline"),
        ("me", "authapp"),
        ("api_key", "authapp"),
        ("refresh", "authapp"),
    ):
        return _floor_text(row, figures)
    return ""


def _statuses(row: Row) -> str:
    return " ".join(f"{s}:{n}" for s, n in row.result.non_2xx.items()) or "-"


def _socket_errors(row: Row) -> str:
    errors = {name: n for name, n in row.result.errors.items() if n}
    return " ".join(f"{name}:{n}" for name, n in errors.items()) or "-"


def table(rows: list[Row], figures: Figures, found: list[Target]) -> str:
    head = (
        f"{'scenario':<27} {'server':<8} {'conns':>5} {'req/s':>8} {'2xx/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8}  {'non-2xx':<18} {'socket err':<12} ratio"
    )
    lines = [head, "-" * (len(head) + 24)]
    for row in rows:
        res = row.result
        line = (
            f"{row.title:<27} {row.server:<8} {row.connections:>5} {res.rps:>8.1f} "
            f"{res.ok_rps:>8.1f} {res.p50_ms:>8.1f} {res.p99_ms:>8.1f}  {_statuses(row):<18} "
            f"{_socket_errors(row):<12} {ratio_text(row, figures)}"
        )
        lines.append(line.rstrip())
    limit = figures.limit
    lines += [
        "",
        f"bcrypt limit (cost 12, {limit.cores} cores): checkpw median {limit.checkpw_ms:.0f} ms "
        f"-> {limit.login_rps:.2f} logins/s; hashpw median {limit.hashpw_ms:.0f} ms "
        f"-> {limit.signup_rps:.2f} sign-ups/s",
        "",
        "targets",
    ]
    width = max((len(target.text) for target in found), default=0)
    for target in found:
        figure = "-" if target.figure is None else f"{target.figure:.2f}"
        lines.append(f"  {target.verdict:<5} {target.text:<{width}} {figure:>8}")
    return "\n".join(lines)


def write(document: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{document.get('kind', 'bench')}-{stamp}.json"
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return path
