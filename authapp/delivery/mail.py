"""Send one email (stdlib smtplib), from the offload pool only, through the SMTP breaker.

`SMTP_URL`: `smtp://[user:pass@]host[:port]` (STARTTLS whenever the server offers it) or
`smtps://…` (TLS from the start). In production a server that does not offer STARTTLS gets
nothing, neither credentials nor links, unless SMTP_ALLOW_PLAINTEXT=true (docs/security.md
"Webhooks and mail"). Without SMTP_URL mail is logged (recipient and subject only: never a link)
and counted as sent, so development needs no SMTP server; in development it is also picked up
whole, links included, in `instance/mail/` as an `.eml` file and on the console, so a newcomer
can verify an address and reset a password locally (docs/operations.md "Mail in development").
`MAIL_DIR` moves that folder, or (in testing) turns it on: authapp.testing's `mailbox` reads it.
"""

from __future__ import annotations

import smtplib
import ssl
import sys
import threading
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from flask import current_app, render_template

from authapp.delivery import offload

log = structlog.get_logger(__name__)
SUBJECTS = {
    "verify_email": "Confirm your email address",
    "password_reset": "Reset your password",
    "password_changed": "Your password was changed",
    "new_device_login": "New login to your account",
    "mfa_changed": "Two-factor authentication settings changed",
    "passkeys_changed": "The passkeys of your account changed",
    "identities_changed": "The sign-in providers of your account changed",
    "email_change": "Confirm your new email address",
    "email_change_requested": "A change of your email address was requested",
    "email_changed": "Your email address was changed",
    "invitation": "You are invited to join an organization",
}


def compose(message_id: str, payload: dict[str, Any]) -> EmailMessage:
    """The message from its templates (text and HTML parts); the secrets go in only here."""
    template = payload["template"]
    context = {**payload.get("context", {}), **payload.get("secrets", {})}
    message = EmailMessage()
    message["Subject"] = SUBJECTS[template]
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = payload["to"]
    message["Message-ID"] = make_msgid(idstring=message_id.replace("-", ""))
    message["X-Authapp-Delivery"] = message_id  # one id across retries: receivers can dedupe
    message.set_content(render_template(f"authapp/mail/{template}.txt", **context))
    message.add_alternative(
        render_template(f"authapp/mail/{template}.html", **context), subtype="html"
    )
    return message


def send(message_id: str, payload: dict[str, Any]) -> None:
    if not payload.get("to"):
        raise offload.Undeliverable("the message has no recipient")
    message = compose(message_id, payload)
    url = current_app.config["SMTP_URL"]
    if not url:
        log.info("mail.logged_not_sent", to=payload["to"], subject=message["Subject"])
        folder = mail_dir()
        if folder is not None:
            _pick_up(message_id, message, folder)
        return
    offload.breaker("smtp").call(_deliver, url, message)
    log.info("mail.sent", message_id=message_id, subject=message["Subject"])


def mail_dir() -> Path | None:
    """Where a mail without SMTP_URL is kept whole: MAIL_DIR, else instance/mail/ in
    development; never in production, whose links go to the SMTP server only."""
    config = current_app.config
    if config["AUTHAPP_ENV"] == "production":
        return None
    if config["MAIL_DIR"]:
        return Path(config["MAIL_DIR"])
    if config["AUTHAPP_ENV"] == "development":
        return Path(current_app.instance_path) / "mail"
    return None


def _pick_up(message_id: str, message: EmailMessage, folder: Path) -> None:
    """The whole message in `folder`/<id>.eml (written whole, then renamed: a reader never sees
    half a file); in development also its text on stderr in one write (the console `make run`
    prints to), links included."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message_id}.eml"
    partial = folder / f".{message_id}.{threading.get_ident()}.tmp"
    partial.write_bytes(bytes(message))
    partial.replace(path)
    if current_app.config["AUTHAPP_ENV"] != "development":
        return
    text = message.get_body(("plain",))
    body = text.get_content() if text is not None else ""
    rule = "-" * 72
    sys.stderr.write(
        f"\n{rule}\nMail to {message['To']}: {message['Subject']}  ({path})\n{rule}\n"
        f"{body.rstrip()}\n{rule}\n"
    )
    sys.stderr.flush()


def _deliver(url: str, message: EmailMessage) -> None:
    config = current_app.config
    parts = urlsplit(url)
    timeout = config["OFFLOAD_TIMEOUT"]
    plaintext_allowed = config["AUTHAPP_ENV"] != "production" or config["SMTP_ALLOW_PLAINTEXT"]
    host = parts.hostname or "localhost"
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    elif parts.scheme == "smtp":
        client = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
    else:
        raise offload.Undeliverable(f"SMTP_URL has an unknown scheme {parts.scheme!r}")
    with client:
        client.ehlo()
        if parts.scheme == "smtp" and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        elif parts.scheme == "smtp" and not plaintext_allowed:
            # Retried, not dead: a server misconfigured for a while, or STARTTLS stripped on
            # the way, must not make reset links travel in clear text.
            raise smtplib.SMTPNotSupportedError(
                "the SMTP server offers no STARTTLS; production sends mail over TLS only "
                "(SMTP_ALLOW_PLAINTEXT=true allows plain text)"
            )
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
