"""Fault scenarios (docs/operations.md) on real gunicorn and PostgreSQL, under load.

Every module here is marked `slow`: `make test` leaves them out (pyproject's addopts carry
`-m "not slow"`) and `make faults` runs them, one after another (never with `-n`: the PostgreSQL
restart scenario restarts the shared server, and timings should not compete). Each scenario
records its figures with the `figures` fixture; they are printed at the end of the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import worker_name
from tests.faults.harness import Gunicorn, database_engine, launch, prepared_database

FIGURES = "figures"


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The scenario's own migrated and seeded database (dropped afterwards)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with prepared_database(worker_name(f"fault_{re.sub(r'[^a-z0-9_]', '_', module)[:30]}")) as url:
        yield url


@pytest.fixture
def engine(database: str) -> Iterator[sa.Engine]:
    engine = database_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture
def start(
    database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gunicorn]]:
    """`start({"NAME": "value"}, app_database_url=...)`: a gunicorn on the scenario's database,
    stopped after the test (SIGTERM, then SIGKILL of its process group)."""
    with ExitStack() as stack:

        def start_one(extra: Mapping[str, str] | None = None, **kwargs: Any) -> Gunicorn:
            logs = tmp_path_factory.mktemp("gunicorn")
            return stack.enter_context(launch(logs, database, extra, **kwargs))

        yield start_one


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`figures(line)`: kept with the test's report and printed in the run's summary."""

    def record(line: str) -> None:
        request.node.user_properties.append((FIGURES, line))
        print(line)  # also in the captured output of a failing test

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = []
    for outcome in ("passed", "failed", "xfailed", "xpassed"):
        for report in terminalreporter.getreports(outcome):
            recorded = [text for key, text in report.user_properties if key == FIGURES]
            if report.when == "call" and recorded:
                lines.append(f"{report.nodeid} ({outcome})")
                lines.extend(f"    {text}" for text in recorded)
    if lines:
        terminalreporter.section("fault scenario figures")
        for line in lines:
            terminalreporter.write_line(line)
