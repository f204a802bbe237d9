"""The relying party's settings (docs/configuration.md "Passkeys"): WEBAUTHN_RP_ID is a domain
name, WEBAUTHN_ORIGINS are origins on it (https in production, localhost aside), checked at
start (ConfigError, as CF-1's checks); a configured relying party is the one answers must be
made for; and without one, a site opened by an IP address offers no passkeys (503)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authapp.auth import relying_party
from authapp.platform import config
from tests.app.passkeys.conftest import (
    AUTH_PASSKEYS,
    SETTINGS_PASSKEYS,
    Holder,
    challenges,
    passkey_login,
    refused,
    request_options,
)
from tests.conftest import PASSWORD
from tests.passkey_authenticator import Authenticator

SITE = "https://example.com"
CONFIGURED = {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": [SITE]}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """config.load with `AUTHAPP_ENV` and the given variables, nothing else of the host's
    AUTHAPP_*/WEBAUTHN_* settings; production gets secrets that pass its checks."""

    def load(env: str = "testing", **variables: str) -> dict:
        for name in list(os.environ):
            if name.startswith(("AUTHAPP", "WEBAUTHN", "PUBLIC_BASE_URL")):
                monkeypatch.delenv(name)
        monkeypatch.setenv("AUTHAPP_ENV", env)
        if env == "production":
            for name in (*config.SECRET_NAMES,):
                monkeypatch.setenv(name, f"{name.lower()}-0123456789abcdefghijklmnopqrstuvwxyz")
            monkeypatch.setenv("PUBLIC_BASE_URL", "https://example.com")
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return config.load(str(tmp_path))

    return load


def test_an_rp_id_and_origins_on_it_are_accepted(environment):
    settings = environment(
        "production",
        WEBAUTHN_RP_ID="Example.COM",
        WEBAUTHN_ORIGINS="https://example.com, https://login.example.com:8443/",
    )

    assert settings["WEBAUTHN_RP_ID"] == "example.com"
    assert settings["WEBAUTHN_ORIGINS"] == ["https://example.com", "https://login.example.com:8443"]


def test_localhost_may_be_http_even_in_production(environment):
    settings = environment(
        "production", WEBAUTHN_RP_ID="localhost", WEBAUTHN_ORIGINS="http://localhost:8000"
    )

    assert settings["WEBAUTHN_ORIGINS"] == ["http://localhost:8000"]


def test_http_origins_are_fine_outside_production(environment):
    settings = environment(
        "development", WEBAUTHN_RP_ID="example.com", WEBAUTHN_ORIGINS="http://app.example.com"
    )

    assert settings["WEBAUTHN_ORIGINS"] == ["http://app.example.com"]


@pytest.mark.parametrize(
    "rp_id",
    [
        "127.0.0.1",
        "::1",
        "https://example.com",
        "example.com:443",
        "example.com/path",
        "exa mple.com",
        "-example.com",
        "example..com",
    ],
)
def test_an_rp_id_that_is_no_domain_name_is_refused(environment, rp_id):
    with pytest.raises(config.ConfigError, match="WEBAUTHN_RP_ID"):
        environment(WEBAUTHN_RP_ID=rp_id)


@pytest.mark.parametrize(
    "origins",
    [
        "https://evil.example",  # another site
        "https://badexample.com",  # a suffix, not a subdomain
        "https://example.com.evil.example",
        "https://example.com,https://evil.example",  # one bad entry is enough
    ],
)
def test_an_origin_off_the_rp_id_is_refused(environment, origins):
    with pytest.raises(config.ConfigError, match="WEBAUTHN_ORIGINS"):
        environment(WEBAUTHN_RP_ID="example.com", WEBAUTHN_ORIGINS=origins)


@pytest.mark.parametrize(
    "origins",
    [
        "example.com",
        "ftp://example.com",
        "https://example.com/login",
        "https://example.com?x=1",
        "https://user@example.com",
        "https://example.com:99999",
    ],
)
def test_an_origin_that_is_no_origin_is_refused(environment, origins):
    with pytest.raises(config.ConfigError, match="WEBAUTHN_ORIGINS"):
        environment(WEBAUTHN_RP_ID="example.com", WEBAUTHN_ORIGINS=origins)


def test_production_origins_are_https(environment):
    with pytest.raises(config.ConfigError, match="https"):
        environment(
            "production", WEBAUTHN_RP_ID="example.com", WEBAUTHN_ORIGINS="http://example.com"
        )


def test_origins_without_an_rp_id_are_refused(environment):
    with pytest.raises(config.ConfigError, match="WEBAUTHN_RP_ID"):
        environment(WEBAUTHN_ORIGINS="https://example.com")


def test_the_same_checks_apply_to_settings_given_to_the_factory(tmp_path, monkeypatch):
    """Overrides (tests, an adopter's create_app(settings)) are checked like the environment."""
    monkeypatch.setenv("AUTHAPP_ENV", "testing")
    for name in ("WEBAUTHN_RP_ID", "WEBAUTHN_ORIGINS"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(config.ConfigError, match="WEBAUTHN_ORIGINS"):
        config.load(
            str(tmp_path),
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": ["https://evil.example"]},
        )


def configured_holder(holder: Holder) -> Holder:
    """`holder` with an authenticator on the configured site, and a passkey made there."""
    holder.authenticator = Authenticator(origin=SITE)
    options = holder.creation_options()
    assert options.status_code == 200, options.json
    assert options.json["publicKey"]["rp"]["id"] == "example.com"
    response = holder.submit(holder.authenticator.create(options.json["publicKey"]))
    assert response.status_code == 201, response.json
    return holder


def configured_options(client) -> dict:
    response = client.post(f"{AUTH_PASSKEYS}/options")
    assert response.status_code == 200, response.json
    assert response.json["publicKey"]["rpId"] == "example.com"
    return response.json["publicKey"]


@pytest.mark.config(**CONFIGURED)
def test_a_configured_relying_party_is_the_one_answers_are_checked_for(client, holder: Holder):
    """With WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS set, the request's host does not matter: an
    answer made on the configured origin logs in."""
    configured_holder(holder)

    response = passkey_login(client, holder.authenticator.get(configured_options(client)))

    assert response.status_code == 200, response.json


@pytest.mark.config(**CONFIGURED)
def test_an_answer_from_the_requests_own_origin_is_refused(app, client, holder: Holder):
    """The test client's origin (http://localhost) is not a configured one: refused, even
    though the request came from it."""
    configured_holder(holder)
    local = holder.authenticator.clone()
    local.origin = "http://localhost"

    refused(passkey_login(client, local.get(configured_options(client))))


@pytest.mark.config(**CONFIGURED)
def test_an_answer_hashed_for_another_rp_id_is_refused(client, holder: Holder):
    configured_holder(holder)
    evil = holder.authenticator.clone()
    evil.rp_id = "evil.example"

    refused(passkey_login(client, evil.get(configured_options(client))))


@pytest.mark.config(**CONFIGURED)
def test_a_registration_from_another_origin_is_refused(app, holder: Holder):
    options = holder.creation_options().json["publicKey"]

    refused(holder.submit(Authenticator().create(options)), 422, "invalid_passkey")
    assert holder.listed() == []


IP_HOSTS = ["http://127.0.0.1", "http://[::1]", "http://10.0.0.7:8000"]


@pytest.mark.parametrize("host", IP_HOSTS)
def test_a_site_opened_by_an_ip_address_offers_no_passkeys(app, client, holder: Holder, host):
    """Browsers refuse an IP address as the RP id: every route that needs the relying party
    is 400 passkeys_unavailable (docs/api.md "Where passkeys are unavailable"), and no
    challenge is handed out."""
    holder.register()
    answer = holder.authenticator.get(request_options(client))
    before = challenges(app)
    body = {"login": holder.user["email"], "password": PASSWORD, "passkey": answer}
    responses = {
        "login options": client.post(f"{AUTH_PASSKEYS}/options", base_url=host),
        "registration options": holder.creation_options(base_url=host),
        "register": holder.submit({"id": "AAAA"}, base_url=host),
        "passkey login": passkey_login(client, answer, base_url=host),
        "password login": client.post("/api/v1/auth/login", json=body, base_url=host),
    }

    for name, response in responses.items():
        assert response.status_code == 400, (name, response.get_data(as_text=True))
        assert response.json["error"]["code"] == "passkeys_unavailable", name
    assert challenges(app) == before


@pytest.mark.parametrize("host", IP_HOSTS[:1])
def test_passkeys_are_still_listed_renamed_and_removed_by_ip_address(client, holder, host):
    passkey = holder.register()
    path = f"{SETTINGS_PASSKEYS}/{passkey['id']}"

    listed = client.get(SETTINGS_PASSKEYS, headers=holder.headers, base_url=host)
    renamed = client.patch(path, json={"name": "N"}, headers=holder.headers, base_url=host)
    removed = holder.remove(passkey["id"], PASSWORD, base_url=host)

    assert listed.status_code == 200, listed.json
    assert renamed.status_code == 200, renamed.json
    assert removed.status_code == 204, removed.get_data(as_text=True)


@pytest.mark.config(**CONFIGURED)
def test_a_configured_rp_id_serves_an_ip_address_too(client):
    """With WEBAUTHN_RP_ID set, the host the request names does not matter."""
    response = client.post(f"{AUTH_PASSKEYS}/options", base_url="http://127.0.0.1")

    assert response.status_code == 200, response.json
    assert response.json["publicKey"]["rpId"] == "example.com"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBAUTHN_CHALLENGE_TTL", "5s"),
        ("WEBAUTHN_CHALLENGE_TTL", "2d"),
        ("PASSKEYS_PER_USER", "0"),
        ("PASSKEYS_PER_USER", "1001"),
    ],
)
def test_passkey_numbers_out_of_range_are_refused(environment, name, value):
    with pytest.raises(config.ConfigError, match=name):
        environment(**{name: value})


def test_production_takes_the_relying_party_from_public_base_url_not_the_host(app):
    """As RS-2 for reset links: in production the Host header names no relying party; with
    no WEBAUTHN_* settings, PUBLIC_BASE_URL's host and origin are the RP id and origin."""
    app.config.update(AUTHAPP_ENV="production", PUBLIC_BASE_URL="https://Auth.Example.com/base/")
    with app.test_request_context("/", base_url="http://evil.example:8080"):
        party = relying_party.current()

    assert party.id == "auth.example.com"
    assert party.origins == ("https://auth.example.com",)


def test_outside_production_the_requests_own_site_is_the_relying_party(app):
    with app.test_request_context("/", base_url="http://app.localhost:8000"):
        party = relying_party.current()

    assert party.id == "app.localhost"
    assert party.origins == ("http://app.localhost:8000",)
