"""The hot statements' rows, straight from the driver (docs/architecture.md "Rules", rule 5;
bench/README.md).

Every authenticated request runs one statement (a token's principal, an API key, a rotation).
Through `Connection.execute`, SQLAlchemy spent about 100 µs of CPU around it, two fifths of the
statement's cost in this process: it hashes the statement's whole cache key on every call to find
the compiled form, then builds an execution context and a Result. `first_row` compiles a
statement once per dialect and runs it on a pooled DBAPI connection: pool checkout (its events
run: the dead-connection check of platform/connections.py), `cursor.execute`, `fetchone`, and the
columns' own bind and result processors, so the row is what `conn.execute(...).first()` returns.

- When the engine has cursor-execute listeners (instrumentation, the tests that count
  statements), the statement goes through `Connection.execute` as usual so they see it.
- A first statement whose pooled connection died unseen runs once more on SQLAlchemy's path
  (connections.first_statement), which also invalidates the rest of the pool.
- Driver errors are raised as SQLAlchemy's (`sa.exc.DBAPIError.instance`), as the error
  handlers expect.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from authapp.platform import connections

Processor = Callable[[Any], Any] | None
REQUIRED = object()  # a parameter without a value of its own: the caller gives it


@dataclass(frozen=True)
class Compiled:
    """A statement compiled for one dialect, with what turns values into parameters and a
    driver's row into the row SQLAlchemy would return."""

    sql: str
    positional: bool
    # In the order a positional driver takes them (a name may come twice): name, key, the
    # statement's own value (or REQUIRED), processor.
    binds: tuple[tuple[str, str, Any, Processor], ...]
    results: tuple[Processor, ...]
    row_type: Any

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters; a parameter the statement requires must be in `values`."""
        converted = []
        for name, key, fixed, process in self.binds:
            value = values[key] if fixed is REQUIRED else values.get(key, fixed)
            converted.append((name, value if process is None else process(value)))
        return [value for _, value in converted] if self.positional else dict(converted)

    def row(self, raw: Any) -> Any:
        if raw is None:
            return None
        return self.row_type._make(
            value if process is None else process(value)
            for process, value in zip(self.results, raw, strict=True)
        )


@lru_cache(maxsize=64)  # a few statements per dialect object (tests build many engines)
def compiled(statement: sa.Select[*tuple[Any, ...]], dialect: sa.Dialect) -> Compiled:
    compiled_form: Any = statement.compile(dialect=dialect)
    if compiled_form.literal_execute_params or compiled_form.post_compile_params:
        raise ValueError("first_row runs statements without parameters expanded at execution")
    order = compiled_form.positiontup if compiled_form.positional else compiled_form.binds
    binds = []
    for name in order:
        bind = compiled_form.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        fixed = REQUIRED if bind.required else bind.effective_value
        binds.append((name, bind.key, fixed, process))
    columns = list(statement.selected_columns)
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    row_type = namedtuple("Row", [column.key or "_" for column in columns], rename=True)  # type: ignore[misc]
    return Compiled(
        sql=compiled_form.string,
        positional=compiled_form.positional,
        binds=tuple(binds),
        results=results,
        row_type=row_type,
    )


def first_row(
    engine: sa.Engine,
    statement: sa.Select[*tuple[Any, ...]],
    parameters: Mapping[str, Any],
    *,
    alone: bool = False,
) -> Any:
    """The statement's first row (None without one), as a request's first statement.
    `alone`: the statement is a transaction by itself (connections.single_statement)."""

    through_sqlalchemy = partial(_through_sqlalchemy, engine, statement, parameters, alone)
    if engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute:
        return connections.first_statement(through_sqlalchemy)
    form = compiled(statement, engine.dialect)
    sent = form.parameters(parameters)
    try:
        pooled = engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error:
        # The pool's connect raises the driver's own error (a server down or shutting down),
        # which no handler takes for an outage: SQLAlchemy's connect raises it wrapped (503).
        return through_sqlalchemy()
    driver: Any = pooled.dbapi_connection
    try:
        with connections.kept_in_autocommit(driver) if alone else nullcontext():
            raw = _fetch_one(pooled, form.sql, sent)
    except engine.dialect.loaded_dbapi.Error as exc:
        if not engine.dialect.is_disconnect(exc, driver, None):
            raise sa.exc.DBAPIError.instance(
                form.sql, sent, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
            ) from exc
        pooled.invalidate(exc)
        return through_sqlalchemy()  # nothing ran on the dead connection: once more
    finally:
        pooled.close()  # back to the pool (a reset that sends nothing: it is in autocommit)
    return form.row(raw)


class Lines(FunctionElement[str]):
    """Strings joined with line breaks, as one column: string_agg on PostgreSQL, group_concat
    elsewhere. The separator is written into the SQL: SQLAlchemy's aggregate_strings passes it
    as a literal parameter, which it renders into the statement at every execution (half the
    Python cost of the principal's statement)."""

    type = sa.String()
    inherit_cache = True
    name = "lines"


@compiles(Lines)
def _group_concat(element: Lines, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, char(10))"


@compiles(Lines, "postgresql")
def _string_agg(element: Lines, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, chr(10))"


class JsonTexts(FunctionElement[Any]):
    """The strings of a JSON array as rows of one column, `value`: json_array_elements_text on
    PostgreSQL, json_each elsewhere (SQLite)."""

    inherit_cache = True
    name = "json_texts"


@compiles(JsonTexts)
def _json_each(element: JsonTexts, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@compiles(JsonTexts, "postgresql")
def _json_array_elements_text(element: JsonTexts, compiler: Any, **kw: Any) -> str:
    return f"json_array_elements_text({compiler.process(element.clauses, **kw)})"


def _through_sqlalchemy(
    engine: sa.Engine, statement: sa.Select[Any], parameters: Mapping[str, Any], alone: bool
) -> Any:
    if alone:
        with connections.single_statement(engine) as conn:
            return conn.execute(statement, parameters).first()
    with engine.connect() as conn:
        return conn.execute(statement, parameters).first()


def _fetch_one(pooled: Any, sql: str, parameters: Any) -> Any:
    cursor = pooled.cursor()
    try:
        cursor.execute(sql, parameters)
        return cursor.fetchone()
    finally:
        cursor.close()
