"""Fixtures of the migration tests: an empty database of either kind."""

import pytest

from tests.conftest import scratch_database, worker_name


# SQLAlchemy cannot reflect SQLite expression indexes; the test checks that one by name.
def sqlite_reflection(test):
    for message in ("ignore:Skipped unsupported reflection", "ignore:autogenerate skipping"):
        test = pytest.mark.filterwarnings(message)(test)
    return test


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'authapp.db'}"
    else:
        with scratch_database(worker_name("authapp_migrate")) as url:
            yield url
