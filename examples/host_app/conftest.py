"""The host's tests run on authapp's pytest plugin alone (docs/testing.md): its `app`,
`client`, `make_user`, `login` and `mailbox` fixtures, with the app built by the host's own
factory. The ini option says the same in a pytest config:

    [tool.pytest.ini_options]
    authapp_app_factory = "examples.host_app.app:create_app"

This fixture says it wherever this folder is copied to (its import is relative)."""

from __future__ import annotations

import pytest

from .app import create_app


@pytest.fixture(scope="session")
def authapp_factory():
    return create_app
