"""`flask federation ...`: the identity providers of FEDERATION_PROVIDERS, for operators
(docs/federation.md "Checking a provider")."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from authapp.cli.output import table
from authapp.delivery import identity_providers
from authapp.platform.errors import AppError


@click.group("federation")
def federation_group() -> None:
    """Sign-in with identity providers (FEDERATION_PROVIDERS)."""


@federation_group.command("list")
@with_appcontext
def list_command() -> None:
    """The configured providers, and the redirect URI to register at each."""
    providers = current_app.config["FEDERATION_PROVIDERS"].values()
    if not providers:
        click.echo("No identity provider is configured (FEDERATION_PROVIDERS).")
        return
    rows = [
        (p.name, p.kind, p.display_name, p.issuer or p.authorize_url, _redirect_uri(p.name))
        for p in providers
    ]
    for line in table(("name", "kind", "button", "address", "redirect URI"), rows):
        click.echo(line)


@federation_group.command("check")
@click.argument("name")
@with_appcontext
def check_command(name: str) -> None:
    """Reach the provider as a sign-in would (its discovery document for OpenID Connect), on
    the federation lane, within FEDERATION_TIMEOUT; exit status 1 when it cannot."""
    provider = current_app.config["FEDERATION_PROVIDERS"].get(name)
    if provider is None:
        raise click.ClickException(f"No provider named {name!r} in FEDERATION_PROVIDERS.")
    try:
        answer = identity_providers.on_lane(identity_providers.authorization_endpoint, provider)
    except AppError as exc:
        raise click.ClickException(f"{name}: {exc.message}") from None
    click.echo(f"{name}: reachable; people sign in at {answer['endpoint']}")


def _redirect_uri(name: str) -> str:
    """PUBLIC_BASE_URL's (what production registers), whatever the environment."""
    config = current_app.config
    path = f"{config['AUTHAPP_URL_PREFIX']}/login/with/{name}/callback"
    return config["PUBLIC_BASE_URL"].rstrip("/") + path
