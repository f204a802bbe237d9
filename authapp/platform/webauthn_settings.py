"""The passkey settings checked together at start (docs/configuration.md "Passkeys"): each
WebAuthn origin must be on the RP id, as browsers refuse any other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authapp.platform import parse


def check(settings: Mapping[str, Any], error: type[Exception]) -> None:
    """WebAuthn origins must be on the RP id (browsers refuse others), https in production."""
    rp_id, origins = settings["WEBAUTHN_RP_ID"], list(settings["WEBAUTHN_ORIGINS"])
    production = settings["AUTHAPP_ENV"] == "production"
    if origins and not rp_id:
        raise error("WEBAUTHN_ORIGINS needs WEBAUTHN_RP_ID (the domain they belong to).")
    if rp_id and not origins and production:  # production falls back to PUBLIC_BASE_URL's
        origins = [parse.origin_of(settings["PUBLIC_BASE_URL"])]
    for origin in origins:
        try:
            host = parse.origin_host(origin)
        except ValueError as exc:  # PUBLIC_BASE_URL, which no parser checked
            raise error(f"PUBLIC_BASE_URL: {exc}.") from None
        if host != rp_id and not host.endswith("." + rp_id):
            raise error(f"WEBAUTHN_ORIGINS: {origin} is not on {rp_id} or its subdomains.")
        if production and not origin.startswith("https://") and host != "localhost":
            raise error(f"WEBAUTHN_ORIGINS: {origin} must be https in production.")
