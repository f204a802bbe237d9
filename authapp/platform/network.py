"""The client's address: the socket peer, unless the peer is a trusted proxy (RL-3)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache, lru_cache

from flask import current_app, request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


# The longest text form of an IP address, scope id included, is well under this.
MAX_ADDRESS = 100


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    return len(address) <= MAX_ADDRESS and _in_networks(address, networks)


@lru_cache(maxsize=4096)  # every request asks for its peer: parsing it cost ~5 µs each time
def _in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip() -> str | None:
    peer = request.remote_addr
    networks = _networks(tuple(current_app.config["TRUSTED_PROXIES"]))
    if peer is None or not _trusted(peer, networks):
        return peer
    # Walk X-Forwarded-For from the right: the first hop we do not trust is the client.
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, networks):
            return hop if _is_ip(hop) else peer
    return peer


def client_bucket() -> str:
    """The rate limits' key for the client address: an IPv6 client counts by its /64, the
    smallest prefix a subscriber or a host is given, or every one of its 2**64 addresses would
    bring a fresh allowance. An IPv4-mapped address counts as its IPv4 address."""
    ip = client_ip()
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return f"ip:{ip}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        prefix = ipaddress.IPv6Address(int(address) >> 64 << 64)  # drops a %zone too
        return f"ip:{prefix}/64"
    return f"ip:{address}"


def client_within(entries: list[str]) -> bool:
    """Whether the client address (`client_ip`) is in one of the networks `entries`."""
    address = client_ip()
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in _networks(tuple(entries)))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def user_agent() -> str | None:
    agent = request.headers.get("User-Agent")
    return agent[:512] if agent else None


@dataclass(frozen=True)
class Client:
    """Where a request came from, as services record it (they never read the request)."""

    ip: str | None = None
    user_agent: str | None = None


def request_client() -> Client:
    return Client(ip=client_ip(), user_agent=user_agent())
