"""Helpers of the operator-command suites (test_operator_cli*.py): invoking a command, and the
rows the outbox and retention tests start from."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from authapp.models import AuditEvent, OutboxMessage, User
from authapp.models.base import new_id
from authapp.platform import clock
from authapp.platform.extensions import db


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=list(args), input=input)


def ok(app: Flask, *args: str, input: str | None = None) -> str:
    """The command's standard output; it must have exited 0."""
    result = run(app, *args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def refused(app: Flask, *args: str, input: str | None = None) -> str:
    """A command that must fail cleanly: exit code 1, `Error: ...`, no traceback."""
    result = run(app, *args, input=input)
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error: " in result.stderr
    return result.stderr


def ago(**delta: float) -> datetime:
    return clock.now() - timedelta(**delta)


def add_message(
    app: Flask,
    *,
    kind: str = "email",
    status: str = "pending",
    template: str = "password_changed",
    to: str = "ada@example.com",
    created_at: datetime | None = None,
    sent_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
) -> str:
    """An outbox row as a service would leave it (a mail that composes without secrets)."""
    if kind == "email":
        context = {"name": "", "how": "changed", "when": "2026-01-01 00:00", "forgot_url": "x"}
        payload: dict[str, Any] = {"to": to, "template": template, "context": context}
    else:
        payload = {"event": "ping", "organization_id": new_id(), "data": {}}
    with app.app_context():
        message = OutboxMessage(
            kind=kind,
            payload=payload,
            status=status,
            attempts=10 if status == "dead" else 0,
            created_at=created_at or clock.now(),
            sent_at=sent_at,
            next_attempt_at=next_attempt_at or clock.now() - timedelta(seconds=1),
        )
        db.session.add(message)
        db.session.commit()
        return message.id


def message_status(app: Flask, message_id: str) -> str:
    with app.app_context():
        return str(db.session.get(OutboxMessage, message_id).status)


def audit_events(app: Flask, event: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == event)).all()
        return [{"actor": row.actor, "user_id": row.user_id, **row.data} for row in rows]


def user_row(app: Flask, email: str) -> User:
    with app.app_context():
        return db.session.scalars(sa.select(User).where(User.email == email)).one()
