"""Who is calling and what they may do: the Principal of a request and the route guards.

A principal is a user acting through a session (an access token) or an organization's API key
(`X-API-Key`). Either costs one statement: the session joined to its user, organization, roles
and permissions, or the key joined to its organization and to the member it acts for, whose
current permissions bound its scopes (AK-3). Authorization reads those rows, never
the `roles` claim of a token (JW-9), and a guard adds no statement of its own.

Guards for every route, the adopter's blueprints included (each marks its wrapper with the
credentials it `accepts`, which the OpenAPI document shows as the operation's `security`):

    @bp.route("/commodities", methods=["POST"])
    @require_permission("commodities:write")  # 401 without credentials, 403 without the code
    def create_commodity(): ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

from flask import current_app, g, redirect, request, url_for

from authapp.auth import cookies
from authapp.auth.key_principals import API_KEY_HEADER, api_key_principal
from authapp.auth.principals import Account, Principal, access_principal
from authapp.auth.services import refusals
from authapp.models import User
from authapp.platform.errors import CsrfFailed, Forbidden, TokenError
from authapp.platform.extensions import db
from authapp.security import tokens

F = TypeVar("F", bound=Callable[..., Any])
CSRF_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUTHORIZATION_VALUES = re.compile(r",\s*")  # one header may carry several credentials


def authenticate() -> Principal:
    """The request's principal, resolved once: an `X-API-Key` or a bearer access token."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        presented = request.headers.get(API_KEY_HEADER)
        if presented is not None:
            principal = api_key_principal(presented)
        else:
            encoded, csrf = presented_access_token()
            principal = access_principal(tokens.decode_access(encoded, csrf=csrf))
        g.principal = principal
    return principal


def current_principal() -> Principal:
    """The principal a guard already resolved (call only behind a guard)."""
    principal: Principal = g.principal
    return principal


def current_account() -> Account:
    """The logged-in user of a `require_login()` route, as the principal's statement read it."""
    account = current_principal().user
    if account is None:  # unreachable behind require_login(); a guard left off is a 403, not 500
        raise Forbidden("This route needs a user's login.")
    return account


def current_user() -> User:
    """The logged-in user's row, for a route that changes the account (one more statement)."""
    account = current_account()
    user = db.session.get(User, account.id)
    if user is None:  # gone since the principal's statement: like a revoked session
        raise TokenError("The session was revoked.", code="token_revoked")
    return user


def require_login(*, api_keys: bool = False) -> Callable[[F], F]:
    """Guard a view: any logged-in user; with `api_keys=True`, an organization's key too."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if principal.user is None and not api_keys:
                raise Forbidden("API keys cannot use this route: it acts on a user's own account.")
            return view(*args, **kwargs)

        guarded.accepts = ("bearer", "apiKey") if api_keys else ("bearer",)  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorator


def require_login_unless(field: str) -> Callable[[F], F]:
    """Guard a view under `@bp.arguments`: a logged-in user, unless the body names `field`
    (the view then acts on what the body names, for anyone; `None` in `accepts` shows the
    OpenAPI document that no credential is needed then)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(body: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            if body.get(field) is None and authenticate().user is None:
                raise Forbidden("API keys cannot use this route: it acts on a user's own account.")
            return view(body, *args, **kwargs)

        guarded.accepts = ("bearer", None)  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorator


def require_permission(code: str) -> Callable[[F], F]:
    """Guard a view: 401 without credentials, 403 `forbidden` (audited) without `code`."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if code not in principal.permissions:
                deny(principal, code)
            return view(*args, **kwargs)

        guarded.accepts = ("bearer", "apiKey")  # type: ignore[attr-defined]  # keys: their scopes
        return guarded  # type: ignore[return-value]

    return decorator


def deny(principal: Principal, code: str) -> NoReturn:
    """Audit the refusal (AU-1) and raise Forbidden."""
    refusals.record_refusal(principal, permission=code)
    raise Forbidden("You do not have permission to do this.")


def page_login_required(permission: str | None = None) -> Callable[[F], F]:
    """Pages: no valid cookie → the login page with `next`; lacking `permission` → 403 page."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = cookies.browser_principal()
            if principal is None or principal.user is None:
                return redirect(url_for("auth_pages.login", next=_here()))
            if permission is not None and permission not in principal.permissions:
                deny(principal, permission)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorator


def _here() -> str:
    return request.full_path.rstrip("?") if request.query_string else request.path


def presented_access_token() -> tuple[str, str | None]:
    """The request's access token: `Authorization: Bearer`, else the access cookie, which on a
    state-changing request must come with its CSRF echo (WB-2). Raises TokenError, CsrfFailed."""
    header = request.headers.get("Authorization", "").strip().strip(",")
    bearer = [
        value for value in AUTHORIZATION_VALUES.split(header) if value.split()[:1] == ["Bearer"]
    ]
    if len(bearer) == 1:
        parts = bearer[0].split()
        if len(parts) != 2:
            raise TokenError("Expected 'Authorization: Bearer <token>'.")
        return parts[1], None
    cookie = request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"])
    if not cookie:
        raise TokenError("A token is required.", code="missing_token")
    if request.method not in CSRF_METHODS:
        return cookie, None
    csrf = request.headers.get(cookies.CSRF_HEADER)
    if not csrf:
        raise CsrfFailed()
    return cookie, csrf
