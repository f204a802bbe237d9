"""Round trips to PostgreSQL, counted where they happen: in psycopg2.

Every message that waits for the server's answer counts: a statement, the `BEGIN` psycopg2
sends by itself before the first statement of a transaction, and a `COMMIT` or `ROLLBACK` of an
open transaction (psycopg2 sends nothing for one that never began). SQLAlchemy's pre-ping is a
statement too, and so are authapp's `PREPARE` and `EXECUTE` (shown as "EXECUTE name: the
statement it stands for"). The cost probe and the shape tests install it with `counting()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2.extensions import STATUS_BEGIN, STATUS_READY

from authapp.platform import connections

_counts = threading.local()


def _record(what: str) -> None:
    log: list[str] | None = getattr(_counts, "log", None)
    if log is not None:
        log.append(what)


def _text(query: Any) -> str:
    return query.decode() if isinstance(query, bytes) else str(query)


class CountingCursor(connections.Cursor):
    def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 - psycopg2's name
        self.statement = _text(query)  # what an EXECUTE of a prepared statement stands for
        return super().execute(query, vars)

    def send(self, query: Any, vars: Any = None) -> Any:  # noqa: A002
        conn = self.connection
        if not conn.autocommit and conn.status == STATUS_READY:
            _record("BEGIN")
        text = _text(query)
        if text.startswith(("EXECUTE ", "PREPARE ")):
            text = f"{text.split(' (')[0].split(' AS ')[0]}: {self.statement}"
        _record(text)
        return super().send(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        rows = list(vars_list)
        conn = self.connection
        connections.begin_if_writing(conn, query)
        if rows and not conn.autocommit and conn.status == STATUS_READY:
            _record("BEGIN")
        for _ in rows:  # psycopg2 sends one statement per parameter set
            _record(_text(query))
        return super().executemany(query, rows)


class CountingConnection(connections.Connection):
    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cursor_factory", CountingCursor)
        return super().cursor(*args, **kwargs)

    def commit(self) -> None:
        if self.status == STATUS_BEGIN:
            _record("COMMIT")
        super().commit()

    def rollback(self) -> None:
        if self.status == STATUS_BEGIN:
            _record("ROLLBACK")
        super().rollback()


_original_connect = psycopg2.connect


def _connect(*args: Any, **kwargs: Any) -> Any:
    # authapp's engines ask for its connection class (platform/connections.py): they get it,
    # counting.
    # Other engines (a test's admin connection) keep psycopg2's own, which is not counted.
    if kwargs.get("connection_factory") is connections.Connection:
        kwargs["connection_factory"] = CountingConnection
    return _original_connect(*args, **kwargs)


def install() -> None:
    """Make every new connection of authapp's engines count (call before they connect)."""
    psycopg2.connect = _connect


@contextmanager
def counting() -> Iterator[list[str]]:
    """The round trips this thread makes while the block runs."""
    log: list[str] = []
    _counts.log = log
    try:
        yield log
    finally:
        _counts.log = None
