"""The identity providers people may sign in with (docs/federation.md "Configuration"), from
FEDERATION_PROVIDERS: a JSON object of providers by name, each an OpenID Connect provider found
through its issuer's discovery document, or a GitHub-style OAuth2 provider (no ID token: the
account comes from its API). Parsed strictly at start: a typo stops the start, naming the key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KINDS = ("oidc", "github")
NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")  # it is a path segment: /login/with/<name>
GITHUB = {
    "authorize_url": "https://github.com/login/oauth/authorize",
    "token_url": "https://github.com/login/oauth/access_token",
    "api_url": "https://api.github.com",
}
DEFAULT_SCOPES = {"oidc": "openid email profile", "github": "read:user user:email"}
KEYS = frozenset(
    {"kind", "issuer", "client_id", "client_secret", "scopes", "display_name", *GITHUB}
)


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str
    display_name: str
    client_id: str
    client_secret: str
    scopes: str
    issuer: str = ""  # oidc: where /.well-known/openid-configuration is
    authorize_url: str = ""  # github: its three addresses (GitHub Enterprise has its own)
    token_url: str = ""
    api_url: str = ""


def providers(raw: str) -> dict[str, Provider]:
    """FEDERATION_PROVIDERS: `{"<name>": {"issuer": ..., "client_id": ..., ...}, ...}`."""
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, at character {exc.pos})") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object of providers by name")
    return {name: _provider(name, entry) for name, entry in document.items()}


def _provider(name: str, entry: Any) -> Provider:
    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r}: a name is a-z, 0-9 and '-', at most 32, from a letter")
    if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
        raise ValueError(f"{name}: expected an object of strings")
    unknown = set(entry) - KEYS
    if unknown:
        raise ValueError(f"{name}: unknown key {', '.join(sorted(unknown))}")
    kind = entry.get("kind", "oidc")
    if kind not in KINDS:
        raise ValueError(f"{name}: kind is one of {', '.join(KINDS)}")
    for key in ("client_id", "client_secret", *(("issuer",) if kind == "oidc" else ())):
        if not entry.get(key, "").strip():
            raise ValueError(f"{name}: {key} is required")
    addresses = {"issuer": entry["issuer"].rstrip("/")} if kind == "oidc" else {}
    if kind == "github":
        addresses = {key: entry.get(key, GITHUB[key]).rstrip("/") for key in GITHUB}
    for key, url in addresses.items():
        _check_url(f"{name}: {key}", url)
    return Provider(
        name=name,
        kind=kind,
        display_name=entry.get("display_name", "").strip() or name.capitalize(),
        client_id=entry["client_id"].strip(),
        client_secret=entry["client_secret"],
        scopes=" ".join(entry.get("scopes", DEFAULT_SCOPES[kind]).split()),
        **addresses,
    )


def _check_url(where: str, url: str, *, fragment_only: bool = False) -> None:
    """An absolute http(s) URL; without a query either, unless only a fragment is refused (a
    redirect URI may carry a query, never a fragment: RFC 6749 §3.1.2)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{where}: expected an https URL, not {url!r}")
    if parts.fragment or (parts.query and not fragment_only):
        raise ValueError(f"{where}: no query or fragment in {url!r}")


RANGES = {
    "FEDERATION_WORKERS": (1, 1024),
    "FEDERATION_QUEUE": (0, 100_000),
    "FEDERATION_TIMEOUT": (1, 120),
    "FEDERATION_FLOW_TTL": (60, 86_400),
}


def check(settings: dict[str, Any], error: type[Exception]) -> None:
    """The lane's sizes and times in range; in production a provider is reached over https
    only: the token exchange carries the client secret and the answer says who signed in."""
    for name, (low, high) in RANGES.items():
        if not low <= settings[name] <= high:
            raise error(f"{name} must be between {low} and {high}.")
    production = settings["AUTHAPP_ENV"] == "production"
    for uri in settings["FEDERATION_APP_REDIRECTS"]:
        try:
            _check_url("FEDERATION_APP_REDIRECTS", uri, fragment_only=True)
        except ValueError as exc:
            raise error(str(exc)) from None
        if production and not uri.startswith("https://") and urlsplit(uri).hostname != "localhost":
            raise error(f"FEDERATION_APP_REDIRECTS: {uri} must be https in production.")
    if not production:
        return
    for provider in settings["FEDERATION_PROVIDERS"].values():
        urls = [provider.issuer, provider.authorize_url, provider.token_url, provider.api_url]
        if any(url and not url.startswith("https://") for url in urls):
            raise error(f"FEDERATION_PROVIDERS: {provider.name} must use https in production.")
