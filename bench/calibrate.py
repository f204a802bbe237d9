"""The bcrypt limit, measured in the same run: cores ÷ the median time of one operation at the
production cost. No service can log in (or sign up) faster than its cores can hash."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import bcrypt

ROUNDS = 12
SAMPLES = 7


@dataclass(frozen=True)
class BcryptLimit:
    cores: int
    checkpw_ms: float  # median of SAMPLES
    hashpw_ms: float

    @property
    def login_rps(self) -> float:
        return self.cores / (self.checkpw_ms / 1000)

    @property
    def signup_rps(self) -> float:
        return self.cores / (self.hashpw_ms / 1000)

    def as_json(self) -> dict[str, float]:
        return {
            "rounds": ROUNDS,
            "cores": self.cores,
            "checkpw_median_ms": round(self.checkpw_ms, 1),
            "hashpw_median_ms": round(self.hashpw_ms, 1),
            "login_limit_rps": round(self.login_rps, 2),
            "signup_limit_rps": round(self.signup_rps, 2),
        }


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _median_ms(operation: Callable[[], object]) -> float:
    timings = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        operation()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def measure() -> BcryptLimit:
    password = b"a password to time"
    stored = bcrypt.hashpw(password, bcrypt.gensalt(ROUNDS))
    return BcryptLimit(
        cores=cores(),
        checkpw_ms=_median_ms(lambda: bcrypt.checkpw(password, stored)),
        hashpw_ms=_median_ms(lambda: bcrypt.hashpw(password, bcrypt.gensalt(ROUNDS))),
    )
