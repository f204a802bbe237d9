"""The one place blocking third-party I/O runs (DESIGN.md rule 2): a bounded thread pool.

One `ThreadPoolExecutor` per process, created on first use, so gunicorn's fork never inherits
it. The backlog is bounded: when it is full, `submit` refuses at once (`Rejected`) and the
outbox keeps the work. Tasks get plain values only (ids, strings, numbers, dicts and lists of
them) and open their own app context; each dependency call goes through its circuit breaker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pybreaker
import structlog
from flask import Flask, current_app

from authapp import metrics
from authapp.extensions import db

log = structlog.get_logger(__name__)
EXTENSION = "authapp.offload"


class Undeliverable(Exception):
    """A call that can never succeed (no recipient, a forbidden target): do not retry it."""


class Rejected(RuntimeError):
    """The backlog is full; the caller carries on and the outbox sweeper retries later."""


class _Pool:
    def __init__(self, app: Flask) -> None:
        config = app.config
        self.pid = os.getpid()
        self.executor = ThreadPoolExecutor(
            max_workers=config["OFFLOAD_WORKERS"], thread_name_prefix="offload"
        )
        # Running tasks plus waiting ones: beyond this a submit is refused, never queued.
        self.slots = threading.BoundedSemaphore(config["OFFLOAD_WORKERS"] + config["OFFLOAD_QUEUE"])
        self.breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self.lock = threading.Lock()


def _pool(app: Flask) -> _Pool:
    pool: _Pool | None = app.extensions.get(EXTENSION)
    if pool is None or pool.pid != os.getpid():  # first use, or a forked child
        with _creation:
            pool = app.extensions.get(EXTENSION)
            if pool is None or pool.pid != os.getpid():
                pool = app.extensions[EXTENSION] = _Pool(app)
    return pool


_creation = threading.Lock()


def require_plain(value: object) -> None:
    """Refuse ORM rows, sessions and Flask proxies: a task must never share the request's."""
    if isinstance(value, dict):
        for key, item in value.items():
            require_plain(key)
            require_plain(item)
    elif isinstance(value, list | tuple):
        for item in value:
            require_plain(item)
    elif not isinstance(value, str | int | float | bool | type(None)):
        raise TypeError(
            f"offload takes ids, strings, numbers and dicts, not {type(value).__name__}"
        )


def submit(task: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run `task(*args)` on the pool in its own app context. Raises Rejected when full."""
    for arg in args:
        require_plain(arg)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    pool = _pool(app)
    if not pool.slots.acquire(blocking=False):
        log.warning("offload.rejected", task=task.__name__)
        metrics.offload_rejected(app, task.__name__, "backlog_full")
        raise Rejected(f"the offload backlog is full ({task.__name__})")
    try:
        future = pool.executor.submit(_run, app, task, args)
    except RuntimeError:  # shut down meanwhile
        pool.slots.release()
        metrics.offload_rejected(app, task.__name__, "shut_down")
        raise Rejected("the offload pool is shut down") from None
    metrics.offload_accepted(app)  # before the callback, which may run at once
    future.add_done_callback(lambda _f: _finished(app, pool))
    return future


def _finished(app: Flask, pool: _Pool) -> None:
    pool.slots.release()
    metrics.offload_finished(app)


def _run(app: Flask, task: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    with app.app_context():
        try:
            return task(*args)
        except Exception:  # a boundary: the task's own bookkeeping already recorded the failure
            log.exception("offload.task_failed", task=task.__name__)
            return None
        finally:
            db.session.remove()


def breaker(name: str) -> pybreaker.CircuitBreaker:
    """The circuit breaker of one dependency (`smtp`, `webhook:<host>`), per process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    pool = _pool(app)
    with pool.lock:
        found = pool.breakers.get(name)
        if found is None:
            found = pool.breakers[name] = pybreaker.CircuitBreaker(
                fail_max=app.config["BREAKER_FAILURES"],
                reset_timeout=app.config["BREAKER_RESET_SECONDS"],
                name=name,
            )
            metrics.watch_breaker(app, found)
    return found


def backlog(app: Flask) -> int:
    """Tasks running or waiting in this process (for metrics)."""
    pool: _Pool | None = app.extensions.get(EXTENSION)
    if pool is None or pool.pid != os.getpid():
        return 0
    return pool.executor._work_queue.qsize()


def shutdown(app: Flask, *, wait: bool = True) -> None:
    """Stop taking work; wait for running tasks. Pending messages stay in the outbox."""
    pool: _Pool | None = app.extensions.pop(EXTENSION, None)
    if pool is not None and pool.pid == os.getpid():
        pool.executor.shutdown(wait=wait, cancel_futures=True)
