"""Where a request's CPU goes, by layer: each layer's own time, nested layers subtracted.

Wraps the functions that enter a layer (PyJWT, SQLAlchemy, marshmallow, logging, the app's
request hooks, ...) with a timer on this thread's CPU clock. Time is charged to the innermost
layer that is running; what no wrapper claims is WSGI, Flask and the views. The wrappers cost
CPU themselves, so the probe reports absolute CPU from a run without them and only the shares
from a run with them.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

BASE = "WSGI + Flask + views"
_stack: list[str] = [BASE]
_spent: Counter[str] = Counter()
_last = [0]


def _switch() -> None:
    now = time.thread_time_ns()
    _spent[_stack[-1]] += now - _last[0]
    _last[0] = now


def timed(layer: str, function: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(function, "__layer__", None):
        return function

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _switch()
        _stack.append(layer)
        try:
            return function(*args, **kwargs)
        finally:
            _switch()
            _stack.pop()

    wrapper.__layer__ = layer  # type: ignore[attr-defined]
    return wrapper


def _patch(owner: Any, name: str, layer: str) -> None:
    setattr(owner, name, timed(layer, getattr(owner, name)))


def _hook_layer(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", "") or ""
    if module.startswith(("prometheus_client", "authapp.platform.metrics")):
        return "metrics"
    if module.startswith("flask_limiter"):
        return "rate limits"
    return "hooks"


def _wrap_hooks(app: Any) -> None:
    for registry in (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.teardown_appcontext_funcs,
    ):
        funcs = registry.values() if isinstance(registry, dict) else [registry]
        for hooks in funcs:
            hooks[:] = [timed(_hook_layer(hook), hook) for hook in hooks]


def install(app: Any) -> None:
    """Wrap the layers' entry points (once per process) and `app`'s request hooks."""
    import logging

    import jwt.api_jws
    import jwt.api_jwt
    import marshmallow
    import redis.client
    from flask.json.provider import DefaultJSONProvider
    from sqlalchemy.engine.base import Connection, Engine
    from sqlalchemy.orm.session import Session
    from sqlalchemy.pool.base import _ConnectionFairy

    for owner, names in (
        (jwt.api_jwt.PyJWT, ("decode_complete", "encode")),
        (jwt.api_jws.PyJWS, ("decode_complete", "encode")),
    ):
        for name in names:
            _patch(owner, name, "JWT")
    for owner, names in (
        (Session, ("execute", "commit", "rollback", "close", "flush", "get")),
        (Connection, ("execute", "commit", "rollback", "close")),
        (Engine, ("connect",)),
        (_ConnectionFairy, ("_checkout", "_checkin")),
    ):
        for name in names:
            _patch(owner, name, "database")
    from authapp.platform import statements

    _patch(statements, "first_row", "database")  # the hot statements skip Connection.execute
    _patch(redis.client.Redis, "execute_command", "rate limits")
    _patch(marshmallow.Schema, "dump", "serialisation")
    _patch(DefaultJSONProvider, "response", "serialisation")
    _patch(DefaultJSONProvider, "dumps", "serialisation")
    import flask.templating

    _patch(flask.templating, "_render", "serialisation")
    _patch(logging.Logger, "handle", "logging")
    from authapp.platform import logs

    _patch(logs.AccessLogger, "access", "logging")  # its line may skip Logger.handle
    _wrap_hooks(app)


@contextmanager
def measuring() -> Iterator[Counter[str]]:
    """Nanoseconds of CPU per layer spent on this thread while the block runs."""
    _spent.clear()
    _stack[:] = [BASE]
    _last[0] = time.thread_time_ns()
    spent: Counter[str] = Counter()
    try:
        yield spent
    finally:
        _switch()
        spent.update(_spent)
