"""`flask users ...`: accounts for operators. Each command parses, calls one service, prints.

LOGIN is an account's email or username. Exit codes: 0 done, 1 refused (the reason printed as
`Error: ...`), 2 a usage error (click's own: a missing argument, an unknown option).
"""

from __future__ import annotations

from collections.abc import Callable

import click
from flask.cli import with_appcontext

from authapp.auth.schemas import SignupIn
from authapp.auth.services import accounts, operators
from authapp.cli.output import plural, read_password, readable_errors, table, when, yes_no

LIST_HEADERS = ("id", "email", "username", "verified", "disabled", "mfa", "created")
PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)


@click.group("users")
def users_group() -> None:
    """Accounts: list, create, set a password, disable, enable, end sessions."""


@users_group.command("list")
@click.option("--organization", help="Only this organization's (its id or exact name).")
@click.option("--search", help="A part of the email, username or full name, in any case.")
@click.option("--disabled", "disabled_only", is_flag=True, help="Only disabled accounts.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@with_appcontext
def list_command(
    organization: str | None, search: str | None, disabled_only: bool, limit: int
) -> None:
    """Accounts by creation, oldest first, with a count at the end."""
    with readable_errors():
        found = operators.list_accounts(
            organization=organization, search=search, disabled_only=disabled_only, limit=limit
        )
    rows = [
        (a.id, a.email, a.username or "-", yes_no(a.verified), yes_no(a.disabled), yes_no(a.mfa),
         when(a.created_at))
        for a in found.accounts
    ]  # fmt: skip
    if rows:
        for line in table(LIST_HEADERS, rows):
            click.echo(line)
    shown = len(rows)
    more = f" (first {shown} of {found.total}; --limit shows more)" if shown < found.total else ""
    click.echo(f"{plural(found.total, 'account')}{more}")


def create_account(
    email: str,
    password: Callable[[], str],
    *,
    username: str | None,
    full_name: str,
    organization: str | None,
    roles: tuple[str, ...],
) -> None:
    """`users create` and `create-user`: the sign-up's field rules first, so a bad email is
    refused before the password is asked for, then the service's."""
    with readable_errors():
        fields = SignupIn(only=("email", "username", "full_name")).load(
            {"email": email, "username": username, "full_name": full_name}
        )
        user = accounts.create_user(
            **fields, password=password(), organization=organization, role_names=roles
        )
    click.echo(f"created user {user.email} ({user.id})")


@users_group.command("create")
@click.argument("email")
@click.option("--username")
@click.option("--full-name", default="")
@click.option("--organization", help="Its id or exact name (default: the default organization).")
@click.option("--role", "roles", multiple=True, default=("member",), show_default=True)
@PASSWORD_STDIN
@with_appcontext
def create_command(
    email: str,
    username: str | None,
    full_name: str,
    organization: str | None,
    roles: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Create an account (its email counted as verified); the password is prompted for."""
    create_account(
        email,
        lambda: read_password(password_stdin),
        username=username,
        full_name=full_name,
        organization=organization,
        roles=roles,
    )


@users_group.command("set-password")
@click.argument("login")
@PASSWORD_STDIN
@with_appcontext
def set_password_command(login: str, password_stdin: bool) -> None:
    """Set LOGIN's password (the sign-up policy); every session ends, the owner is mailed."""
    with readable_errors():
        accounts.account_named(login)  # an unknown login fails before the prompt
        revoked = operators.set_password(login, read_password(password_stdin))
    click.echo(f"password set for {login.strip()}; {plural(revoked, 'session')} revoked")


@users_group.command("disable")
@click.argument("login")
@with_appcontext
def disable_command(login: str) -> None:
    """LOGIN can no longer log in or refresh; every session ends now."""
    with readable_errors():
        user = accounts.disable_user(login)
    click.echo(f"disabled {user.email}; its sessions are revoked")


@users_group.command("enable")
@click.argument("login")
@with_appcontext
def enable_command(login: str) -> None:
    """LOGIN may log in again (its old sessions stay revoked)."""
    with readable_errors():
        changed = operators.enable_user(login)
    click.echo(f"enabled {login.strip()}" if changed else f"{login.strip()} was not disabled")


@users_group.command("revoke-sessions")
@click.argument("login")
@with_appcontext
def revoke_sessions_command(login: str) -> None:
    """End every session of LOGIN now; its access and refresh tokens stop working."""
    with readable_errors():
        revoked = operators.revoke_sessions(login)
    sessions = plural(revoked.sessions, "session")
    tokens = plural(revoked.refresh_tokens, "live refresh token")
    click.echo(f"revoked {sessions} of {login.strip()} ({tokens} with them)")
