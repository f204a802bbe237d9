"""PostgreSQL connections that cost only their statements (DESIGN.md rule 5).

psycopg2 sends `BEGIN` by itself before the first statement of a transaction, and SQLAlchemy
ends every checkout with a `ROLLBACK`; `pool_pre_ping` adds a `SELECT 1`. For a token check,
whose one statement is a read, that is four round trips where one does. So, on psycopg2:

- **Reads run in autocommit; a transaction begins at the first write.** A connection rests in
  autocommit. Before a statement that writes or locks (anything but a plain `SELECT`), its
  cursor leaves autocommit, so psycopg2 opens the transaction right there, and the service's
  commit (or the pool's rollback) ends it; the connection returns to autocommit when it goes
  back to the pool. Under READ COMMITTED, PostgreSQL's default and ours, every statement of a
  transaction takes its own snapshot anyway, so the reads before the first write see exactly
  what they would have seen inside it; a `SELECT ... FOR UPDATE` counts as a write and so keeps
  its row lock until the commit.
- **A dead pooled connection is found without a round trip.** When PostgreSQL restarts or ends a
  backend, it sends an error and closes the socket; an idle connection's socket is then readable.
  The checkout polls it (no data sent) and hands a fresh connection instead (F1).
  `first_statement` tries a request's first statement once more when its connection died
  without telling (a silent network drop): nothing else has run, so nothing is lost.

SQLite, the embedded default, has no network: it keeps SQLAlchemy's usual transactions.
"""

from __future__ import annotations

import functools
import re
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2.extensions
import sqlalchemy as sa
from psycopg2.extensions import STATUS_READY

T = TypeVar("T")
# A statement that only reads: SELECT without a row lock or an advisory lock.
READ_ONLY = re.compile(r"\s*SELECT\b", re.IGNORECASE)
LOCKING = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?(?:UPDATE|SHARE|KEY\s+SHARE)\b|pg_advisory", re.I)


@functools.lru_cache(maxsize=2048)  # statements are SQLAlchemy's cached strings: few, reused
def is_read(statement: str) -> bool:
    return READ_ONLY.match(statement) is not None and LOCKING.search(statement) is None


class Cursor(psycopg2.extensions.cursor):
    """psycopg2's cursor, leaving autocommit before a statement that writes or locks."""

    def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 - psycopg2's names
        begin_if_writing(self.connection, query)
        return super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        begin_if_writing(self.connection, query)
        return super().executemany(query, vars_list)


class Connection(psycopg2.extensions.connection):
    """psycopg2's connection with `Cursor`s; `single_statement` keeps it in autocommit."""

    keep_autocommit = False

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cursor_factory", Cursor)
        return super().cursor(*args, **kwargs)


def begin_if_writing(dbapi_connection: Any, query: Any) -> None:
    if dbapi_connection.autocommit and not dbapi_connection.keep_autocommit:
        statement = query if isinstance(query, str) else query.decode()
        if not is_read(statement):
            dbapi_connection.autocommit = False  # psycopg2 sends BEGIN before this statement


def _rest_in_autocommit(dbapi_connection: Any, *_args: Any) -> None:
    if not isinstance(dbapi_connection, Connection) or dbapi_connection.closed:
        return  # not ours (its cursor would never begin a transaction), or invalidated
    if not dbapi_connection.autocommit and dbapi_connection.status == STATUS_READY:
        dbapi_connection.autocommit = True


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """An idle connection has nothing to read: if its socket is readable, the server has
    closed it (or sent a FATAL error before closing). Raising makes the pool connect anew."""
    if dbapi_connection.closed:
        raise sa.exc.DisconnectionError("the connection was closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise sa.exc.DisconnectionError("the server closed this pooled connection")


def connect_args(url: str) -> dict[str, Any]:
    """The DBAPI arguments of an engine for `url`: psycopg2 connections of our class."""
    return {"connection_factory": Connection} if url.startswith("postgresql+psycopg2") else {}


def configure(engine: sa.Engine) -> None:
    """The pool hooks of a psycopg2 engine made with `connect_args`; others are left alone."""
    if engine.dialect.driver != "psycopg2":
        return
    sa.event.listen(engine, "connect", _rest_in_autocommit)
    sa.event.listen(engine, "checkout", _closed_by_server)
    sa.event.listen(engine, "checkin", _rest_in_autocommit)


@contextmanager
def single_statement(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for one statement that is a whole transaction by itself (a rotation's
    data-modifying CTEs): it stays in autocommit, so no BEGIN and no COMMIT surround it."""
    with engine.connect() as conn:
        dbapi_connection: Any = conn.connection.dbapi_connection
        dbapi_connection.keep_autocommit = True
        try:
            yield conn
        finally:
            dbapi_connection.keep_autocommit = False


def first_statement(run: Callable[[], T]) -> T:
    """`run()`, a request's first statement on a connection it checks out itself, once more if
    that pooled connection turns out dead (SQLAlchemy has invalidated it by then, so the second
    try gets a fresh one). Only for a first statement: a later one would lose those before."""
    try:
        return run()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        return run()
