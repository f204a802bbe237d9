"""The authorization code flow with an identity provider, as the pages run it (docs/federation.md
"The flow"): PKCE (S256), `state` and `nonce`. What the flow must remember while the person is
at the provider waits in the signed session cookie, bound to this browser: a callback whose
`state` is not this browser's (login CSRF), whose wait ran out, or that comes a second time, is
refused before any call to the provider. A flow logs in (the login pages) or links (the security
page, `purpose="link"`, bound to the account and session that asked)."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import abort, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response

from authapp.auth import cookies
from authapp.auth.services import federated_logins
from authapp.delivery import events, identity_providers
from authapp.platform import clock
from authapp.platform.errors import Unauthorized
from authapp.platform.federation_settings import Provider
from authapp.platform.network import request_client

FLOW = "federation_flow"
# Back from a sign-in that accepts an invitation: the checked profile waits in the signed
# session cookie for the invitation page (settings), which creates the account.
INVITED = "federated_invitation"
MAX_PARAMETER = 2048  # a code or a state longer than this is nobody's
Flow = dict[str, Any]


def provider_named(name: str) -> Provider:
    provider = current_app.config["FEDERATION_PROVIDERS"].get(name)
    if provider is None:
        abort(404)
    return provider  # type: ignore[no-any-return]


def new_flow(provider: Provider, redirect_uri: str, next_path: str = "", **bound: str) -> Flow:
    """A fresh state, nonce and PKCE verifier, to remember until the way back."""
    return {
        "provider": provider.name,
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": secrets.token_urlsafe(48),  # RFC 7636 §4.1: 43 to 128 characters
        "redirect_uri": redirect_uri,
        "next": next_path,
        "until": clock.now().timestamp() + current_app.config["FEDERATION_FLOW_TTL"],
        **bound,
    }


def authorization_url(provider: Provider, flow: Flow) -> str:
    """Where the person signs in at the provider for `flow`. Raises ProviderUnavailable."""
    endpoint = identity_providers.on_lane(identity_providers.authorization_endpoint, provider)
    with OAuth2Session(provider.client_id, scope=provider.scopes) as client:
        url, _ = client.create_authorization_url(
            endpoint["endpoint"],
            state=flow["state"],
            redirect_uri=flow["redirect_uri"],
            code_challenge=create_s256_code_challenge(flow["verifier"]),
            code_challenge_method="S256",
            **({"nonce": flow["nonce"]} if provider.kind == "oidc" else {}),
        )
    return str(url)


def leave_for(provider: Provider, next_path: str, **bound: str) -> Response:
    """A page's way to the provider: the flow waits in this browser's session cookie, and the
    browser goes to the page that leaves for the provider (federation_pages.leave)."""
    flow = new_flow(provider, callback_url(provider), next_path, **bound)
    flow["authorization_url"] = authorization_url(provider, flow)
    session[FLOW] = flow
    return redirect(url_for("federation_pages.leave", name=provider.name), code=303)


def come_back(provider: Provider, flow: Any) -> dict[str, Any]:
    """The page's way back: the callback's query answers `flow`, this browser's own."""
    query = request.args
    return verified_profile(
        provider,
        flow,
        state=query.get("state", ""),
        code=query.get("code", ""),
        cancelled="error" in query,
    )


def verified_profile(
    provider: Provider, flow: Any, *, state: str, code: str, cancelled: bool = False
) -> dict[str, Any]:
    """The profile the provider vouches for, once `state` proved the answer is `flow`'s.
    Raises Unauthorized(federation_refused), ProviderUnavailable."""
    _check_answer(provider, flow, state, code, cancelled)
    answer = identity_providers.on_lane(
        identity_providers.profile,
        provider,
        code,
        flow["verifier"],
        flow["redirect_uri"],
        flow["nonce"],
        int(clock.now().timestamp()),
    )
    if "refused" in answer:
        raise refused(provider, answer["refused"])
    return answer["profile"]  # type: ignore[no-any-return]


def sign_in(provider: Provider, profile: dict[str, Any]) -> federated_logins.Outcome:
    """federated_logins.sign_in for this request's client and device cookie."""
    return federated_logins.sign_in(
        provider.name,
        provider.display_name,
        profile,
        client=request_client(),
        device_cookie=cookies.device_cookie(),
    )


def callback_url(provider: Provider) -> str:
    """The redirect URI registered at the provider: under PUBLIC_BASE_URL in production, as
    every link authapp hands out (RS-2); the request's own address elsewhere."""
    path = url_for("federation_pages.callback", name=provider.name)
    if current_app.config["AUTHAPP_ENV"] == "production":
        return events.link(path.removeprefix(current_app.config["AUTHAPP_URL_PREFIX"]))
    return request.host_url.rstrip("/") + path


def _check_answer(provider: Provider, flow: Any, state: str, code: str, cancelled: bool) -> None:
    if not isinstance(flow, dict) or flow.get("provider") != provider.name:
        raise refused(provider, "no_flow")
    if flow.get("until", 0) < clock.now().timestamp():
        raise refused(provider, "flow_expired")
    if len(state) > MAX_PARAMETER or not hmac.compare_digest(
        state.encode("utf-8", "replace"), str(flow["state"]).encode()
    ):
        raise refused(provider, "state_mismatch")
    if cancelled:
        raise refused(
            provider, "cancelled", f"Signing in with {provider.display_name} was cancelled."
        )
    if not code or len(code) > MAX_PARAMETER or not code.isprintable():
        raise refused(provider, "no_code")


def refused(provider: Provider, why: str, message: str | None = None) -> Unauthorized:
    """A failed sign-in, audited with why (the page says only that it did not work)."""
    federated_logins.record_refusal(provider.name, why, request_client())
    return Unauthorized(
        message or f"Signing in with {provider.display_name} did not work: try again.",
        code="federation_refused",
    )
