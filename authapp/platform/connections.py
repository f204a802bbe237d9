"""PostgreSQL connections that cost only their statements (docs/architecture.md "Rules", rule 5).

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
PREPARED_MAX = 200  # prepared statements per connection
PARAMETER = re.compile(r"%\((\w+)\)s")
# A statement that only reads: SELECT without a row lock or an advisory lock.
READ_ONLY = re.compile(r"\s*SELECT\b", re.IGNORECASE)
LOCKING = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?(?:UPDATE|SHARE|KEY\s+SHARE)\b|pg_advisory", re.I)


@functools.lru_cache(maxsize=2048)  # statements are SQLAlchemy's cached strings: few, reused
def is_read(statement: str) -> bool:
    return READ_ONLY.match(statement) is not None and LOCKING.search(statement) is None


class Cursor(psycopg2.extensions.cursor):
    """psycopg2's cursor, leaving autocommit before a statement that writes or locks, and
    running a statement this connection sends often as a prepared one."""

    connection: Connection

    def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 - psycopg2's names
        begin_if_writing(self.connection, query)
        if isinstance(vars, dict) and isinstance(query, str) and self.connection.autocommit:
            prepared = self.connection.prepared(query, self.send)
            if prepared is not None:
                name, names = prepared
                placeholders = ", ".join(["%s"] * len(names))
                return self.send(f"EXECUTE {name} ({placeholders})", [vars[n] for n in names])
        return self.send(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        begin_if_writing(self.connection, query)
        return super().executemany(query, vars_list)

    def send(self, query: Any, vars: Any = None) -> Any:  # noqa: A002
        """One message to the server (bench/wire.py counts here)."""
        return super().execute(query, vars)


class Connection(psycopg2.extensions.connection):
    """psycopg2's connection with `Cursor`s; `single_statement` keeps it in autocommit.

    **Prepared statements.** psycopg2 sends every statement as text with its values inlined,
    so PostgreSQL parses and plans it each time: for the principal's statement, planning took
    0.45 ms of the server's CPU against 0.05 ms to run it. A statement sent `prepare_after`
    times (DATABASE_PREPARE_AFTER; 0 never) on one connection, outside a transaction, is
    prepared there (`PREPARE`, one round
    trip, once) and from then on sent as `EXECUTE` with its values: PostgreSQL plans it once.
    Prepared statements belong to the server session, so they live and die with this
    connection; they are not transactional, and only statements with named parameters (as
    SQLAlchemy compiles them for psycopg2) are prepared, at most `PREPARED_MAX` per connection.
    A statement PostgreSQL refuses to prepare is simply sent as text from then on.
    """

    keep_autocommit = False
    prepare_after = 0  # set by the engine's connect hook (`configure`)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: dict[str, int] = {}
        self.statements: dict[str, tuple[str, tuple[str, ...]] | None] = {}

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cursor_factory", Cursor)
        return super().cursor(*args, **kwargs)

    def prepared(
        self, query: str, send: Callable[[str], Any]
    ) -> tuple[str, tuple[str, ...]] | None:
        """The prepared name and parameter order of `query`, preparing it when it is due."""
        if query in self.statements:
            return self.statements[query]
        if not self.prepare_after or len(self.statements) >= PREPARED_MAX:
            return None
        count = self.sent[query] = self.sent.get(query, 0) + 1
        if count < self.prepare_after:
            return None
        del self.sent[query]
        names = tuple(dict.fromkeys(PARAMETER.findall(query)))
        if not names:
            self.statements[query] = None
            return None
        name = f"authapp_{len(self.statements)}"
        positional = PARAMETER.sub(lambda m: f"${names.index(m[1]) + 1}", query)
        try:
            send(f"PREPARE {name} AS {positional.replace('%%', '%')}")
        except psycopg2.ProgrammingError:  # a parameter whose type PostgreSQL cannot infer
            self.statements[query] = None
            return None
        self.statements[query] = (name, names)
        return self.statements[query]


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


def configure(engine: sa.Engine, *, prepare_after: int) -> None:
    """The pool hooks of a psycopg2 engine made with `connect_args`; others are left alone."""
    if engine.dialect.driver != "psycopg2":
        return

    def connected(dbapi_connection: Any, *_args: Any) -> None:
        if isinstance(dbapi_connection, Connection):
            dbapi_connection.prepare_after = prepare_after
            _rest_in_autocommit(dbapi_connection)

    sa.event.listen(engine, "connect", connected)
    sa.event.listen(engine, "checkout", _closed_by_server)
    sa.event.listen(engine, "checkin", _rest_in_autocommit)


@contextmanager
def single_statement(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for one statement that is a whole transaction by itself (a rotation's
    data-modifying CTEs): it stays in autocommit, so no BEGIN and no COMMIT surround it."""
    with engine.connect() as conn, kept_in_autocommit(conn.connection.dbapi_connection):
        yield conn


@contextmanager
def kept_in_autocommit(dbapi_connection: Any) -> Iterator[None]:
    """While the block runs, a writing statement on this connection begins no transaction."""
    dbapi_connection.keep_autocommit = True
    try:
        yield
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
