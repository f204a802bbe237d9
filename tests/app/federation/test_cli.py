"""`flask federation list` and `check` (docs/federation.md "Checking a provider"), with the real
provider and an address where nothing listens."""

from __future__ import annotations

from flask import Flask

from tests.app.federation.conftest import provider_settings
from tests.app.ops.operator_cli import ok, refused
from tests.oidc_peer import OidcProvider
from tests.servers import free_port


def test_list_shows_each_provider_and_its_redirect_uri(app: Flask, provider: OidcProvider):
    out = ok(app, "federation", "list")

    assert "idp" in out
    assert provider.issuer in out
    assert f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/login/with/idp/callback" in out
    assert "github" in out


def test_check_reaches_the_provider(app: Flask, provider: OidcProvider):
    out = ok(app, "federation", "check", "idp")

    assert f"idp: reachable; people sign in at {provider.issuer}/auth" in out


def test_check_says_when_a_provider_cannot_be_reached(app: Flask):
    app.config["FEDERATION_PROVIDERS"] = provider_settings(f"http://127.0.0.1:{free_port()}")

    assert "is not answering" in refused(app, "federation", "check", "idp")
    assert "No provider named 'nobody'" in refused(app, "federation", "check", "nobody")


def test_list_without_providers_says_so(app: Flask):
    app.config["FEDERATION_PROVIDERS"] = {}

    assert "No identity provider is configured" in ok(app, "federation", "list")
