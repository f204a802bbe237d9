"""`flask outbox ...` for operators: status, retry-dead, work (one pass, and the foreground loop
stopped by SIGTERM), and drain's progress bar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from authapp.delivery import outbox_admin
from authapp.models import OutboxMessage
from authapp.platform.extensions import db
from tests.app.ops.operator_cli import add_message, ago, audit_events, message_status, ok, refused
from tests.conftest import TEST_SECRETS

ROOT = Path(__file__).resolve().parents[3]


def test_status_counts_by_status_and_kind_with_the_backlog_age(app):
    add_message(app, created_at=ago(hours=2, minutes=5))
    add_message(app, created_at=ago(minutes=1))
    add_message(app, kind="webhook")
    add_message(app, status="sent", sent_at=ago(minutes=3))
    add_message(app, status="dead")

    lines = ok(app, "outbox", "status").splitlines()

    assert lines[0].split() == ["status", "kind", "messages"]
    assert [line.split() for line in lines[1:5]] == [
        ["dead", "email", "1"],
        ["pending", "email", "2"],
        ["pending", "webhook", "1"],
        ["sent", "email", "1"],
    ]
    assert lines[5].startswith("oldest pending: 2h 5m old (written ")
    assert lines[6] == "dead: 1"


def test_status_of_an_empty_outbox(app):
    assert ok(app, "outbox", "status").splitlines() == [
        "The outbox is empty.",
        "oldest pending: none",
        "dead: 0",
    ]


def test_retry_dead_puts_dead_messages_back_due_now(app):
    mail = add_message(app, status="dead", next_attempt_at=ago(days=-1))
    hook = add_message(app, kind="webhook", status="dead")
    linked = add_message(app, status="dead", template="verify_email")
    sent = add_message(app, status="sent", sent_at=ago(minutes=1))

    output = ok(app, "outbox", "retry-dead")

    assert output.splitlines() == [
        "2 dead messages pending again",
        "1 verification or reset mail kept dead: their links were wiped when they died; the user "
        "asks for a new one",
    ]
    assert [message_status(app, m) for m in (mail, hook, linked, sent)] == [
        "pending",
        "pending",
        "dead",
        "sent",
    ]
    with app.app_context():
        retried = db.session.get(OutboxMessage, mail)
        assert retried.attempts == 0
        assert retried.next_attempt_at <= ago(seconds=0)
    assert audit_events(app, "outbox.retried")[0]["retried"] == 2


def test_retry_dead_by_kind_and_by_id(app):
    mail = add_message(app, status="dead")
    hook = add_message(app, kind="webhook", status="dead")
    other = add_message(app, kind="webhook", status="dead")

    by_kind = ok(app, "outbox", "retry-dead", "--kind", "email")
    by_id = ok(app, "outbox", "retry-dead", "--id", hook)

    assert by_kind.strip() == "1 dead message pending again"
    assert by_id.strip() == "1 dead message pending again"
    assert [message_status(app, m) for m in (mail, hook, other)] == ["pending", "pending", "dead"]


def test_retry_dead_names_an_unknown_id_and_refuses_a_bad_one(app):
    unknown = "0b6a3f52-8a43-4b8e-9a55-2b7a0c1f0d11"
    pending = add_message(app)

    assert f"No dead message has the id '{unknown}'." in refused(
        app, "outbox", "retry-dead", "--id", unknown
    )
    assert "No dead message has the id 'x\\x00'." in refused(
        app, "outbox", "retry-dead", "--id", "x\x00"
    )
    assert "No dead message" in refused(app, "outbox", "retry-dead", "--id", pending)
    assert ok(app, "outbox", "retry-dead").strip() == "0 dead messages pending again"


def test_work_once_delivers_the_due_messages_only(app):
    due = add_message(app)
    later = add_message(app, next_attempt_at=ago(hours=-1))

    output = ok(app, "outbox", "work", "--once")

    assert output.strip() == "one pass: 1 message handed over; sent 1"
    assert message_status(app, due) == "sent"
    assert message_status(app, later) == "pending"


def test_work_loops_until_stopped_and_lets_deliveries_finish(app):
    stopping = threading.Event()
    results: list[outbox_admin.Worked] = []
    worker = threading.Thread(
        target=lambda: results.append(outbox_admin.work(app, stopping, interval=0.05, once=False))
    )
    worker.start()
    try:
        message = add_message(app)
        deadline = time.monotonic() + 10
        while message_status(app, message) != "sent" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stopping.set()
        worker.join(timeout=10)

    assert not worker.is_alive()
    assert message_status(app, message) == "sent"
    assert results[0].passes >= 1
    assert results[0].handed_over >= 1


def test_work_as_its_own_process_stops_cleanly_on_sigterm(app, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHAPP", "SEED"))}
    env |= {
        "AUTHAPP_ENV": "testing",
        "DATABASE_URL": database_url,
        "OUTBOX_SWEEP_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
        **TEST_SECRETS,
    }
    flask = str(Path(sys.executable).parent / "flask")
    process = subprocess.Popen(
        [flask, "--app", "authapp", "outbox", "work"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("outbox worker: a pass every 0.2s")
        message = add_message(app)
        deadline = time.monotonic() + 15
        while message_status(app, message) != "sent" and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert message_status(app, message) == "sent"
    assert process.returncode == 0, stderr
    assert "outbox worker stopped after " in stdout
    assert "Traceback" not in stderr


def test_drain_shows_progress_on_stderr_when_there_is_much_to_deliver(app):
    ids = [add_message(app, next_attempt_at=ago(hours=-1)) for _ in range(25)]

    result = app.test_cli_runner().invoke(args=["outbox", "drain"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "sent: 25"
    assert "Delivering" in result.stderr
    with app.app_context():
        statuses = db.session.scalars(
            sa.select(OutboxMessage.status).where(OutboxMessage.id.in_(ids))
        ).all()
    assert set(statuses) == {"sent"}


def test_drain_with_nothing_pending(app):
    assert ok(app, "outbox", "drain").strip() == "Nothing pending."
