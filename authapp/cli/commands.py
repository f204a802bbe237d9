"""Thin click commands for operators; each calls one service."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from authapp.cli.federation_commands import federation_group
from authapp.cli.outbox_commands import outbox_group
from authapp.cli.output import readable_errors
from authapp.cli.prune import prune_command
from authapp.cli.secrets import secrets_group
from authapp.cli.seed import SeedError, add_permission, seed_database
from authapp.cli.users import create_account, disable_command, users_group
from authapp.models import TIER_RATE_LIMITS
from authapp.platform import migrations
from authapp.settings.schemas import PermissionIn
from authapp.settings.services import mfa, roles
from authapp.settings.services import organization as organization_services


@click.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def upgrade_command(revision: str) -> None:
    """Migrate authapp's tables in the host's database (its own version table)."""
    migrations.upgrade(revision)
    click.echo(f"authapp's tables are at {migrations.current() or 'no revision'}")


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Create what the database lacks: default organization, built-ins, admin."""
    try:
        report = seed_database()
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    for item in report.created:
        click.echo(f"created {item}")
    if not report.created:
        click.echo("Already seeded; nothing changed.")
    if report.generated_password:
        click.echo(f"admin password (shown once): {report.generated_password}")


@click.command("create-user")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--username")
@click.option("--full-name", default="")
@click.option("--organization", help="The organization's id or exact name (default: the default).")
@click.option("--role", "roles", multiple=True, default=("member",), show_default=True)
@with_appcontext
def create_user_command(
    email: str,
    password: str,
    username: str | None,
    full_name: str,
    organization: str | None,
    roles: tuple[str, ...],
) -> None:
    """Create an account (email counted as verified); `users create` with the email as an
    option and the password also as one (kept for existing scripts)."""
    create_account(
        email,
        lambda: password,
        username=username,
        full_name=full_name,
        organization=organization,
        roles=roles,
    )


@click.group("permissions")
def permissions_group() -> None:
    """Permission codes that roles and API keys can carry."""


@permissions_group.command("add")
@click.argument("code")
@click.argument("description")
@with_appcontext
def add_permission_command(code: str, description: str) -> None:
    """Register an application permission code (for example commodities:write)."""
    with readable_errors():
        body = PermissionIn().load({"code": code, "description": description})
    if add_permission(**body):
        click.echo(f"created permission {code}; owner and admin hold it")
    else:
        click.echo(f"permission {code} already exists; description updated")


@permissions_group.command("list")
@with_appcontext
def list_permissions_command() -> None:
    """Every permission code with its description."""
    for permission in roles.list_permissions():
        click.echo(f"{permission.code}\t{permission.description}")


@click.group("org")
def org_group() -> None:
    """Organizations."""


@org_group.command("set-tier")
@click.argument("organization")
@click.argument("tier", type=click.Choice(sorted(TIER_RATE_LIMITS)))
@with_appcontext
def set_tier_command(organization: str, tier: str) -> None:
    """Set ORGANIZATION's (id or exact name) tier and its API keys' rate limit."""
    with readable_errors():
        found = organization_services.set_tier(organization, tier)
    click.echo(f"{found.name}: tier {found.tier}, {found.rate_limit_per_minute} API requests/min")


@click.group("mfa")
def mfa_group() -> None:
    """Two-factor authentication."""


@mfa_group.command("reset")
@click.argument("login")
@with_appcontext
def reset_mfa_command(login: str) -> None:
    """Turn MFA off for the account with this email or username (it lost its authenticator and
    its recovery codes) and remove its passkeys; the user is mailed and the audit log records
    it."""
    with readable_errors():
        user = mfa.reset_by_operator(login)
    click.echo(
        f"{user.email}: two-factor authentication is off and no passkey is left; "
        "log in with the password only"
    )


def init_app(app: Flask, group: str | None = None) -> None:
    """The commands at the top of `flask` (authapp as the whole app), or in one `group` (mounted
    in a host app: `flask authapp ...`, beside the host's own commands)."""
    target: click.Group = app.cli
    if group is not None:
        target = click.Group(
            group, help="authapp: accounts, organizations, outbox, retention, migrations."
        )
        target.add_command(upgrade_command)
        app.cli.add_command(target)
    for command in (
        seed_command,
        create_user_command,
        users_group,
        permissions_group,
        outbox_group,
        prune_command,
        org_group,
        mfa_group,
        secrets_group,
        federation_group,
    ):
        target.add_command(command)
    target.add_command(disable_command, "disable-user")  # `users disable`, by its older name
