"""POST one signed event to an organization's webhook_url, from the offload pool only (CF-2).

The target is checked when the URL is set and again when the message is delivered, after DNS:
https only, a port of WEBHOOK_ALLOWED_PORTS (443 and 80 in production unless set), and every
address the name resolves to must be public (no loopback, private, link-local, multicast,
reserved or cloud-metadata address, nor one that wraps an IPv4 address: NAT64, 6to4, Teredo,
IPv4-compatible or -mapped) unless WEBHOOK_ALLOW_PRIVATE=true. The connection goes to the
address that was checked (no second lookup to rebind) and redirects are not followed.
WEBHOOK_TIMEOUT bounds the whole delivery, not each socket call: a receiver that trickles its
answer a byte at a time is cut off at the deadline (F5).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import ipaddress
import json
import secrets
import socket
import ssl
import time
from concurrent.futures import CancelledError
from typing import Any
from urllib.parse import SplitResult, urlsplit

import structlog
from flask import current_app

from authapp.delivery import offload
from authapp.models import Organization
from authapp.platform import clock
from authapp.platform.extensions import db
from authapp.security import secretbox

log = structlog.get_logger(__name__)
SECRET_PREFIX = "whsec_"
PRODUCTION_PORTS = (443, 80)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 ranges that carry an IPv4 address a gateway would reach on our behalf, or that are
# deprecated: refused whatever this Python's `is_global` says of them (it changed in 3.12/3.13).
WRAPPING_NETWORKS = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local use
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "::/96",  # IPv4-compatible ::a.b.c.d
        "fec0::/10",  # site-local
    )
)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` (docs/api.md)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def target_error(url: str) -> str | None:
    """Why `url` may not be a webhook target before any lookup (scheme, host, port), or None."""
    config = current_app.config
    allow_private = config["WEBHOOK_ALLOW_PRIVATE"]
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 literal
        return "Webhook URLs must be valid URLs."
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        return "Webhook URLs must use https."
    if not parts.hostname or parts.username or parts.password:
        return "Webhook URLs need a host and no credentials."
    port = _port(parts)
    ports = config["WEBHOOK_ALLOWED_PORTS"] or (
        PRODUCTION_PORTS if config["AUTHAPP_ENV"] == "production" else ()
    )
    if port is None or (ports and port not in ports):
        allowed = ", ".join(str(port) for port in ports) or "1 to 65535"
        return f"Webhook URLs must use port {allowed}."
    literal = _literal(parts.hostname)
    if literal is not None and not allow_private and not _public(literal):
        return "Webhook URLs must not point at private, loopback or link-local addresses."
    return None


def resolution_error(url: str, organization_id: str) -> str | None:
    """Why `url`'s host name, resolved now, may not be a webhook target, or None (what
    already resolves to a private address is refused when it is set). The lookup runs on
    the webhooks lane in the organization's turn (a name server that never answers holds no
    one else's thread) for at most WEBHOOK_TIMEOUT; one that fails, waits or finds the lane
    full lets the URL through, since every delivery checks again."""
    config = current_app.config
    parts = urlsplit(url)
    port = _port(parts)
    if config["WEBHOOK_ALLOW_PRIVATE"] or not parts.hostname or port is None:
        return None
    if _literal(parts.hostname) is not None:
        return None  # target_error judged it
    try:
        lookup = offload.submit(
            _lookup_error, parts.hostname, port, lane=offload.WEBHOOKS, key=organization_id
        )
    except offload.Rejected:
        return None
    try:
        problem: str | None = lookup.result(timeout=config["WEBHOOK_TIMEOUT"])
    except (TimeoutError, CancelledError):
        lookup.cancel()
        return None
    return problem


def _lookup_error(host: str, port: int) -> str | None:
    try:
        _resolve(host, port, allow_private=False, deadline=None)
    except offload.Undeliverable as exc:
        return f"Webhook URLs must point at public addresses: {exc}."
    except ConnectionError:
        return None
    return None


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:  # out of range, or not a number
        return None
    return port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: its addresses are checked when resolved


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:127.0.0.1 is loopback in disguise
            return _public(address.ipv4_mapped)
        if any(address in network for network in WRAPPING_NETWORKS):
            return False
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int, *, allow_private: bool, deadline: _Deadline | None) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from None
    except UnicodeError:  # a label the IDNA codec refuses (too long, empty)
        raise offload.Undeliverable(f"{host} is not a valid host name") from None
    if deadline is not None:
        deadline.left()  # a slow lookup counts against the delivery too
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private and not all(_public(address) for address in addresses):
        raise offload.Undeliverable(f"{host} resolves to a non-public address")
    return str(addresses[0])


class _Deadline:
    """The time left of one delivery (WEBHOOK_TIMEOUT from its start)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the delivery timed out after WEBHOOK_TIMEOUT ({self.seconds:g} s)")
        return left


class _DeadlineSocket:
    """A connected socket (plain or TLS) whose every blocking call may wait only for the time
    left: a socket timeout alone starts again with each byte a receiver trickles."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock, self.deadline = sock, deadline

    def sendall(self, data: bytes) -> None:
        with memoryview(data) as view, view.cast("B") as pending:
            sent = 0
            while sent < len(pending):
                self.sock.settimeout(self.deadline.left())
                sent += self.sock.send(pending[sent:])

    def recv_into(self, buffer: memoryview) -> int:
        self.sock.settimeout(self.deadline.left())
        return self.sock.recv_into(buffer)

    def makefile(self, _mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        self.sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.sock.recv_into(buffer)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address already checked, within the delivery's deadline."""

    def __init__(self, host: str, address: str, port: int, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.seconds)
        self.address, self.deadline = address, deadline

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.deadline.left())
        try:
            self.sock = _DeadlineSocket(self._secure(sock), self.deadline)
        except BaseException:
            sock.close()
            raise

    def _secure(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS, still verifying the certificate's name (the URL's host)."""

    def _secure(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(self.deadline.left())  # the handshake, bounded as a whole
        return ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)


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
    target = f"{organization.id}:{urlsplit(url).hostname or ''}"
    offload.breaker("webhook", target).call(_post, url, message_id, payload["event"], body, secret)
    log.info("webhook.delivered", message_id=message_id, webhook_event=payload["event"])


def _post(url: str, message_id: str, event: str, body: bytes, secret: str) -> None:
    config = current_app.config
    deadline = _Deadline(config["WEBHOOK_TIMEOUT"])
    problem = target_error(url)
    if problem is not None:
        raise offload.Undeliverable(problem)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = _port(parts) or 0  # target_error refused a bad one
    host = parts.hostname or ""
    address = _resolve(host, port, allow_private=config["WEBHOOK_ALLOW_PRIVATE"], deadline=deadline)
    connection_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = connection_class(host, address, port, deadline)
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
        with connection.getresponse() as response:  # the status is the answer: no body is read
            status = response.status
    finally:
        connection.close()
    if not 200 <= status < 300:  # a 3xx is a failure too: redirects are not followed
        raise ConnectionError(f"the receiver answered {status}")
