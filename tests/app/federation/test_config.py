"""FEDERATION_PROVIDERS and the federation lane's settings (docs/federation.md
"Configuration"), read from the environment by config.load: a mistake stops the start with a
message naming the provider and the key, as every other setting's (CF-1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from authapp.platform import config

KEYCLOAK = {
    "issuer": "https://sso.example.com/realms/acme/",
    "client_id": " authapp ",
    "client_secret": "s3cret",
    "display_name": "Acme SSO",
}


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def load(env: str = "testing", **variables: str) -> dict[str, Any]:
        for name in list(os.environ):
            if name.startswith(("AUTHAPP", "FEDERATION", "PUBLIC_BASE_URL")):
                monkeypatch.delenv(name)
        monkeypatch.setenv("AUTHAPP_ENV", env)
        if env == "production":
            for name in config.SECRET_NAMES:
                monkeypatch.setenv(name, f"{name.lower()}-0123456789abcdefghijklmnopqrstuvwxyz")
            monkeypatch.setenv("PUBLIC_BASE_URL", "https://example.com")
            monkeypatch.setenv("DATA_ENCRYPTION_KEY", "a" * 43 + "=")
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return config.load(str(tmp_path))

    return load


def _providers(**entries: Any) -> str:
    return json.dumps(entries)


def test_no_providers_by_default(load):
    assert load()["FEDERATION_PROVIDERS"] == {}


def test_an_oidc_provider_and_a_github_one_are_read(load):
    settings = load(
        FEDERATION_PROVIDERS=_providers(
            keycloak=KEYCLOAK,
            github={"kind": "github", "client_id": "gh", "client_secret": "x"},
        )
    )

    keycloak, github = settings["FEDERATION_PROVIDERS"].values()
    assert keycloak.issuer == "https://sso.example.com/realms/acme"  # its trailing / dropped
    assert keycloak.client_id == "authapp"
    assert keycloak.scopes == "openid email profile"
    assert keycloak.display_name == "Acme SSO"
    assert github.token_url == "https://github.com/login/oauth/access_token"
    assert github.api_url == "https://api.github.com"
    assert github.scopes == "read:user user:email"
    assert github.display_name == "Github"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "not JSON"),
        ('["keycloak"]', "a JSON object of providers"),
        (_providers(Keycloak=KEYCLOAK), "a name is a-z"),
        (_providers(**{"x/../y": KEYCLOAK}), "a name is a-z"),
        (_providers(keycloak={**KEYCLOAK, "client_secret": ""}), "client_secret is required"),
        (_providers(keycloak={**KEYCLOAK, "issuer": None}), "an object of strings"),
        (_providers(keycloak={**KEYCLOAK, "isuer": "https://x"}), "unknown key isuer"),
        (_providers(keycloak={**KEYCLOAK, "kind": "saml"}), "kind is one of"),
        (_providers(keycloak={**KEYCLOAK, "issuer": "ftp://x"}), "expected an https URL"),
        (_providers(keycloak={**KEYCLOAK, "issuer": "https://x/?a=1"}), "no query"),
        (_providers(keycloak=[]), "an object of strings"),
    ],
)
def test_a_mistake_stops_the_start_naming_it(load, raw: str, words: str):
    with pytest.raises(config.ConfigError, match="FEDERATION_PROVIDERS") as refused:
        load(FEDERATION_PROVIDERS=raw)

    assert words in str(refused.value)


def test_production_wants_https_providers(load):
    plain = {**KEYCLOAK, "issuer": "http://sso.example.com"}
    with pytest.raises(config.ConfigError, match="keycloak must use https"):
        load("production", FEDERATION_PROVIDERS=_providers(keycloak=plain))

    assert load("development", FEDERATION_PROVIDERS=_providers(keycloak=plain))


@pytest.mark.parametrize(
    ("name", "value"),
    [("FEDERATION_WORKERS", "0"), ("FEDERATION_TIMEOUT", "0"), ("FEDERATION_FLOW_TTL", "5")],
)
def test_the_lane_and_the_flow_have_sane_bounds(load, name: str, value: str):
    with pytest.raises(config.ConfigError, match=name):
        load(**{name: value})


def test_the_json_flows_redirect_uris_are_checked(load):
    spa = "https://app.example.com/auth/callback?from=authapp"
    assert load("production", FEDERATION_APP_REDIRECTS=spa)["FEDERATION_APP_REDIRECTS"] == [spa]
    for bad, words in (
        ("https://app.example.com/cb#fragment", "no query or fragment"),
        ("app.example.com/cb", "expected an https URL"),
    ):
        with pytest.raises(config.ConfigError, match="FEDERATION_APP_REDIRECTS") as refused:
            load(FEDERATION_APP_REDIRECTS=bad)
        assert words in str(refused.value)
    with pytest.raises(config.ConfigError, match="must be https in production"):
        load("production", FEDERATION_APP_REDIRECTS="http://app.example.com/cb")
    assert load("production", FEDERATION_APP_REDIRECTS="http://localhost:5173/cb")
