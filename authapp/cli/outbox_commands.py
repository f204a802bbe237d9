"""`flask outbox ...`: the transactional outbox of emails and webhooks, for operators."""

from __future__ import annotations

import signal
import sys
import threading
from collections import Counter

import click
from flask import current_app
from flask.cli import with_appcontext

from authapp.cli.output import PROGRESS_AFTER, ago, plural, readable_errors, table, when
from authapp.delivery import outbox_admin
from authapp.platform import clock, config


@click.group("outbox")
def outbox_group() -> None:
    """The transactional outbox of emails and webhooks."""


@outbox_group.command("drain")
@with_appcontext
def drain_command() -> None:
    """Deliver every pending message now, in this process, whatever its retry time."""
    with readable_errors():
        total, statuses = outbox_admin.draining()
        counts: Counter[str] = Counter()
        if total < PROGRESS_AFTER:
            counts.update(statuses)
        else:
            bar = click.progressbar(statuses, length=total, label="Delivering", file=sys.stderr)
            with bar as delivering:
                counts.update(delivering)
    if not counts:
        click.echo("Nothing pending.")
    for status, count in sorted(counts.items()):
        click.echo(f"{status}: {count}")


@outbox_group.command("status")
@with_appcontext
def status_command() -> None:
    """Messages by status and kind, the oldest pending message's age, and the dead count."""
    with readable_errors():
        found = outbox_admin.status()
    rows = [(status, kind, str(count)) for (status, kind), count in found.counts.items()]
    if rows:
        for line in table(("status", "kind", "messages"), rows):
            click.echo(line)
    else:
        click.echo("The outbox is empty.")
    if found.oldest_pending is not None:
        age = ago((clock.now() - found.oldest_pending).total_seconds())
        click.echo(f"oldest pending: {age} old (written {when(found.oldest_pending)} UTC)")
    else:
        click.echo("oldest pending: none")
    click.echo(f"dead: {found.total('dead')}")


@outbox_group.command("retry-dead")
@click.option("--kind", type=click.Choice(["email", "webhook"]), help="Only this kind.")
@click.option("--id", "message_id", help="Only this message (its delivery id).")
@with_appcontext
def retry_dead_command(kind: str | None, message_id: str | None) -> None:
    """Dead messages back to pending, due now, with all their attempts again."""
    with readable_errors():
        done = outbox_admin.retry_dead(kind=kind, message_id=message_id)
    click.echo(f"{plural(done.retried, 'dead message')} pending again")
    if done.kept_dead:
        click.echo(
            f"{plural(done.kept_dead, 'verification or reset mail')} kept dead: their links "
            "were wiped when they died; the user asks for a new one"
        )


@outbox_group.command("work")
@click.option("--once", is_flag=True, help="One pass, wait for its deliveries, exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    help="Seconds between passes (default: OUTBOX_SWEEP_SECONDS, or 15 when it is 0).",
)
@with_appcontext
def work_command(once: bool, interval: float | None) -> None:
    """Sweep the outbox in the foreground, as a process of its own, until SIGTERM or Ctrl-C;
    running deliveries finish first."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    seconds = (
        interval or app.config["OUTBOX_SWEEP_SECONDS"] or config.default("OUTBOX_SWEEP_SECONDS")
    )
    stopping = threading.Event()
    previous = {}
    if not once:  # only the main thread may set handlers, and one pass needs none
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stopping.set())
        click.echo(f"outbox worker: a pass every {seconds:g}s; SIGTERM or Ctrl-C stops it")
    try:
        with readable_errors():
            worked = outbox_admin.work(app, stopping, interval=seconds, once=once)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    handed = plural(worked.handed_over, "message")
    if once:
        finished = ", ".join(f"{status} {n}" for status, n in sorted(worked.finished.items()))
        click.echo(f"one pass: {handed} handed over{'; ' + finished if finished else ''}")
    else:
        click.echo(
            f"outbox worker stopped after {plural(worked.passes, 'pass', 'passes')}: {handed}"
        )
