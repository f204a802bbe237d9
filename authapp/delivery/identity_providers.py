"""Calls to identity providers (docs/federation.md): discovery, the code exchange, the signing
keys and the profile. They block on someone else's server, so they never run on a request
thread (docs/architecture.md "Rules", rule 2): each step is one task on the `federation` lane,
within FEDERATION_TIMEOUT, through the provider's circuit breaker, and takes and returns plain
values. The request thread waits for the answer no longer than that deadline.

A task answers `{"profile": {...}}`, `{"refused": why}` when the provider answered and the
answer does not prove the sign-in (a spent code, a bad ID token), or `{"endpoint": url}`; it
raises when the provider could not be reached or answered nonsense (the breaker counts those),
which the caller sees as ProviderUnavailable."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import TimeoutError as WaitTimedOut
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app

from authapp.delivery import offload
from authapp.platform.errors import ServiceUnavailable
from authapp.platform.federation_settings import Provider
from authapp.security import id_tokens
from authapp.security.id_tokens import IdTokenRefused, UnknownSigningKey

LANE = "federation"
MAX_DOCUMENT_BYTES = 1 << 20  # discovery, keys, profiles: kilobytes; a megabyte is plenty
CACHE_SECONDS = 3600  # discovery documents and key sets; an unknown key id fetches again
_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


class ProviderUnavailable(ServiceUnavailable):
    code = "provider_unavailable"


def on_lane(task: Any, provider: Provider, *args: Any) -> dict[str, Any]:
    """`task(provider name, *args)` on the federation lane; its answer within the deadline.
    Raises ProviderUnavailable for a full lane, a failure, an open breaker or a late answer."""
    wait = current_app.config["FEDERATION_TIMEOUT"] + 1
    unavailable = ProviderUnavailable(
        f"{provider.display_name} is not answering: try again in a moment.",
        headers={"Retry-After": "30"},
    )
    try:
        answer = offload.submit(task, provider.name, *args, lane=LANE).result(timeout=wait)
    except (offload.Rejected, WaitTimedOut):
        raise unavailable from None
    if not isinstance(answer, dict):  # the task failed; offload logged why
        raise unavailable
    return answer


def authorization_endpoint(name: str) -> dict[str, Any]:
    """Task: where the provider asks the person to sign in."""
    provider = _provider(name)
    if provider.kind == "github":
        return {"endpoint": provider.authorize_url}
    return {"endpoint": _discovered(provider, _deadline())["authorization_endpoint"]}


def profile(name: str, code: str, verifier: str, redirect_uri: str, nonce: str, now: int) -> Any:
    """Task: the code exchanged for tokens, and who the provider says signed in."""
    provider, deadline = _provider(name), _deadline()
    if provider.kind == "github":
        return _github_profile(provider, code, verifier, redirect_uri, deadline)
    metadata = _discovered(provider, deadline)
    token = _exchange(provider, metadata, code, verifier, redirect_uri, deadline)
    if "refused" in token:
        return token
    try:
        claims = _checked(provider, metadata, token, nonce, now, deadline)
    except IdTokenRefused as exc:
        return {"refused": f"id_token: {exc.reason}"}
    if "email" not in claims and metadata.get("userinfo_endpoint"):
        info = _get(provider, metadata["userinfo_endpoint"], token["access_token"], deadline)
        if info.get("sub") == claims["sub"]:  # OIDC Core §5.3.2: else it is not this person
            claims = {**info, **claims}
    return {"profile": _oidc_profile(claims)}


def _provider(name: str) -> Provider:
    return current_app.config["FEDERATION_PROVIDERS"][name]  # type: ignore[no-any-return]


def _deadline() -> float:
    return time.monotonic() + current_app.config["FEDERATION_TIMEOUT"]


def _timeout(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the provider's deadline passed")
    return left


def _cached(provider: Provider, url: str, deadline: float, force: bool = False) -> Any:
    key = (provider.name, url)  # by address too: a test, or a host app, may point a name elsewhere
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit[0] > time.monotonic() and not force:
        return hit[1]
    document = _get(provider, url, None, deadline)
    with _cache_lock:
        _cache[key] = (time.monotonic() + CACHE_SECONDS, document)
    return document


def _discovered(provider: Provider, deadline: float) -> dict[str, Any]:
    """The discovery document, checked: its issuer must be the one configured (OpenID Connect
    Discovery §4.3), or another server is speaking for the provider."""
    url = f"{provider.issuer}/.well-known/openid-configuration"
    metadata = _cached(provider, url, deadline)
    needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    if metadata.get("issuer") != provider.issuer or not all(
        isinstance(metadata.get(key), str) and urlsplit(metadata[key]).scheme in ("https", "http")
        for key in needed
    ):
        raise ValueError(f"{provider.name}: the discovery document is not the issuer's")
    return metadata  # type: ignore[no-any-return]


def _get(provider: Provider, url: str, access_token: str | None, deadline: float) -> Any:
    headers = {"Accept": "application/json"}
    if access_token:
        headers["Authorization"] = f"Bearer {access_token}"

    def fetch() -> Any:
        with requests.get(url, headers=headers, timeout=_timeout(deadline), stream=True) as answer:
            answer.raise_for_status()
            return json.loads(_body(answer, url))

    document = offload.breaker("identity_provider", key=provider.name).call(fetch)
    if not isinstance(document, dict | list):
        raise ValueError(f"{provider.name}: {url} answered no JSON document")
    return document


def _body(answer: requests.Response, url: str) -> bytes:
    """The answer's bytes, up to MAX_DOCUMENT_BYTES: a provider (or whatever answers at its
    address) must not fill the process's memory."""
    body = bytearray()
    for chunk in answer.iter_content(chunk_size=65536):
        body += chunk
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return bytes(body)


