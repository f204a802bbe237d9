"""Fixtures for the outbox suites: a real SMTP server (tests/servers.py) and an app that mails
through it; for the webhook suites, a real HTTP receiver and an organization's owner whose
webhook posts to it (helpers in webhooks.py).

`mail_app` is built like `tests.conftest.app` (the `config` marker still applies) plus
`SMTP_URL` pointing at the `smtp` fixture's server and `PUBLIC_BASE_URL=https://auth.example`.
It is a second app on the test database: use `mail_client` with it, not `client`, `make_user`
or `login` (those belong to the plain `app`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.delivery.webhooks import Owner, set_webhook, sign_up_owner
from tests.conftest import marker_settings, seeded_app
from tests.servers import Mailbox, Receiver, SmtpServer, smtp_server, wait_for, webhook_receiver

PUBLIC_BASE_URL = "https://auth.example"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mail_app(
    database_url: str, smtp: SmtpServer, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    settings = {"SMTP_URL": smtp.url, "PUBLIC_BASE_URL": PUBLIC_BASE_URL}
    with seeded_app(database_url, **settings, **marker_settings(request)) as app:
        yield app


@pytest.fixture
def mail_client(mail_app: Flask) -> FlaskClient:
    return mail_app.test_client()


def wait_for_mail(smtp: SmtpServer, address: str, count: int = 1) -> list[EmailMessage]:
    """The first `count` messages to `address`, once that many have arrived (10 s at most)."""

    def arrived() -> list[EmailMessage]:
        messages = smtp.mailbox.to(address)
        return messages[:count] if len(messages) >= count else []

    return wait_for(arrived)


def mailed_link(message: EmailMessage, path: str) -> tuple[str, str]:
    """(link, token) of the `PUBLIC_BASE_URL + path?token=…` link in the mail's text part."""
    pattern = re.escape(f"{PUBLIC_BASE_URL}{path}?token=") + r"([A-Za-z0-9_-]+)"
    match = re.search(pattern, Mailbox.text(message))
    assert match is not None, f"no {path} link in:\n{Mailbox.text(message)}"
    return match.group(0), match.group(1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as peer:
        yield peer


@pytest.fixture
def owner(client: FlaskClient) -> Owner:
    """The owner of a new organization "Hooks" (address confirmed), without a webhook yet."""
    return sign_up_owner(client, "Hooks")


@pytest.fixture
def hooked(client: FlaskClient, owner: Owner, receiver: Receiver) -> Owner:
    """`owner` whose organization posts to `receiver` (needs WEBHOOK_ALLOW_PRIVATE)."""
    response = set_webhook(client, owner, receiver.url)
    assert response.status_code == 200, response.json
    owner.secret = response.json["webhook_secret"]
    return owner


@pytest.fixture
def mailing(app: Flask, smtp: SmtpServer) -> SmtpServer:
    """`app` mails the `smtp` server above (SMTP_URL is read at send)."""
    app.config["SMTP_URL"] = smtp.url
    return smtp
