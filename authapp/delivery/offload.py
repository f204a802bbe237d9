"""The one place blocking third-party I/O runs (docs/architecture.md "Rules", rule 2): bounded
thread pools.

One pool per lane and process, created on first use, so gunicorn's fork never inherits them.
Lanes keep one dependency from taking the threads another needs (docs/architecture.md
"Offload and outbox"): `mail` (OFFLOAD_WORKERS, OFFLOAD_QUEUE; also any other task) and `webhooks`
(WEBHOOK_WORKERS, WEBHOOK_QUEUE), so receivers that tenants choose can never hold the threads
that reset and verification mail need (F5). Each lane's backlog is
bounded: when it is full, `submit` refuses at once (`Rejected`) and the outbox keeps the work.
A task may carry a key (an organization): a lane runs at most `per_key` tasks of one key at a
time, and the others wait their turn in the lane without holding a thread.

Tasks get plain values only (ids, strings, numbers, dicts and lists of them) and open their own
app context; each dependency call goes through its circuit breaker.
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pybreaker
import structlog
from flask import Flask, current_app

from authapp.platform import metrics
from authapp.platform.config import OFFLOAD_LANES
from authapp.platform.extensions import db

log = structlog.get_logger(__name__)
EXTENSION = "authapp.delivery.offload"
MAIL, WEBHOOKS = "mail", "webhooks"  # the lanes of config.OFFLOAD_LANES
# Breakers per target (a webhook's organization and host) are chosen by tenants: a bound keeps
# a tenant that invents targets from growing the process without end.
MAX_KEYED_BREAKERS = 1000


class Undeliverable(Exception):
    """A call that can never succeed (no recipient, a forbidden target): do not retry it."""


class Rejected(RuntimeError):
    """The backlog is full; the caller carries on and the outbox sweeper retries later."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Job:
    name: str
    call: Callable[[], Any]
    key: str | None
    future: Future[Any] = field(default_factory=Future)
    started: bool = False  # holds one of its key's turns


class _Lane:
    def __init__(self, app: Flask, name: str) -> None:
        workers_setting, queue_setting, per_key_setting = OFFLOAD_LANES[name]
        workers, queue = app.config[workers_setting], app.config[queue_setting]
        self.app, self.name = app, name
        self.per_key = app.config[per_key_setting] if per_key_setting else 0
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        # Accepted and not finished: beyond this a submit is refused, never queued.
        self.slots = threading.BoundedSemaphore(workers + queue)
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()  # tasks of each key holding a turn
        self.waiting: dict[str, deque[_Job]] = {}  # tasks of a key whose turns are all taken

    def submit(self, job: _Job) -> None:
        if not self.slots.acquire(blocking=False):
            raise Rejected(f"the {self.name} backlog is full ({job.name})", "backlog_full")
        metrics.offload_accepted(self.app, self.name)  # before the callback, which may run at once
        job.future.add_done_callback(lambda _f: self._finished(job))
        if self._take_turn(job) and not self._start(job):
            raise Rejected(f"the {self.name} pool is shut down", "shut_down")

    def _take_turn(self, job: _Job) -> bool:
        if job.key is None:
            return True
        with self.lock:
            if self.running[job.key] >= self.per_key:
                self.waiting.setdefault(job.key, deque()).append(job)
                return False
            self.running[job.key] += 1
            job.started = True
        return True

    def _start(self, job: _Job) -> bool:
        try:
            queued = self.executor.submit(_execute, job)
        except RuntimeError:  # shut down meanwhile
            job.future.cancel()
            return False
        # shutdown(cancel_futures=True) cancels what waits in the executor: the job's too.
        queued.add_done_callback(lambda f: job.future.cancel() if f.cancelled() else None)
        return True

    def _finished(self, job: _Job) -> None:
        self.slots.release()
        metrics.offload_finished(self.app, self.name)
        if job.key is None or not job.started:
            return
        with self.lock:
            self.running[job.key] -= 1
            queue = self.waiting.get(job.key)
            after = queue.popleft() if queue else None
            if queue is not None and not queue:
                del self.waiting[job.key]
            if after is not None:
                self.running[job.key] += 1
                after.started = True
            elif not self.running[job.key]:
                del self.running[job.key]  # the counters hold only keys with work
        if after is not None:
            self._start(after)

    def shutdown(self, *, wait: bool) -> None:
        with self.lock:
            waiting = [job for queue in self.waiting.values() for job in queue]
            self.waiting.clear()
        for job in waiting:
            job.future.cancel()
        self.executor.shutdown(wait=wait, cancel_futures=True)


