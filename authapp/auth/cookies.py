"""Browser credentials: the API's JWTs in HttpOnly cookies (WB-3), read by pages and the API,
and the device cookie a login earns (auth/devices.py), read by logins only.

Pages find their principal here: the access cookie, or, when it has expired or gone, the
refresh cookie, rotated transparently (the new pair is set on the response).
"""

from __future__ import annotations

import structlog
from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import set_access_cookies, set_refresh_cookies, unset_jwt_cookies

from authapp.auth.policy import EmailUnverified
from authapp.auth.principals import Principal, access_principal, principal_of
from authapp.auth.services import sessions
from authapp.platform import network
from authapp.platform.errors import CsrfFailed, TokenError
from authapp.security import tokens

log = structlog.get_logger(__name__)
CSRF_HEADER = "X-CSRF-TOKEN"


def issue(pair: sessions.TokenPair) -> None:
    """Set the pair's cookies on this request's response (and a login's device cookie)."""
    g.cookie_pair = pair
    g.pop("clear_cookies", None)
    remember_device(pair)


def remember_device(pair: sessions.TokenPair) -> None:
    """A login's device cookie on this response; the JSON login sets it too."""
    if pair.device_cookie is not None:
        g.device_cookie = pair.device_cookie


def device_cookie() -> str | None:
    return request.cookies.get(current_app.config["DEVICE_COOKIE_NAME"])


def clear() -> None:
    """Remove every auth cookie in this request's response. The device cookie stays: a logout
    does not make the device a stranger."""
    g.clear_cookies = True
    g.pop("cookie_pair", None)


def refresh_token() -> str | None:
    return request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"])


def refresh_from_cookie() -> sessions.TokenPair:
    """`POST /api/v1/auth/refresh` without a body token: the cookie, with its CSRF echo."""
    token = refresh_token()
    if token is None:
        raise TokenError("A refresh token is required.", code="missing_token")
    csrf = request.headers.get(CSRF_HEADER)
    if not csrf:
        raise CsrfFailed()
    pair = sessions.refresh(token, network.request_client(), csrf=csrf)
    issue(pair)
    return pair


def browser_principal() -> Principal | None:
    """The page's principal, or None (the caller redirects to the login page)."""
    if "principal" not in g:
        g.principal = _from_access_cookie() or _from_refresh_cookie()
    principal: Principal | None = g.principal
    return principal


def _from_access_cookie() -> Principal | None:
    token = request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"])
    if token is None:
        return None
    try:
        return access_principal(tokens.decode_access(token))
    except TokenError:
        return None  # expired or revoked: the refresh cookie decides


def _from_refresh_cookie() -> Principal | None:
    token = refresh_token()
    if token is None:
        return None
    try:
        pair = sessions.refresh(token, network.request_client())
    except (TokenError, EmailUnverified) as exc:  # the login page then says why
        log.info("browser.refresh_refused", code=exc.code)
        clear()
        return None
    issue(pair)
    return principal_of(pair.user, pair.session_id)


def _write_cookies(response: Response) -> Response:
    pair: sessions.TokenPair | None = g.get("cookie_pair")
    if pair is not None:
        # Cookies end with their tokens (flask-jwt-extended would keep them a year).
        config = current_app.config
        set_access_cookies(response, pair.access_token, max_age=config["ACCESS_TOKEN_TTL"])
        set_refresh_cookies(response, pair.refresh_token, max_age=config["REFRESH_TOKEN_TTL"])
    elif g.get("clear_cookies"):
        unset_jwt_cookies(response)
    device: str | None = g.get("device_cookie")
    if device is not None:
        config = current_app.config
        response.set_cookie(
            config["DEVICE_COOKIE_NAME"],
            device,
            max_age=config["DEVICE_COOKIE_TTL"],
            secure=config["JWT_COOKIE_SECURE"],
            httponly=True,
            samesite="Strict",  # only logins read it, and they come from this site's own pages
        )
    return response


def init_app(app: Flask) -> None:
    app.after_request(_write_cookies)
