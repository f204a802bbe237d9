"""Development without SMTP_URL: a mail is picked up whole (links included) in instance/mail/ as
an .eml file and on the console, so a newcomer can confirm an address and reset a password
locally. Testing and production only log the recipient and the subject."""

from __future__ import annotations

import email
import email.policy

import pytest

from authapp.delivery import mail
from tests.conftest import build_app

LINK = "http://127.0.0.1:8000/verify-email?token=not-a-real-token"
PAYLOAD = {"template": "verify_email", "to": "ada@example.com", "secrets": {"link": LINK}}


def deliver(environment, database_url, tmp_path, capsys, **settings):
    # production refuses bcrypt's test cost
    rounds = 10 if environment == "production" else 4
    app = build_app(
        database_url, AUTHAPP_ENV=environment, SMTP_URL="", BCRYPT_ROUNDS=rounds, **settings
    )
    app.instance_path = str(tmp_path)
    with app.app_context():
        mail.send("0b8a6f0e-4a8f-4a59-9d6c-6ab7c8a6d1f1", PAYLOAD)
    return sorted((tmp_path / "mail").glob("*.eml")), capsys.readouterr().err


def test_development_keeps_the_whole_mail_with_its_link(database_url, tmp_path, capsys):
    files, console = deliver("development", database_url, tmp_path, capsys)

    assert [f.name for f in files] == ["0b8a6f0e-4a8f-4a59-9d6c-6ab7c8a6d1f1.eml"]
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "ada@example.com"
    assert LINK in message.get_body(("plain",)).get_content()
    assert LINK in console
    assert "Mail to ada@example.com: Confirm your email address" in console


@pytest.mark.parametrize("environment", ["testing", "production"])
def test_elsewhere_a_mail_without_smtp_is_only_logged(environment, database_url, tmp_path, capsys):
    files, console = deliver(environment, database_url, tmp_path, capsys)

    assert files == []
    assert LINK not in console


@pytest.mark.parametrize("environment", ["development", "testing"])
def test_mail_dir_keeps_the_mail_there_and_only_development_prints_it(
    environment, database_url, tmp_path, capsys
):
    folder = tmp_path / "elsewhere"
    files, console = deliver(environment, database_url, tmp_path, capsys, MAIL_DIR=str(folder))

    assert [f.parent for f in files] == []  # not instance/mail/
    assert [f.name for f in folder.iterdir()] == ["0b8a6f0e-4a8f-4a59-9d6c-6ab7c8a6d1f1.eml"]
    assert (LINK in console) == (environment == "development")


def test_production_never_writes_a_link_to_mail_dir(database_url, tmp_path, capsys):
    folder = tmp_path / "elsewhere"
    deliver("production", database_url, tmp_path, capsys, MAIL_DIR=str(folder))

    assert not folder.exists()
