"""The mails an app sent during a test, read back from MAIL_DIR (authapp/delivery/mail.py
writes each mail without SMTP_URL there whole, as `<delivery id>.eml`)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from flask import Flask

from authapp.delivery import offload, outbox
from authapp.platform.extensions import db

LINK = re.compile(r"https?://[^\s<>\"')]+")


def text(message: EmailMessage) -> str:
    """The plain-text part of a mail."""
    body = message.get_body(("plain",))
    assert body is not None, f"no text part in the mail {message['Subject']!r}"
    return str(body.get_content())  # type: ignore[attr-defined]


def links(message: EmailMessage) -> list[str]:
    """The links in a mail's text part, in order."""
    return LINK.findall(text(message))


def recipients(message: EmailMessage) -> list[str]:
    return [address.lower() for _name, address in getaddresses(message.get_all("To", []))]


def deliver_pending_mail(app: Flask) -> None:
    """Wait for the mail the offload pool is sending, then send what the outbox still holds
    (its pool's queue is cancelled on the way), here and now. Webhooks stay where they are."""
    offload.shutdown(app)  # waits for running tasks; the next submit starts a new pool
    with app.app_context():
        try:
            for message_id, lane, _key in outbox.due(limit=10_000, everything=True):
                if lane == offload.MAIL:
                    outbox.deliver(message_id, force=True)
        finally:
            db.session.remove()


class Mailbox:
    """`mailbox.messages` (oldest first), `mailbox.to(address)`, `mailbox.last(to=...)`,
    `mailbox.links(message)`, `mailbox.text(message)`. Each read first lets the outbox deliver
    everything pending, so mail handed to threads is there."""

    text = staticmethod(text)
    links = staticmethod(links)

    def __init__(self, app: Flask, folder: Path) -> None:
        self.app = app
        self.folder = Path(folder)

    @property
    def messages(self) -> list[EmailMessage]:
        deliver_pending_mail(self.app)
        if not self.folder.is_dir():
            return []
        files = sorted(self.folder.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [_parsed(path.read_bytes()) for path in files]

    def to(self, address: str) -> list[EmailMessage]:
        wanted = address.strip().lower()
        return [m for m in self.messages if wanted in recipients(m)]

    def last(self, *, to: str | None = None, subject: str | None = None) -> EmailMessage:
        """The newest mail (to `to`, with `subject`); AssertionError when there is none."""
        found = self.to(to) if to is not None else self.messages
        if subject is not None:
            found = [m for m in found if m["Subject"] == subject]
        if not found:
            sent = [(m["To"], m["Subject"]) for m in self.messages]
            raise AssertionError(f"no mail to={to!r} subject={subject!r}; sent: {sent}")
        return found[-1]

    def clear(self) -> None:
        deliver_pending_mail(self.app)
        for path in self.folder.glob("*.eml"):
            path.unlink()

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[EmailMessage]:
        return iter(self.messages)


def _parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message
