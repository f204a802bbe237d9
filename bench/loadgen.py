"""wrk, driven by the Lua scripts in bench/lua; each prints one `BENCH_RESULT {json}` line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_RESULT "
# A request slower than gunicorn's worker timeout has failed anyway; wrk's own default (2 s)
# would call a slow answer an error.
TIMEOUT = "30s"


@dataclass(frozen=True)
class Load:
    """One wrk run: `script` with `args` against `url`."""

    script: str
    url: str
    connections: int
    duration: float
    threads: int = 2
    args: tuple[str, ...] = ()
    capture: Path | None = None  # login and sign-up scripts write new refresh tokens here

    def capturing(self, path: Path) -> Load:
        return replace(self, capture=path)

    def command(self) -> list[str]:
        return [
            wrk_path(),
            f"-t{min(self.threads, self.connections)}",
            f"-c{self.connections}",
            f"-d{max(1, round(self.duration))}s",
            f"--timeout={TIMEOUT}",
            "--latency",
            "-s",
            str(LUA / self.script),
            self.url,
            "--",
            *self.args,
        ]


@dataclass
class Result:
    """What wrk measured (latencies in milliseconds)."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: dict[str, int]  # connect (refused), read, write, timeout: sockets, not statuses
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def ok_rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> dict[int, int]:
        return {s: n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}

    @property
    def socket_errors(self) -> int:
        return sum(self.errors.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "rps": round(self.rps, 1),
            "ok_rps": round(self.ok_rps, 2),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "socket_errors": self.errors,
            **self.extra,
        }


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    return found


class Running:
    """A wrk started in the background (two loads at once: /me during a login flood)."""

    def __init__(self, load: Load) -> None:
        self.load = load
        env = {**os.environ, "BENCH_LUA": str(LUA)}
        env.pop("BENCH_CAPTURE", None)
        if load.capture is not None:
            env["BENCH_CAPTURE"] = str(load.capture)
        self.process = subprocess.Popen(
            load.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    def result(self) -> Result:
        stdout, stderr = self.process.communicate(timeout=self.load.duration + 120)
        return parse(stdout, stderr, self.process.returncode)


def run(load: Load) -> Result:
    return Running(load).result()


def parse(stdout: str, stderr: str, returncode: int) -> Result:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARKER)), None)
    if returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    data = json.loads(line[len(MARKER) :])
    latency = data["latency_us"]
    errors = data["errors"]
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=round(latency["p50"] / 1000, 2),
        p90_ms=round(latency["p90"] / 1000, 2),
        p99_ms=round(latency["p99"] / 1000, 2),
        max_ms=round(latency["max"] / 1000, 2),
        statuses={int(s): n for s, n in data["statuses"].items()},
        errors={name: errors[name] for name in ("connect", "read", "write", "timeout")},
    )