def _execute(job: _Job) -> None:
    if not job.future.set_running_or_notify_cancel():
        return
    try:
        job.future.set_result(job.call())
    except BaseException as exc:  # the future must end, or the job's slot would never return
        job.future.set_exception(exc)


class _KeyedBreakers(pybreaker.CircuitBreakerListener):
    """One dependency's breakers per target, at most MAX_KEYED_BREAKERS (the least recently
    used go first). Metrics count the open ones: a series per target would let tenants mint
    series."""

    def __init__(self, app: Flask, dependency: str) -> None:
        self.app, self.dependency = app, dependency
        self.breakers: OrderedDict[str, pybreaker.CircuitBreaker] = OrderedDict()
        self.open: set[str] = set()
        self.lock = threading.Lock()

    def get(self, key: str) -> pybreaker.CircuitBreaker:
        with self.lock:
            found = self.breakers.get(key)
            if found is not None:
                self.breakers.move_to_end(key)
                return found
            found = self.breakers[key] = _new_breaker(self.app, f"{self.dependency}:{key}")
            while len(self.breakers) > MAX_KEYED_BREAKERS:
                self.open.discard(self.breakers.popitem(last=False)[0])
            count = len(self.open)
        found.add_listener(self)  # outside self.lock: pybreaker calls listeners under its own
        metrics.breakers_open(self.app, self.dependency, count)
        return found

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        key = (cb.name or "").removeprefix(f"{self.dependency}:")
        with self.lock:
            if new_state.name == pybreaker.STATE_OPEN and self.breakers.get(key) is cb:
                self.open.add(key)
            else:
                self.open.discard(key)
            count = len(self.open)
        metrics.breakers_open(self.app, self.dependency, count)


class _Pool:
    def __init__(self, app: Flask) -> None:
        self.pid = os.getpid()
        self.lanes = {name: _Lane(app, name) for name in OFFLOAD_LANES}
        self.breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self.keyed: dict[str, _KeyedBreakers] = {}
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


def submit(
    task: Callable[..., Any], *args: Any, lane: str = MAIL, key: str | None = None
) -> Future[Any]:
    """Run `task(*args)` on `lane` in its own app context, after the tasks of the same `key`
    that hold the lane's turns for it. Raises Rejected when the lane is full."""
    for arg in args:
        require_plain(arg)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    job = _Job(task.__name__, lambda: _run(app, task, args), key)
    try:
        _pool(app).lanes[lane].submit(job)
    except Rejected as exc:
        log.warning("offload.rejected", task=job.name, lane=lane, reason=exc.reason)
        metrics.offload_rejected(app, lane, job.name, exc.reason)
        raise
    return job.future


def _run(app: Flask, task: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    with app.app_context():
        try:
            return task(*args)
        except Exception:  # a boundary: the task's own bookkeeping already recorded the failure
            log.exception("offload.task_failed", task=task.__name__)
            return None
        finally:
            db.session.remove()


def _new_breaker(app: Flask, name: str) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(
        fail_max=app.config["BREAKER_FAILURES"],
        reset_timeout=app.config["BREAKER_RESET_SECONDS"],
        name=name,
    )


def breaker(dependency: str, key: str | None = None) -> pybreaker.CircuitBreaker:
    """The circuit breaker of a dependency (`smtp`), or of one of its targets (`webhook`, key
    `<organization id>:<host>`: one tenant's failing receiver never opens another's), per
    process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    pool = _pool(app)
    with pool.lock:
        if key is None:
            found = pool.breakers.get(dependency)
            if found is None:
                found = pool.breakers[dependency] = _new_breaker(app, dependency)
                metrics.watch_breaker(app, found)
            return found
        keyed = pool.keyed.get(dependency)
        if keyed is None:
            keyed = pool.keyed[dependency] = _KeyedBreakers(app, dependency)
    return keyed.get(key)


def shutdown(app: Flask, *, wait: bool = True) -> None:
    """Stop taking work; wait for running tasks. Pending messages stay in the outbox."""
    pool: _Pool | None = app.extensions.pop(EXTENSION, None)
    if pool is not None and pool.pid == os.getpid():
        for lane in pool.lanes.values():
            lane.shutdown(wait=wait)
