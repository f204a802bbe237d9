"""What the operator's commands share: errors as readable lines (exit code 1, no traceback),
passwords read without echo, and plain-text tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
import sqlalchemy.exc
from marshmallow import ValidationError

from authapp.platform.errors import AppError

# Progress bars go to standard error: standard output stays the result, for scripts to read.
PROGRESS_AFTER = 20  # below this many items a bar would only flicker


def field_lines(messages: Any, name: str = "") -> list[str]:
    """marshmallow's or a ValidationFailed's messages, one `field: message` per line."""
    if isinstance(messages, dict):
        return [
            line
            for key, value in messages.items()
            for line in field_lines(value, key if key != "_schema" else name)
        ]
    if isinstance(messages, list | tuple):
        return [line for item in messages for line in field_lines(item, name)]
    return [f"{name}: {messages}" if name else str(messages)]


@contextmanager
def readable_errors() -> Iterator[None]:
    """A service's refusal, a bad input or an unreachable database becomes `Error: ...` lines."""
    try:
        yield
    except ValidationError as exc:
        raise click.ClickException(
            "\n".join(["invalid input", *field_lines(exc.messages)])
        ) from None
    except AppError as exc:
        raise click.ClickException(
            "\n".join([exc.message, *field_lines(exc.fields or {})])
        ) from None
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
        raise click.ClickException(f"The database is unreachable: {reason}") from None


def read_password(from_stdin: bool) -> str:
    """A hidden prompt typed twice; or, for scripts, the first line of standard input (its
    line end only is stripped: spaces belong to the password)."""
    if not from_stdin:
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    try:
        line = sys.stdin.readline()
    except UnicodeDecodeError:
        raise click.ClickException("The password on standard input is not UTF-8.") from None
    password = line.rstrip("\r\n")
    if not password:
        raise click.ClickException("No password on standard input.")
    return password


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, headers first."""
    widths = [
        max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)
    ]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def ago(seconds: float) -> str:
    """An age an operator reads at a glance: 45s, 12m 3s, 5h 2m, 3d 4h."""
    whole = int(max(0, seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0s"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"
