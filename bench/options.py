"""What a bench or soak run may be told, from the environment (bench/README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
# BENCH_SCENARIOS names, in the order they run (bench/README.md says what each does).
SCENARIOS = ("ping", "me", "me8", "flood", "api_key", "login", "signup", "refresh", "many")
# Run with a scenario whatever BENCH_SCENARIOS says: the floor check divides the baseline's /me
# by its /ping, measured in the same run.
IMPLIES = {"me": ("ping",)}


def seconds(raw: str) -> float:
    """`5s`, `2m`, `90`: a duration in seconds."""
    value = raw.strip().lower()
    factor = UNITS.get(value[-1:])
    return float(value[:-1] if factor else value) * (factor or 1.0)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class Options:
    duration: float  # each measured wrk run
    warmup: float  # each server's warm-up before its first measured run
    connections: int  # the usual load: enough to spread over both workers' threads
    flood_connections: int
    many_connections: int  # the keep-alive scenario
    wrk_threads: int
    users: int  # accounts prepared before the run (their tokens rotate in the scripts)
    api_keys: int
    ratelimit: str  # "redis" (per-address limits raised, counted in Redis) or "off"
    redis_url: str
    postgres_url: str  # the server's maintenance database; scratch databases go beside it
    scenarios: frozenset[str]  # empty: all; else those asked for and those they imply
    keep_logs: bool

    @classmethod
    def from_env(cls) -> Options:
        ratelimit = _env("BENCH_RATELIMIT", "redis")
        if ratelimit not in ("redis", "off"):
            raise SystemExit(f"BENCH_RATELIMIT={ratelimit!r}: expected redis or off")
        scenarios = frozenset(
            s.strip() for s in _env("BENCH_SCENARIOS", "").split(",") if s.strip()
        )
        unknown = sorted(scenarios - set(SCENARIOS))
        if unknown:
            raise SystemExit(
                f"BENCH_SCENARIOS: unknown {', '.join(unknown)}; expected some of "
                f"{','.join(SCENARIOS)}"
            )
        scenarios |= {implied for name in scenarios for implied in IMPLIES.get(name, ())}
        return cls(
            duration=seconds(_env("BENCH_DURATION", "20s")),
            warmup=seconds(_env("BENCH_WARMUP", "3s")),
            connections=int(_env("BENCH_CONNECTIONS", "32")),
            flood_connections=int(_env("BENCH_FLOOD_CONNECTIONS", "32")),
            many_connections=int(_env("BENCH_MANY_CONNECTIONS", "1000")),
            wrk_threads=int(_env("BENCH_WRK_THREADS", "2")),
            users=int(_env("BENCH_USERS", "64")),
            api_keys=int(_env("BENCH_API_KEYS", "16")),
            ratelimit=ratelimit,
            redis_url=_env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
            postgres_url=_env(
                "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
            ),
            scenarios=scenarios,
            keep_logs=_env("BENCH_KEEP_LOGS", "0") not in ("0", "false", "no"),
        )

    def wants(self, scenario: str) -> bool:
        return not self.scenarios or scenario in self.scenarios
