"""Budgets spent by hand where a route decorator cannot key them, because the key is known only
once the credential is read: an API key's requests (RL-5) and an account's TOTP attempts (RL-4,
MF-2).

They are counted in the limiter's storage (Redis: shared by every worker and host). When that
storage fails, the count falls back to this process for a few seconds (fail open to per-process
limits, as the route limits do) and the failure is logged: never a 500, never a hang.
"""

from __future__ import annotations

import math
import time

import structlog
from flask import current_app
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter

from authapp.platform.errors import RateLimited
from authapp.platform.extensions import limiter

log = structlog.get_logger(__name__)
EXTENSION = "authapp.budgets"
STORAGE_RETRY_SECONDS = 5.0  # a failed storage is not asked again for this long


class _Fallback:
    """One app's per-process count, and until when its storage is not asked (per app, so that
    apps built in one process, as tests do, never share a failure)."""

    def __init__(self) -> None:
        self.local = FixedWindowRateLimiter(MemoryStorage())
        self.storage_down_until = 0.0


def _fallback() -> _Fallback:
    found: _Fallback | None = current_app.extensions.get(EXTENSION)
    if found is None:  # first use in this app; a race makes two, and one is kept
        found = current_app.extensions.setdefault(EXTENSION, _Fallback())
    return found


def configured(name: str) -> RateLimitItem:
    """The limit named by configuration variable `name` ("10/15 minutes")."""
    return parse(str(current_app.config[name]))


def spend(item: RateLimitItem, namespace: str, identifier: str, message: str) -> None:
    """Count one use of `identifier`'s budget; raises RateLimited (with Retry-After) when spent."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    fallback = _fallback()
    shared = time.monotonic() >= fallback.storage_down_until
    strategy: RateLimiter = limiter.limiter if shared else fallback.local
    try:
        allowed, reset_at = _hit(strategy, item, namespace, identifier)
    except StorageError:  # only the store's own failure (platform/config.py wraps it) counts here
        log.warning("ratelimit.storage_failed", budget=namespace, exc_info=True)
        fallback.storage_down_until = time.monotonic() + STORAGE_RETRY_SECONDS
        allowed, reset_at = _hit(fallback.local, item, namespace, identifier)
    if not allowed:
        # reset_at is the storage's wall clock, so the wait is read against time.time().
        retry_after = math.ceil(reset_at - time.time())
        raise RateLimited(message, retry_after=retry_after, scope=namespace)


def _hit(
    strategy: RateLimiter, item: RateLimitItem, namespace: str, identifier: str
) -> tuple[bool, float]:
    if strategy.hit(item, namespace, identifier):
        return True, 0.0
    return False, strategy.get_window_stats(item, namespace, identifier).reset_time
