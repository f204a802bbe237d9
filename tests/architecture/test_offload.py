"""docs/architecture.md "Rules", rule 2, in process: the offload layer's rules, checked against the
real pool.

Tasks take plain values only (ids, strings, numbers, dicts and lists of them); a full backlog
refuses at once while the outbox keeps the work (F4: request threads are never
blocked; F3: the row stays pending and is delivered later); the pool is created lazily in the
process that uses it and never inherited across a fork; a task runs in its own app context.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
import sqlalchemy as sa
from flask import Flask, current_app, g

from authapp.delivery import offload, outbox
from authapp.models import OutboxMessage, User
from authapp.platform.extensions import db
from tests.conftest import PASSWORD
from tests.servers import wait_for

EXTENSION = "authapp.delivery.offload"
SIGNUP = "/api/v1/auth/signup"

# Tasks take plain arguments only, so the test's handles on them live at module level.
RELEASE = threading.Event()
holding: list[int] = []
calls: list[tuple[Any, ...]] = []


def hold(number: int) -> int:
    """Occupy a pool thread until the test sets RELEASE (bounded, so a failure cannot hang)."""
    holding.append(number)
    RELEASE.wait(timeout=20)
    return number


def record(*args: Any) -> tuple[Any, ...]:
    calls.append(args)
    return args


def look_around(user_id: str) -> dict[str, Any]:
    """What a task sees: its app, its own g and session, the committed row."""
    user = db.session.get(User, user_id)
    return {
        "app": id(current_app._get_current_object()),
        "thread": threading.get_ident(),
        "marker": getattr(g, "marker", None),
        "email": user.email if user is not None else None,
        "workers": current_app.config["OFFLOAD_WORKERS"],
    }


def fail(_number: int) -> None:
    raise RuntimeError("a task that fails")


@pytest.fixture
def gate(app: Flask) -> Iterator[threading.Event]:
    """RELEASE, cleared for this test and set again before the app fixture shuts the pool down."""
    RELEASE.clear()
    holding.clear()
    calls.clear()
    yield RELEASE
    RELEASE.set()


class Opaque:
    """Not an id, a string or a dict: what a careless caller might hand over."""


def _orm_user(user_id: str) -> Any:
    return db.session.get(User, user_id)


UNPLAIN: dict[str, tuple[Callable[[str], Any], str]] = {
    "orm_object": (_orm_user, "User"),
    "session": (lambda _id: db.session, "scoped_session"),
    "request_proxy": (lambda _id: flask.request, "LocalProxy"),
    "current_app_proxy": (lambda _id: current_app, "LocalProxy"),
    "dict_holding_orm_object": (lambda user_id: {"user": _orm_user(user_id)}, "User"),
    "list_in_dict_holding_orm_object": (
        lambda user_id: {"ids": [user_id, (_orm_user(user_id),)]},
        "User",
    ),
    "orm_object_as_dict_key": (lambda user_id: {_orm_user(user_id): 1}, "User"),
    "custom_class": (lambda _id: Opaque(), "Opaque"),
}


@pytest.mark.parametrize("kind", list(UNPLAIN))
def test_submit_refuses_anything_but_plain_values_and_queues_nothing(app, gate, make_user, kind):
    """Rule 2: an ORM row, a session or a Flask proxy never reaches a pool thread."""
    user_id = make_user()["id"]
    build, type_name = UNPLAIN[kind]

    with app.test_request_context("/api/v1/auth/me"):
        value = build(user_id)
        with pytest.raises(TypeError) as refused:
            offload.submit(record, "an id", value)

    message = str(refused.value)
    assert "offload takes ids, strings" in message
    assert type_name in message, message
    assert EXTENSION not in app.extensions  # refused before any pool existed: nothing queued
    offload.shutdown(app)
    assert calls == []


def test_submit_accepts_strings_numbers_none_and_dicts_of_lists(app, gate):
    plain = ("an id", 42, 2.5, True, None, {"ids": ["a", "b"], "nested": {"n": [1, (2, None)]}})

    with app.app_context():
        future = offload.submit(record, *plain)

    assert future.result(timeout=5) == plain
    assert calls == [plain]


def test_a_failing_task_is_contained_and_frees_its_slot(app, gate):
    """The pool runner is a boundary: a task's exception is logged, and the slot comes back."""
    with app.app_context():
        assert offload.submit(fail, 1).result(timeout=5) is None
        futures = [offload.submit(record, n) for n in range(10)]

    assert [future.result(timeout=5) for future in futures] == [(n,) for n in range(10)]


