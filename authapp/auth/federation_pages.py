"""The login and sign-up pages' "Continue with <provider>" buttons (docs/federation.md): the
authorization code flow with PKCE (S256), `state` and `nonce`. What the flow must remember while
the person is at the provider waits in the signed session cookie, bound to this browser: a
callback whose `state` is not this browser's (login CSRF), whose wait ran out, or that comes a
second time, is refused before any call to the provider."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits, policy
from authapp.auth.login_steps import ask_for_code, login_refused
from authapp.auth.services import federated_logins, sessions
from authapp.delivery import events, identity_providers
from authapp.platform import clock
from authapp.platform.errors import AppError, Unauthorized
from authapp.platform.federation_settings import Provider
from authapp.platform.network import request_client
from authapp.web.forms import safe_next

bp = Blueprint("federation_pages", __name__)
FLOW = "federation_flow"
MAX_PARAMETER = 2048  # a code or a state longer than this is nobody's


@bp.app_context_processor
def _providers() -> dict[str, object]:
    """`identity_providers` in every page: the buttons, in the order they were configured."""
    return {"identity_providers": list(current_app.config["FEDERATION_PROVIDERS"].values())}


@bp.post("/login/with/<name>")
@limits.login
def start(name: str) -> Response:
    """To the provider, with a fresh state, nonce and PKCE verifier remembered for the way back."""
    provider = _provider(name)
    next_path = safe_next(request.values.get("next"))
    try:
        endpoint = identity_providers.on_lane(identity_providers.authorization_endpoint, provider)[
            "endpoint"
        ]
    except AppError as exc:
        return login_refused(exc, next_path)
    flow = {
        "provider": provider.name,
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": secrets.token_urlsafe(48),  # RFC 7636 §4.1: 43 to 128 characters
        "next": next_path,
        "until": clock.now().timestamp() + current_app.config["FEDERATION_FLOW_TTL"],
    }
    session[FLOW] = flow
    with OAuth2Session(provider.client_id, scope=provider.scopes) as client:
        url, _ = client.create_authorization_url(
            endpoint,
            state=flow["state"],
            redirect_uri=_callback_url(provider),
            code_challenge=create_s256_code_challenge(flow["verifier"]),
            code_challenge_method="S256",
            **({"nonce": flow["nonce"]} if provider.kind == "oidc" else {}),
        )
    return redirect(url, code=303)


@bp.get("/login/with/<name>/callback")
@limits.federation_callback
def callback(name: str) -> Response:
    provider = _provider(name)
    flow = session.pop(FLOW, None)  # one way back per start: a replayed callback finds none
    next_path = safe_next(flow.get("next") if isinstance(flow, dict) else None)
    try:
        code = _code_for(provider, flow)
        answer = identity_providers.on_lane(
            identity_providers.profile,
            provider,
            code,
            flow["verifier"],
            _callback_url(provider),
            flow["nonce"],
            int(clock.now().timestamp()),
        )
        if "refused" in answer:
            raise _refused(provider, answer["refused"])
        outcome = federated_logins.sign_in(
            provider.name,
            provider.display_name,
            answer["profile"],
            client=request_client(),
            device_cookie=cookies.device_cookie(),
        )
    except AppError as exc:
        return login_refused(exc, next_path)
    return _signed_in(outcome, next_path)


def _provider(name: str) -> Provider:
    provider = current_app.config["FEDERATION_PROVIDERS"].get(name)
    if provider is None:
        abort(404)
    return provider  # type: ignore[no-any-return]


def _callback_url(provider: Provider) -> str:
    """The redirect URI registered at the provider: under PUBLIC_BASE_URL in production, as
    every link authapp hands out (RS-2); the request's own address elsewhere."""
    path = url_for("federation_pages.callback", name=provider.name)
    if current_app.config["AUTHAPP_ENV"] == "production":
        return events.link(path.removeprefix(current_app.config["AUTHAPP_URL_PREFIX"]))
    return request.host_url.rstrip("/") + path


def _code_for(provider: Provider, flow: Any) -> str:
    """The callback's code, once its state proved it answers this browser's flow."""
    state, code = request.args.get("state", ""), request.args.get("code", "")
    if not isinstance(flow, dict) or flow.get("provider") != provider.name:
        raise _refused(provider, "no_flow")
    if flow.get("until", 0) < clock.now().timestamp():
        raise _refused(provider, "flow_expired")
    if len(state) > MAX_PARAMETER or not hmac.compare_digest(
        state.encode("utf-8", "replace"), str(flow["state"]).encode()
    ):
        raise _refused(provider, "state_mismatch")
    if "error" in request.args:
        cancelled = f"Signing in with {provider.display_name} was cancelled."
        raise _refused(provider, "cancelled", cancelled)
    if not code or len(code) > MAX_PARAMETER or not code.isprintable():
        raise _refused(provider, "no_code")
    return code


def _refused(provider: Provider, why: str, message: str | None = None) -> Unauthorized:
    """A failed sign-in, audited with why (the page says only that it did not work)."""
    federated_logins.record_refusal(provider.name, why, request_client())
    return Unauthorized(
        message or f"Signing in with {provider.display_name} did not work: try again.",
        code="federation_refused",
    )


def _signed_in(
    outcome: sessions.TokenPair | federated_logins.SecondFactorNeeded | None, next_path: str
) -> Response:
    if isinstance(outcome, federated_logins.SecondFactorNeeded):
        return ask_for_code(outcome.user_id, next_path)
    if outcome is None:  # REQUIRE_VERIFIED_EMAIL: the account waits for its link
        flash(policy.CHECK_YOUR_MAIL)
        return redirect(url_for("auth_pages.login"), code=303)
    cookies.issue(outcome)
    return redirect(next_path, code=303)
