"""Rate limits (RL-1, RL-4, RL-5) with Flask-Limiter, shared by every worker and host through
RATELIMIT_STORAGE_URI. Limit strings come from the configuration; keys are the client address
(the default: network.client_bucket, RL-3, an IPv6 client by its /64), an email address or an
account. A key function never raises (extensions.RefusalHeadersLimiter says why)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import current_app, g, request

from authapp.auth import cookies, guards
from authapp.platform import network, territory
from authapp.platform.errors import AppError
from authapp.platform.extensions import limiter
from authapp.security.digests import sha256_hex


def setting(name: str) -> Callable[[], str]:
    """The limit named by configuration variable `name`, read per request."""
    return lambda: str(current_app.config[name])


def by_email() -> str:
    """The email address in the JSON body or the form (forgot-password)."""
    body = request.get_json(silent=True) if request.is_json else request.form
    email = body.get("email") if isinstance(body, Mapping) else None
    if not isinstance(email, str) or not email.strip():
        return network.client_bucket()
    return f"email:{sha256_hex(email.strip().lower())}"  # not the address itself


def names_no_email() -> bool:
    """A request without an email address (resend for the logged-in caller): the per-address
    count has nothing to count."""
    return not by_email().startswith("email:")


def by_account() -> str:
    """The logged-in account (bearer, API key or cookie), else the client address."""
    api = request.path.startswith(territory.current().api_path)
    try:
        principal = guards.authenticate() if api else None
    except AppError:
        principal = None  # the route's own guard answers 401 in a moment
    if principal is None and not api:
        principal = cookies.browser_principal()
    if principal is not None and principal.user is not None:
        return f"user:{principal.user.id}"
    return network.client_bucket()


def by_organization() -> str:
    """The caller's organization, read from the principal the route's guard resolved (the
    limit sits under it), else the client address. Nothing here can raise: Flask-Limiter takes
    a key function's exception for a storage outage (docs/security.md "Rate-limit keys")."""
    principal = g.get("principal")
    organization_id = getattr(principal, "organization_id", None)
    return f"org:{organization_id}" if organization_id else network.client_bucket()


# Each limit is one shared object: decorating the API route and its page with the same one
# gives them a single count (a login form cannot be used to double the API's allowance).
login = limiter.shared_limit(setting("RATELIMIT_LOGIN"), scope="login", methods=["POST"])
# Passkey options hand out a challenge (a row until it expires or `flask prune` takes it).
passkey_options = limiter.shared_limit(
    setting("RATELIMIT_PASSKEY_OPTIONS"), scope="passkey_options", methods=["POST"]
)
# The way back from an identity provider is a GET; it spends the login budget of the address.
federation_callback = limiter.shared_limit(
    setting("RATELIMIT_LOGIN"), scope="login", methods=["GET"]
)
signup = limiter.shared_limit(setting("RATELIMIT_SIGNUP"), scope="signup", methods=["POST"])
# Accepting an invitation may create an account (a password hashed): sign-up's allowance, counted
# apart, per client address, for the API and the accept page together.
invitation_accept = limiter.shared_limit(
    setting("RATELIMIT_SIGNUP"), scope="invitation_accept", methods=["POST"]
)
refresh = limiter.shared_limit(setting("RATELIMIT_REFRESH"), scope="refresh")
forgot_password_by_ip = limiter.shared_limit(
    setting("RATELIMIT_FORGOT_IP"), scope="forgot_ip", methods=["POST"]
)
forgot_password_by_email = limiter.shared_limit(
    setting("RATELIMIT_FORGOT_EMAIL"), scope="forgot_email", key_func=by_email, methods=["POST"]
)
password_change = limiter.shared_limit(
    setting("RATELIMIT_PASSWORD_CHANGE"),
    scope="password_change",
    key_func=by_account,
    methods=["POST", "DELETE"],  # DELETE /mfa/totp checks the password too
)
# A data export reads every row about the account: per account, rarely needed more than once.
export = limiter.shared_limit(
    setting("RATELIMIT_EXPORT"), scope="export", key_func=by_account, methods=["GET"]
)
# Per account, or per client address for a resend by address without a login; that one is also
# counted per address asked for, like forgot-password.
resend = limiter.shared_limit(
    setting("RATELIMIT_RESEND"), scope="resend", key_func=by_account, methods=["POST"]
)
resend_by_email = limiter.shared_limit(
    setting("RATELIMIT_RESEND"),
    scope="resend_email",
    key_func=by_email,
    methods=["POST"],
    exempt_when=names_no_email,
)
webhook_test = limiter.shared_limit(
    setting("RATELIMIT_WEBHOOK_TEST"), scope="webhook_test", key_func=by_organization
)