@pytest.mark.config(OFFLOAD_WORKERS=1, OFFLOAD_QUEUE=1)
def test_a_full_backlog_refuses_at_once_and_queues_nothing(app, gate):
    """F4: one running plus one waiting is the limit; the third submit is refused, not queued."""
    with app.app_context():
        running = offload.submit(hold, 1)
        wait_for(lambda: holding == [1], timeout=5)
        waiting = offload.submit(hold, 2)

        started = time.perf_counter()
        with pytest.raises(offload.Rejected):
            offload.submit(record, "refused")
        elapsed = time.perf_counter() - started

        assert elapsed < 0.5, f"a refusal must not wait for the pool ({elapsed:.3f} s)"
        assert not waiting.running()  # queued, not on a thread
        assert not waiting.done()
        gate.set()
        assert running.result(timeout=5) == 1
        assert waiting.result(timeout=5) == 2
        # The slots came back: the pool takes work again.
        assert offload.submit(record, "later").result(timeout=5) == ("later",)
    assert calls == [("later",)]


@pytest.mark.config(OFFLOAD_WORKERS=1, OFFLOAD_QUEUE=1)
def test_a_sign_up_with_a_full_backlog_answers_201_and_its_mail_waits_in_the_outbox(
    app, client, gate
):
    """F3/F4: the request is not blocked by a full pool; the verify mail's row stays pending
    (never lost, never attempted) and a sweep delivers it once the pool is free."""
    with app.app_context():
        holds = [offload.submit(hold, 1)]
        wait_for(lambda: holding == [1], timeout=5)
        holds.append(offload.submit(hold, 2))

    started = time.perf_counter()
    response = client.post(SIGNUP, json={"email": "full@example.com", "password": PASSWORD})
    elapsed = time.perf_counter() - started

    assert response.status_code == 201, response.json
    assert elapsed < 5, elapsed  # generous: bcrypt at cost 4 and a few statements
    with app.app_context():
        rows = db.session.scalars(sa.select(OutboxMessage)).all()
        assert [(row.kind, row.status, row.attempts) for row in rows] == [("email", "pending", 0)]
        assert rows[0].payload["to"] == "full@example.com"
        message_id = rows[0].id
        db.session.remove()

    gate.set()
    assert [future.result(timeout=5) for future in holds] == [1, 2]

    def swept_and_sent() -> bool:
        # A sweep right after the holds end may still find their slots taken (the slot comes
        # back in a done-callback): it is then deferred again, so sweep until it is sent.
        with app.app_context():
            try:
                outbox.sweep()
                return db.session.get(OutboxMessage, message_id).status == "sent"
            finally:
                db.session.remove()

    wait_for(swept_and_sent, timeout=5, step=0.1)
    with app.app_context():
        sent = db.session.get(OutboxMessage, message_id)
        assert sent.attempts == 1
        assert "secrets" not in sent.payload  # the verify link is wiped once sent


def test_the_pool_is_created_on_first_submit_and_then_reused(app, gate, client, make_user):
    """Rule 2: no pool at start-up (nothing to inherit across gunicorn's fork)."""
    assert EXTENSION not in app.extensions
    make_user()
    assert client.get("/healthz").status_code == 200
    assert EXTENSION not in app.extensions  # requests without side effects create no pool

    with app.app_context():
        offload.submit(record, 1).result(timeout=5)
        first = app.extensions[EXTENSION]
        offload.submit(record, 2).result(timeout=5)

    assert app.extensions[EXTENSION] is first


def test_a_forked_child_builds_its_own_pool(app, gate):
    """Rule 2: a pool created before a fork is not used by the child (its threads did not
    survive the fork); the child's first submit creates a fresh one that runs tasks."""
    with app.app_context():
        offload.submit(record, "parent").result(timeout=5)
    parent_pool = app.extensions[EXTENSION]

    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            with app.app_context():
                result = offload.submit(record, "child").result(timeout=5)
            fresh = app.extensions[EXTENSION] is not parent_pool
            code = 0 if result == ("child",) and fresh else 2
        finally:
            os._exit(code)

    deadline = time.monotonic() + 15
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung submitting to the pool")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0, "the child reused the parent's pool or failed"
    assert app.extensions[EXTENSION] is parent_pool  # the parent's pool is untouched


