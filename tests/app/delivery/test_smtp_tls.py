"""Production sends mail over TLS only (docs/security.md "Webhooks and mail"): a server that offers
no STARTTLS gets neither the credentials nor the message unless SMTP_ALLOW_PLAINTEXT=true. Real
aiosmtpd servers, with and without STARTTLS; the reset mail goes through the outbox as in
production."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from authapp.auth.services import accounts
from authapp.models import OutboxMessage
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, seeded_app
from tests.servers import ClosingController, Mailbox, SmtpServer, free_port, wait_for

EMAIL = "ada@tls.example"


@contextmanager
def production_app(database_url: str, smtp_url: str, **settings: object) -> Iterator[Flask]:
    production = {"AUTHAPP_ENV": "production", "BCRYPT_ROUNDS": 10, "SMTP_URL": smtp_url}
    with seeded_app(database_url, **production, **settings) as app:
        with app.app_context():
            accounts.create_user(email=EMAIL, password=PASSWORD)
        yield app


def ask_for_a_reset(app: Flask) -> dict[str, object]:
    """POST /password/forgot; the reset mail's row once its first attempt has ended."""
    client = app.test_client()
    assert client.post("/api/v1/auth/password/forgot", json={"email": EMAIL}).status_code == 202

    def attempted() -> dict[str, object] | None:
        with app.app_context():
            row = db.session.scalars(sa.select(OutboxMessage)).one()
            db.session.remove()
        if row.status == "pending" and row.last_error is None:
            return None  # not tried yet, or being tried
        return {"status": row.status, "last_error": row.last_error}

    return wait_for(attempted)


@pytest.fixture
def production(database_url: str, smtp: SmtpServer) -> Iterator[Flask]:
    with production_app(database_url, smtp.url) as app:
        yield app


@pytest.fixture
def production_plaintext_allowed(database_url: str, smtp: SmtpServer) -> Iterator[Flask]:
    with production_app(database_url, smtp.url, SMTP_ALLOW_PLAINTEXT=True) as app:
        yield app


def test_production_refuses_a_server_without_starttls(production, smtp):
    row = ask_for_a_reset(production)

    assert row["status"] == "pending"  # retried: the server may offer TLS again later
    assert "STARTTLS" in str(row["last_error"])
    assert smtp.mailbox.messages == []


def test_production_sends_plain_text_when_allowed(production_plaintext_allowed, smtp):
    row = ask_for_a_reset(production_plaintext_allowed)

    assert row == {"status": "sent", "last_error": None}
    [message] = smtp.mailbox.to(EMAIL)
    assert message["Subject"] == "Reset your password"


@pytest.fixture
def tls_smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """An SMTP server offering STARTTLS with a certificate for 127.0.0.1 that this process
    trusts (SSL_CERT_FILE: the app verifies the server as it would in production)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = SmtpServer(port=free_port(), mailbox=Mailbox())
    server.controller = ClosingController(
        server.mailbox,
        hostname="127.0.0.1",
        port=server.port,
        tls_context=context,
        require_starttls=True,  # the server itself refuses mail before STARTTLS
    )
    server.controller.start()
    try:
        yield server
    finally:
        server.stop()


def test_production_sends_over_starttls(database_url, tls_smtp):
    with production_app(database_url, tls_smtp.url) as app:
        row = ask_for_a_reset(app)

        assert row == {"status": "sent", "last_error": None}
        [message] = tls_smtp.mailbox.to(EMAIL)
        assert message["Subject"] == "Reset your password"
