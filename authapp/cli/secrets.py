"""`flask secrets generate`: the secrets production refuses to start without, freshly generated,
as lines for an environment file (docs/deployment.md "One host"). On a host with no secrets yet,
`flask` cannot load the app (production refuses it), so `python -m authapp.cli secrets generate`
runs the same command without it (cli/__main__.py)."""

from __future__ import annotations

import secrets as random_bytes

import click
from cryptography.fernet import Fernet

from authapp.platform.config import SECRET_NAMES


def generated() -> dict[str, str]:
    """SECRET_KEY, JWT_SECRET_KEY and PASSWORD_PEPPER (48 random bytes each, URL-safe), and a
    Fernet key for DATA_ENCRYPTION_KEY."""
    values = {name: random_bytes.token_urlsafe(48) for name in SECRET_NAMES}
    return values | {"DATA_ENCRYPTION_KEY": Fernet.generate_key().decode()}


@click.group("secrets")
def secrets_group() -> None:
    """Secrets for a production environment."""


@secrets_group.command("generate")
def generate_command() -> None:
    """Print a new set of production secrets, one NAME=value line each."""
    click.echo("# authapp's production secrets: keep them in your secret store, never in git.")
    click.echo("# PASSWORD_PEPPER and DATA_ENCRYPTION_KEY cannot change later without losing data")
    click.echo('# (docs/deployment.md "Key rotation").')
    for name, value in generated().items():
        click.echo(f"{name}={value}")
