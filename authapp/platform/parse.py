"""Parsers of settings as the environment spells them: each takes the raw string and returns the
typed value or raises ValueError, which config.load turns into a ConfigError naming the
variable. gunicorn.conf.py reads its settings through config.load too: one parser per kind."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "testing", "production")
LOG_FORMATS = ("json", "console")
# Who may sign up (docs/configuration.md): anyone, nobody (operators create accounts), or, once
# invitations exist, whoever holds one.
SIGNUP_MODES = ("open", "closed", "invite")
# "", "/auth", "/accounts/v2"; never a "." or ".." segment, which a browser would fold away
URL_PREFIX = re.compile(r"(/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+)*")


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def seconds(raw: str) -> int:
    """`900`, `900s`, `15m`, `14d`: a duration in whole seconds."""
    value = raw.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    factor = units.get(value[-1:], 0)
    number = int(value[:-1] if factor else value)
    if number < 0:
        raise ValueError("must not be negative")
    return number * (factor or 1)


def items(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def ports(raw: str) -> list[int]:
    ports = [int(item) for item in items(raw)]
    if not all(0 < port < 65536 for port in ports):
        raise ValueError("ports are 1 to 65535")
    return ports


def networks(raw: str) -> list[str]:
    """Addresses or networks (`10.0.0.0/8`, `::1`), checked here so a typo stops the start."""
    networks = items(raw)
    for network in networks:
        ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
    return networks


def domain_name(raw: str) -> str:
    """A WebAuthn RP id: empty, or a domain name ("localhost", "example.com"), never an IP
    address, a port or a URL."""
    value = raw.strip().lower()
    if value and not is_domain_name(value):
        raise ValueError("expected a domain name such as example.com (no scheme, port or IP)")
    return value


def origins(raw: str) -> list[str]:
    """`https://example.com,https://app.example.com:8443`: scheme, host and port only."""
    found = []
    for item in items(raw):
        origin_host(item)  # ValueError names the bad entry
        found.append(item.lower().rstrip("/"))
    return found


def origin_of(url: str) -> str:
    """`https://example.com/auth/` -> `https://example.com`."""
    parts = urlsplit(url.strip().lower())
    return f"{parts.scheme}://{parts.netloc}"


def origin_host(origin: str) -> str:
    parts = urlsplit(origin.lower())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise ValueError(f"{origin} is not an origin (scheme://host[:port])")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{origin} is not an origin (scheme://host[:port])")
    parts.port  # noqa: B018  (ValueError for a port out of range)
    return parts.hostname


def is_domain_name(host: str) -> bool:
    """WebAuthn needs a domain name as the RP id: "localhost" or "auth.example.com", never an
    IP address."""
    label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return re.fullmatch(rf"(?=.{{1,253}}$)({label}\.)*{label}", host) is not None
    return False


def environment_name(raw: str) -> str:
    if raw not in ENVIRONMENTS:
        raise ValueError(f"expected one of {', '.join(ENVIRONMENTS)}")
    return raw


def log_format(raw: str) -> str:
    if raw not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}")
    return raw


def signup_mode(raw: str) -> str:
    if raw not in SIGNUP_MODES:
        raise ValueError(f"expected one of {', '.join(SIGNUP_MODES)}")
    return raw


def url_prefix(raw: str) -> str:
    """AUTHAPP_URL_PREFIX: empty, or a path of plain segments without a trailing slash."""
    value = raw.strip().rstrip("/")
    if not URL_PREFIX.fullmatch(value):
        raise ValueError("expected a path such as /auth (letters, digits, . _ ~ -)")
    return value