@pytest.mark.config(OFFLOAD_WORKERS=1, OFFLOAD_QUEUE=5)
def test_shutdown_leaves_undelivered_messages_pending(app, gate):
    """Rule 3: a worker going away (gunicorn worker_exit) cancels queued deliveries; their rows
    stay pending with no attempt used, and a later sweep on a new pool delivers them."""
    with app.app_context():
        message_id = outbox.add("email", {"to": "later@example.com", "template": "verify_email"})
        db.session.commit()
        offload.submit(hold, 1)
        wait_for(lambda: holding == [1], timeout=5)
        queued = offload.submit(outbox.deliver, message_id)

    offload.shutdown(app, wait=False)

    assert queued.cancelled()
    assert EXTENSION not in app.extensions
    gate.set()
    with app.app_context():
        row = db.session.get(OutboxMessage, message_id)
        assert (row.status, row.attempts) == ("pending", 0)
        db.session.remove()

        assert outbox.sweep() == 1  # a new pool, created lazily
        assert EXTENSION in app.extensions

        def sent() -> bool:
            try:
                return db.session.get(OutboxMessage, message_id).status == "sent"
            finally:
                db.session.remove()

        wait_for(sent, timeout=5)


@pytest.mark.config(OFFLOAD_WORKERS=2)
def test_a_task_runs_in_its_own_app_context_and_sees_committed_rows(app, gate, make_user):
    """Rule 2: the task opens its own app context and session (not the caller's g or
    session) on the same app and config, and finds a row the caller committed before submit."""
    user = make_user(email="seen@example.com")

    with app.app_context():
        g.marker = "the caller's"
        seen = offload.submit(look_around, user["id"]).result(timeout=5)

    assert seen == {
        "app": id(app),
        "thread": seen["thread"],
        "marker": None,
        "email": "seen@example.com",
        "workers": 2,
    }
    assert seen["thread"] != threading.get_ident()


@pytest.mark.config(OFFLOAD_WORKERS=1, WEBHOOK_WORKERS=2, WEBHOOK_MAX_PER_ORGANIZATION=1)
def test_lanes_have_their_own_threads_and_a_key_takes_turns(app, gate):
    """A held webhooks lane leaves the mail lane free; tasks of one key run one at a
    time (the others wait without a thread), and another key runs beside them."""
    with app.app_context():
        first = offload.submit(hold, 1, lane=offload.WEBHOOKS, key="org-a")
        later = [offload.submit(hold, n, lane=offload.WEBHOOKS, key="org-a") for n in (2, 3)]
        wait_for(lambda: holding == [1], timeout=5)
        other = offload.submit(record, "org-b", lane=offload.WEBHOOKS, key="org-b")
        mail = offload.submit(record, "mail")

        assert other.result(timeout=5) == ("org-b",)
        assert mail.result(timeout=5) == ("mail",)
        assert holding == [1]  # org-a's others never took the second thread
        assert not any(f.running() or f.done() for f in later)  # waiting, without a thread

        gate.set()
        assert [f.result(timeout=5) for f in (first, *later)] == [1, 2, 3]
    assert holding == [1, 2, 3]


@pytest.mark.config(WEBHOOK_WORKERS=1, WEBHOOK_QUEUE=1, WEBHOOK_MAX_PER_ORGANIZATION=1)
def test_tasks_waiting_their_turn_count_against_the_backlog_and_are_cancelled_at_shutdown(
    app, gate
):
    with app.app_context():
        running = offload.submit(hold, 1, lane=offload.WEBHOOKS, key="org-a")
        waiting = offload.submit(hold, 2, lane=offload.WEBHOOKS, key="org-a")
        wait_for(lambda: holding == [1], timeout=5)
        with pytest.raises(offload.Rejected):
            offload.submit(record, "refused", lane=offload.WEBHOOKS, key="org-b")

        offload.shutdown(app, wait=False)

    assert waiting.cancelled()  # never started: its row would stay pending for a sweep
    gate.set()
    assert running.result(timeout=5) == 1
    assert holding == [1]
    assert calls == []