def _exchange(
    provider: Provider,
    metadata: dict[str, Any],
    code: str,
    verifier: str,
    redirect_uri: str,
    deadline: float,
) -> dict[str, Any]:
    """The token response, or `refused` when the provider refused the code (spent, expired, not
    this client's): an answer, not an outage, so the breaker does not count it. The client
    authenticates with HTTP Basic unless the provider offers only the form body (GitHub's
    documented way; OAuth 2.0 §2.3.1 lets a provider support either)."""
    token_url = metadata["token_endpoint"]
    offered = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    method = "client_secret_basic" if "client_secret_basic" in offered else "client_secret_post"

    def fetch() -> dict[str, Any]:
        with OAuth2Session(
            provider.client_id, provider.client_secret, token_endpoint_auth_method=method
        ) as client:
            try:
                token = client.fetch_token(
                    token_url,
                    code=code,
                    code_verifier=verifier,
                    redirect_uri=redirect_uri,
                    timeout=_timeout(deadline),
                )
            except OAuthError as exc:
                return {"refused": f"token: {exc.error}"}
        return dict(token)

    token = offload.breaker("identity_provider", key=provider.name).call(fetch)
    if "refused" not in token and not isinstance(token.get("access_token"), str):
        return {"refused": "token: no access token"}
    return token  # type: ignore[no-any-return]


def _checked(
    provider: Provider,
    metadata: dict[str, Any],
    token: dict[str, Any],
    nonce: str,
    now: int,
    deadline: float,
) -> dict[str, Any]:
    if not isinstance(token.get("id_token"), str):
        raise IdTokenRefused("no_id_token")
    check = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "nonce": nonce,
        "access_token": token["access_token"],
        "now": now,
        "algorithms": metadata.get("id_token_signing_alg_values_supported"),
    }
    jwks = _cached(provider, metadata["jwks_uri"], deadline)
    try:
        return id_tokens.checked_claims(token["id_token"], jwks=jwks, **check)
    except UnknownSigningKey:  # rotated since we fetched: once more, fresh
        jwks = _cached(provider, metadata["jwks_uri"], deadline, force=True)
        return id_tokens.checked_claims(token["id_token"], jwks=jwks, **check)


def _oidc_profile(claims: dict[str, Any]) -> dict[str, Any]:
    email = claims.get("email")
    verified = claims.get("email_verified")
    return {
        "subject": claims["sub"],
        "email": email if isinstance(email, str) else "",
        "email_verified": verified is True or verified == "true",  # some send a string
        "name": claims.get("name") if isinstance(claims.get("name"), str) else "",
    }


def _github_profile(
    provider: Provider, code: str, verifier: str, redirect_uri: str, deadline: float
) -> dict[str, Any]:
    """GitHub-style OAuth2: no ID token; the account is its API's `/user`, the address its
    primary verified one from `/user/emails` (the public profile's may be anyone's)."""
    github = {
        "token_endpoint": provider.token_url,
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    }
    token = _exchange(provider, github, code, verifier, redirect_uri, deadline)
    if "refused" in token:
        return token
    user = _get(provider, f"{provider.api_url}/user", token["access_token"], deadline)
    emails = _get(provider, f"{provider.api_url}/user/emails", token["access_token"], deadline)
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise ValueError(f"{provider.name}: /user has no numeric id")
    primary = [e for e in emails if isinstance(e, dict) and e.get("primary") is True]
    address = primary[0] if primary and isinstance(primary[0].get("email"), str) else {}
    name = user.get("name") or user.get("login") or ""
    return {
        "profile": {
            "subject": str(user["id"]),
            "email": address.get("email", ""),
            "email_verified": address.get("verified") is True,
            "name": name if isinstance(name, str) else "",
        }
    }
