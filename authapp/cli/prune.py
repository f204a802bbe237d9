"""`flask prune`: delete the rows past their retention (auth/services/retention.py)."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from authapp.auth.services import retention
from authapp.cli.output import PROGRESS_AFTER, readable_errors, table


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@with_appcontext
def prune_command(dry_run: bool) -> None:
    """Delete expired sessions, refresh and one-time tokens, sent outbox messages and old audit
    events, in batches, as PRUNE_SESSIONS_AFTER, PRUNE_TOKENS_AFTER, PRUNE_OUTBOX_SENT_AFTER and
    AUDIT_RETENTION say."""
    with readable_errors():
        targets = retention.targets()
        planned = retention.count(targets)
        counts = planned if dry_run else _pruned(targets, sum(planned.values()))
    heading = "would delete" if dry_run else "deleted"
    for line in table(("table", heading), [(name, str(n)) for name, n in counts.items()]):
        click.echo(line)
    click.echo(f"{heading}: {sum(counts.values())} rows in all")


def _pruned(targets: list[retention.Target], total: int) -> dict[str, int]:
    counts = {target.table: 0 for target in targets}
    batches = retention.prune(targets)
    if total < PROGRESS_AFTER:
        for name, deleted in batches:
            counts[name] += deleted
        return counts
    with click.progressbar(length=total, label="Pruning", file=sys.stderr) as bar:
        for name, deleted in batches:
            counts[name] += deleted
            bar.update(deleted)
    return counts
