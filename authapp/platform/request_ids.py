"""Each request's id: the client's X-Request-ID when it is a sane token, else a fresh one. One
value in the WSGI environ, read by the error envelope (errors.py), the logs (bound in
structlog's contextvars) and the X-Request-ID header (hooks.SecurityHeaders, after Flask)."""

from __future__ import annotations

import random
import re
from collections.abc import MutableMapping
from typing import Any

import structlog
from flask import has_request_context, request

SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")
ENVIRON_KEY = "authapp.request_id"


def bind(environ: MutableMapping[str, Any], incoming: str) -> str:
    """The id of the request whose environ this is, chosen once and bound to its log lines."""
    request_id = incoming if SANE.fullmatch(incoming) else new()
    environ[ENVIRON_KEY] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def current() -> str | None:
    return request.environ.get(ENVIRON_KEY) if has_request_context() else None


def new() -> str:
    """128 random bits as hex, like uuid4().hex, from Python's PRNG (which CPython reseeds in
    every forked worker): a request id only tells requests apart in logs (it guards nothing),
    and uuid4 asks the kernel every time."""
    return f"{random.getrandbits(128):032x}"  # noqa: S311 - not a secret
