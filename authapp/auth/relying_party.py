"""The WebAuthn relying party a request's ceremony is for (docs/configuration.md "Passkeys").

WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS when set (config.load checked them). Unset, production
takes PUBLIC_BASE_URL's host and origin, and development and tests the request's own, so
`make run` works at http://localhost:8000 and a test server on any port."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request

from authapp.platform import parse
from authapp.platform.errors import AppError
from authapp.security.passkeys import RelyingParty


class PasskeysUnavailable(AppError):
    """400: the answer depends only on the host the request named; retrying cannot help."""

    status, code = 400, "passkeys_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Passkeys need this site to be opened by a domain name (such as "
            "http://localhost:8000), not an IP address."
        )


def current() -> RelyingParty:
    """Raises PasskeysUnavailable when the RP id would be an IP address: browsers refuse one."""
    config = current_app.config
    production = config["AUTHAPP_ENV"] == "production"
    here = config["PUBLIC_BASE_URL"] if production else request.host_url
    rp_id = config["WEBAUTHN_RP_ID"] or (urlsplit(here).hostname or "")
    origins = tuple(config["WEBAUTHN_ORIGINS"]) or (parse.origin_of(here),)
    if not parse.is_domain_name(rp_id):
        raise PasskeysUnavailable()
    return RelyingParty(
        id=rp_id,
        name=config["WEBAUTHN_RP_NAME"],
        origins=origins,
        challenge_seconds=config["WEBAUTHN_CHALLENGE_TTL"],
    )


def available() -> bool:
    """Whether the pages offer passkeys at all."""
    try:
        current()
    except PasskeysUnavailable:
        return False
    return True
