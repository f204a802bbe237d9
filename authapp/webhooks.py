"""POST one signed event to an organization's webhook_url, from the offload pool only (CF-2).

The target is checked when the message is delivered, after DNS: https only, and every address
the name resolves to must be public (no loopback, private, link-local, multicast, reserved or
cloud-metadata address) unless WEBHOOK_ALLOW_PRIVATE=true. The connection goes to the address
that was checked (no second lookup to rebind), redirects are not followed, and connect and read
each have WEBHOOK_TIMEOUT.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import structlog
from flask import current_app

from authapp import clock, offload
from authapp.extensions import db
from authapp.models import Organization
from authapp.security import secretbox

log = structlog.get_logger(__name__)
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` (API.md)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def target_error(url: str, *, allow_private: bool) -> str | None:
    """Why `url` may not be a webhook target before any lookup (scheme, host), or None."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        return "Webhook URLs must use https."
    if not parts.hostname or parts.username or parts.password:
        return "Webhook URLs need a host and no credentials."
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None  # a name: its addresses are checked at delivery time
    if not allow_private and not _public(literal):
        return "Webhook URLs must not point at private, loopback or link-local addresses."
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is loopback in disguise
        address = mapped
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int, *, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private and not all(_public(address) for address in addresses):
        raise offload.Undeliverable(f"{host} resolves to a non-public address")
    return str(addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the address already checked, still verifying the certificate's name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


def send(message_id: str, payload: dict[str, Any]) -> None:
    organization = db.session.get(Organization, payload["organization_id"])
    if organization is None or not organization.webhook_url or not organization.webhook_secret:
        raise offload.Undeliverable("the organization has no webhook any more")
    url, secret = organization.webhook_url, secretbox.open_sealed(organization.webhook_secret)
    db.session.commit()  # no transaction stays open across the network call
    body = json.dumps(
        {
            "id": message_id,
            "event": payload["event"],
            "created_at": payload["created_at"],
            "organization_id": payload["organization_id"],
            "data": payload.get("data", {}),
        },
        separators=(",", ":"),
    ).encode()
    host = urlsplit(url).hostname or ""
    offload.breaker(f"webhook:{host}").call(_post, url, message_id, payload["event"], body, secret)
    log.info("webhook.delivered", message_id=message_id, webhook_event=payload["event"])


def _post(url: str, message_id: str, event: str, body: bytes, secret: str) -> None:
    config = current_app.config
    allow_private = config["WEBHOOK_ALLOW_PRIVATE"]
    problem = target_error(url, allow_private=allow_private)
    if problem is not None:
        raise offload.Undeliverable(problem)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname or ""
    address = _resolve(host, port, allow_private=allow_private)
    connection_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = connection_class(host, address, port, config["WEBHOOK_TIMEOUT"])
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "authapp-webhooks",
        "X-Authapp-Event": event,
        "X-Authapp-Delivery": message_id,
        "X-Authapp-Signature": signature(secret, int(clock.now().timestamp()), body),
    }
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)
    finally:
        connection.close()
    if not 200 <= response.status < 300:  # a 3xx is a failure too: redirects are not followed
        raise ConnectionError(f"the receiver answered {response.status}")
