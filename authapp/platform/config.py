"""Every setting of DESIGN.md, read from the environment once, typed and defaulted.

`load()` is the only place that reads `os.environ`. The keys it returns are the variable names
of the contract; the library settings (SQLALCHEMY_*, JWT_*, ...) are derived from them here too,
so a test that overrides `BCRYPT_ROUNDS` or `DATABASE_URL` changes everything that follows.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from cryptography.fernet import Fernet

from authapp.platform import connections

ENVIRONMENTS = ("development", "testing", "production")
SECRET_NAMES = ("SECRET_KEY", "JWT_SECRET_KEY", "PASSWORD_PEPPER")
MIN_SECRET_BYTES = 32
# Values that appear in docs and examples: never acceptable as a production secret.
KNOWN_DEFAULTS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "test"})


# The offload lanes (authapp/offload.py, README "Email, webhooks and the outbox"): lane -> the
# settings of its threads, of its waiting tasks and, where tasks carry a key (an organization),
# of how many tasks of one key run at once.
OFFLOAD_LANES: dict[str, tuple[str, str, str | None]] = {
    "mail": ("OFFLOAD_WORKERS", "OFFLOAD_QUEUE", None),
    "webhooks": ("WEBHOOK_WORKERS", "WEBHOOK_QUEUE", "WEBHOOK_MAX_PER_ORGANIZATION"),
}


class ConfigError(click.ClickException):
    """A setting is missing or wrong; the message names the variable.

    A ClickException so that a `flask` command prints the message, not a traceback;
    gunicorn.conf.py checks the settings in the master for the same reason."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _seconds(raw: str) -> int:
    """`900`, `900s`, `15m`, `14d`: a duration in whole seconds."""
    value = raw.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    factor = units.get(value[-1:], 0)
    number = int(value[:-1] if factor else value)
    if number < 0:
        raise ValueError("must not be negative")
    return number * (factor or 1)


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _ports(raw: str) -> list[int]:
    ports = [int(item) for item in _list(raw)]
    if not all(0 < port < 65536 for port in ports):
        raise ValueError("ports are 1 to 65535")
    return ports


def _networks(raw: str) -> list[str]:
    """Addresses or networks (`10.0.0.0/8`, `::1`), checked here so a typo stops the start."""
    networks = _list(raw)
    for network in networks:
        ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
    return networks


def _env_name(raw: str) -> str:
    if raw not in ENVIRONMENTS:
        raise ValueError(f"expected one of {', '.join(ENVIRONMENTS)}")
    return raw


# name -> (parser, default as the environment would spell it). None: computed below.
SETTINGS: dict[str, tuple[Callable[[str], Any], str | None]] = {
    # Unset is production: a forgotten variable must not turn off what production enforces
    # (README "Production by default"); `make run` and the tests name their environment.
    "AUTHAPP_ENV": (_env_name, "production"),
    "DATABASE_URL": (str, None),
    "SECRET_KEY": (str, None),
    "JWT_SECRET_KEY": (str, None),
    "PASSWORD_PEPPER": (str, None),
    "JWT_PRIVATE_KEY_FILE": (str, ""),
    "JWT_PUBLIC_KEYS_DIR": (str, ""),
    "JWT_ISSUER": (str, "authapp"),
    "JWT_AUDIENCE": (str, "authapp"),
    "JWT_LEEWAY_SECONDS": (_seconds, "30"),
    "ACCESS_TOKEN_TTL": (_seconds, "900"),
    "REFRESH_TOKEN_TTL": (_seconds, "14d"),
    "SESSION_MAX_AGE": (_seconds, "30d"),
    "REFRESH_REUSE_GRACE_SECONDS": (_seconds, "10"),
    "BCRYPT_ROUNDS": (int, "12"),
    "PASSWORD_MIN_LENGTH": (int, "15"),
    "PASSWORD_HASH_CONCURRENCY": (int, None),  # unset: one per core on the host (below)
    "PASSWORD_HASH_QUEUE": (int, "64"),  # above GUNICORN_THREADS: threads bound the line (README)
    "PASSWORD_HASH_WAIT_SECONDS": (float, "20.0"),
    "PASSWORD_HASH_NICE": (int, "10"),  # hashing threads' nice value: requests come first
    "MAX_CONTENT_LENGTH": (int, "65536"),
    "DATA_ENCRYPTION_KEY": (str, ""),
    "DATABASE_POOL_SIZE": (int, "10"),
    "DATABASE_POOL_TIMEOUT": (float, "10"),
    "DATABASE_CONNECT_TIMEOUT": (int, "5"),
    "DATABASE_PREPARE_AFTER": (int, "3"),  # 0: never prepare (PgBouncer in transaction mode)
    "RATELIMIT_ENABLED": (_bool, "true"),
    "RATELIMIT_STORAGE_URI": (str, "memory://"),
    # API.md's limits, as Flask-Limiter strings.
    "RATELIMIT_LOGIN": (str, "10/minute"),  # per client address
    "RATELIMIT_SIGNUP": (str, "10/minute"),  # per client address
    "RATELIMIT_FORGOT_EMAIL": (str, "3/hour"),  # per email address
    "RATELIMIT_FORGOT_IP": (str, "10/hour"),  # per client address
    "RATELIMIT_RESEND": (str, "5/hour"),  # per account
    "RATELIMIT_REFRESH": (str, "150/5 minutes"),  # per client address
    "RATELIMIT_PASSWORD_CHANGE": (str, "10/15 minutes"),  # per account
    "RATELIMIT_TOTP": (str, "10/15 minutes"),  # TOTP or recovery-code attempts per account
    "RATELIMIT_STORAGE_TIMEOUT": (float, "0.2"),  # a hung Redis costs a request this, once
    "RATELIMIT_WEBHOOK_TEST": (str, "5/minute"),  # per organization
    "SMTP_URL": (str, ""),
    "SMTP_ALLOW_PLAINTEXT": (_bool, "false"),  # production sends mail over TLS only
    "MAIL_FROM": (str, "no-reply@localhost"),
    "PUBLIC_BASE_URL": (str, "http://127.0.0.1:8000"),
    "WEBHOOK_ALLOW_PRIVATE": (_bool, "false"),
    "CORS_ORIGINS": (_list, ""),
    "TRUSTED_PROXIES": (_list, ""),
    "OFFLOAD_WORKERS": (int, "4"),
    "OFFLOAD_QUEUE": (int, "100"),
    "OFFLOAD_TIMEOUT": (float, "10"),
    "OUTBOX_SWEEP_SECONDS": (float, "15"),  # 0: no sweeper thread (tests drain by hand)
    "OUTBOX_MAX_ATTEMPTS": (int, "10"),
    "OUTBOX_RETRY_SECONDS": (float, "10"),  # the first retry; doubling, with jitter
    "OUTBOX_RETRY_MAX_SECONDS": (float, "3600"),
    "BREAKER_FAILURES": (int, "5"),  # consecutive failures that open a dependency's breaker
    "BREAKER_RESET_SECONDS": (float, "30"),  # open → half-open after this long
    "WEBHOOK_TIMEOUT": (float, "5"),  # one delivery: connect, TLS, request and response
    "WEBHOOK_WORKERS": (int, "4"),  # the webhooks lane: mail never waits behind receivers
    "WEBHOOK_QUEUE": (int, "100"),
    "WEBHOOK_MAX_PER_ORGANIZATION": (int, "1"),  # deliveries of one organization at once
    "WEBHOOK_ALLOWED_PORTS": (_ports, ""),  # empty: 443 and 80 in production, any elsewhere
    # /metrics answers these client addresses only (loopback and private ranges by default).
    "METRICS_ALLOWED_NETWORKS": (
        _networks,
        "127.0.0.0/8,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
    ),
    "RESET_TOKEN_TTL": (_seconds, "1h"),
    "LOGIN_BACKOFF_AFTER": (int, "10"),  # consecutive failures before the back-off starts
    "LOGIN_BACKOFF_MAX": (_seconds, "15m"),  # 1 s, doubling, never longer than this
    "DEVICE_COOKIE_TTL": (_seconds, "180d"),  # a device cookie's life (auth/devices.py)
    "VERIFY_TOKEN_TTL": (_seconds, "7d"),
    "MFA_ISSUER": (str, "authapp"),  # the name authenticator apps show beside the account
    "MFA_LOGIN_TTL": (_seconds, "5m"),  # a login form's wait between password and code
    "SEED_ADMIN_EMAIL": (str, "admin@example.com"),
    "SEED_ADMIN_PASSWORD": (str, ""),
    "DEFAULT_ORG_NAME": (str, "Default"),
    "LOG_LEVEL": (str.upper, "INFO"),
    "LOG_FORMAT": (str, "json"),
}


def load(instance_path: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The typed settings: environment first, then `overrides` (tests), then derived keys."""
    overrides = dict(overrides or {})
    settings: dict[str, Any] = {}
    for name, (parse, default) in SETTINGS.items():
        if name in overrides:
            settings[name] = overrides.pop(name)
            continue
        raw = os.environ.get(name, default)
        if raw is None:
            settings[name] = None
            continue
        try:
            settings[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r} is not valid: {exc}.") from None
    if settings["PASSWORD_HASH_CONCURRENCY"] is None:
        settings["PASSWORD_HASH_CONCURRENCY"] = _hashing_threads_per_process()
    _check_ranges(settings)
    if settings["DATABASE_URL"] is None:
        settings["DATABASE_URL"] = f"sqlite:///{Path(instance_path) / 'authapp.db'}"
    _fill_local_secrets(settings, instance_path)
    _check_data_key(settings)
    settings.update(_derived(settings))
    settings.update(overrides)  # library keys a test sets directly win over derived ones
    return settings


def _hashing_threads_per_process() -> int:
    """The cores shared among the host's gunicorn workers (GUNICORN_WORKERS, by default one per
    core): one hash per core in all. Two per core hashed no faster and, at the end of a burst,
    left more half-done hashes behind (issue 9: login 0.91x of the bcrypt limit, 0.97x with one)."""
    cores = os.cpu_count() or 1
    try:
        workers = int(os.environ.get("GUNICORN_WORKERS") or cores)
    except ValueError:
        workers = cores  # gunicorn.conf.py refuses it; a `flask` command need not care
    return max(1, cores // max(1, workers))


def _check_ranges(settings: dict[str, Any]) -> None:
    ranges = {
        "BCRYPT_ROUNDS": (4, 31),
        "PASSWORD_MIN_LENGTH": (8, 256),
        "PASSWORD_HASH_CONCURRENCY": (1, 1024),
        "PASSWORD_HASH_QUEUE": (0, 100_000),
        "PASSWORD_HASH_NICE": (0, 19),
        "MAX_CONTENT_LENGTH": (1024, 2**31),
        "DATABASE_PREPARE_AFTER": (0, 1_000_000),
        "OFFLOAD_WORKERS": (1, 1024),
        "WEBHOOK_WORKERS": (1, 1024),
        "WEBHOOK_QUEUE": (0, 100_000),
        "WEBHOOK_MAX_PER_ORGANIZATION": (1, 1024),
    }
    for name, (low, high) in ranges.items():
        if not low <= settings[name] <= high:
            raise ConfigError(f"{name} must be between {low} and {high}.")


def _fill_local_secrets(settings: dict[str, Any], instance_path: str) -> None:
    """Outside production, a missing secret is generated once and kept in `instance/`.

    Kept rather than regenerated per process: gunicorn workers and `flask seed` must agree on
    the pepper and the JWT key, or a seeded password and a token from another worker would fail.
    """
    missing = [name for name in SECRET_NAMES if not settings[name]]
    if not missing or settings["AUTHAPP_ENV"] == "production":
        return
    path = Path(instance_path) / "local-secrets.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    if any(name not in stored for name in missing):
        stored |= {name: secrets.token_urlsafe(48) for name in missing if name not in stored}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stored))
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: two workers starting at once never read half a file
    for name in missing:
        settings[name] = stored[name]


def _check_data_key(settings: dict[str, Any]) -> None:
    """DATA_ENCRYPTION_KEY is a Fernet key; outside production it defaults to one derived from
    SECRET_KEY, so development and tests need no extra secret."""
    key = settings["DATA_ENCRYPTION_KEY"]
    if not key:
        if settings["AUTHAPP_ENV"] == "production":
            return  # check_production names it
        digest = hashlib.sha256(b"authapp data key:" + settings["SECRET_KEY"].encode()).digest()
        settings["DATA_ENCRYPTION_KEY"] = base64.urlsafe_b64encode(digest).decode()
        return
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigError(
            "DATA_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None


def _database_url(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the design card pins psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _derived(s: dict[str, Any]) -> dict[str, Any]:
    url = _database_url(s["DATABASE_URL"])
    # No pool_pre_ping: platform/connections.py finds a closed connection without a round trip (F1).
    engine: dict[str, Any] = {}
    if url.startswith("postgresql"):
        engine |= {
            "pool_size": s["DATABASE_POOL_SIZE"],
            "pool_timeout": s["DATABASE_POOL_TIMEOUT"],
            "connect_args": {
                "connect_timeout": s["DATABASE_CONNECT_TIMEOUT"],
                **connections.connect_args(url),
            },
        }
    testing = s["AUTHAPP_ENV"] == "testing"
    production = s["AUTHAPP_ENV"] == "production"
    # __Host- cookies are Secure, Path=/ and host-only: no subdomain can set or read them.
    cookie_prefix = "__Host-" if production else ""
    return {
        "TESTING": testing,
        "DEBUG": False,
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        # Browsers carry the same JWTs in cookies (WB-3); a cookie-authenticated JSON request
        # that changes state must echo the token's csrf claim in X-CSRF-TOKEN (WB-2).
        "JWT_TOKEN_LOCATION": ["headers", "cookies"],
        "JWT_ACCESS_COOKIE_NAME": f"{cookie_prefix}access_token",
        "JWT_REFRESH_COOKIE_NAME": f"{cookie_prefix}refresh_token",
        "JWT_ACCESS_CSRF_COOKIE_NAME": f"{cookie_prefix}csrf_access_token",
        "DEVICE_COOKIE_NAME": f"{cookie_prefix}device",
        "JWT_REFRESH_CSRF_COOKIE_NAME": f"{cookie_prefix}csrf_refresh_token",
        "JWT_COOKIE_SECURE": production,
        "JWT_COOKIE_SAMESITE": "Lax",
        "JWT_COOKIE_CSRF_PROTECT": True,
        "JWT_CSRF_IN_COOKIES": True,
        "JWT_SESSION_COOKIE": False,  # cookies live as long as their token
        "SESSION_COOKIE_NAME": f"{cookie_prefix}session",  # holds Flask-WTF's form CSRF secret
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # A login page left open for hours must still work; the token is bound to the session.
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_KEY_PREFIX": "authapp",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_HEADER_LIMIT": "RateLimit-Limit",
        "RATELIMIT_HEADER_REMAINING": "RateLimit-Remaining",
        "RATELIMIT_HEADER_RESET": "RateLimit-Reset",
        "RATELIMIT_HEADER_RETRY_AFTER_VALUE": "delta-seconds",
        # Redis down or hung: per-process limits and a log line, never a 500 or a hang (F12).
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        # The store's own failures arrive as limits' StorageError: the only error that moves
        # the limits to this process (extensions.RefusalHeadersLimiter, security/budgets.py).
        "RATELIMIT_STORAGE_OPTIONS": {"wrap_exceptions": True}
        | (
            {
                "socket_timeout": s["RATELIMIT_STORAGE_TIMEOUT"],
                "socket_connect_timeout": s["RATELIMIT_STORAGE_TIMEOUT"],
            }
            if s["RATELIMIT_STORAGE_URI"].startswith(("redis", "rediss"))
            else {}
        ),
        "WTF_CSRF_CHECK_DEFAULT": False,  # web.py checks every form outside /api/ instead
        "JWT_ENCODE_ISSUER": s["JWT_ISSUER"],
        "JWT_DECODE_ISSUER": s["JWT_ISSUER"],
        "JWT_ENCODE_AUDIENCE": s["JWT_AUDIENCE"],
        "JWT_DECODE_AUDIENCE": s["JWT_AUDIENCE"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=s["ACCESS_TOKEN_TTL"]),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=s["REFRESH_TOKEN_TTL"]),
        # Expiry is decided by platform/clock.py (security/tokens.py); the testing clock may
        # run ahead of the wall clock, so PyJWT's own time checks get room only in testing.
        "JWT_DECODE_LEEWAY": 10 * 365 * 86400 if testing else s["JWT_LEEWAY_SECONDS"],
        "PROPAGATE_EXCEPTIONS": False,
        "TRAP_HTTP_EXCEPTIONS": False,
        "API_TITLE": "authapp",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",  # the reader at /api/docs is authapp/docs.py
    }


def check_production(settings: Mapping[str, Any]) -> None:
    """Refuse to run production with a missing, default or short secret (CF-1)."""
    if settings["AUTHAPP_ENV"] != "production":
        return
    for name in SECRET_NAMES:
        value = settings.get(name) or ""
        if value.strip().lower() in KNOWN_DEFAULTS:
            raise ConfigError(
                f"{name} must be set in production (at least 32 random bytes). AUTHAPP_ENV is "
                "production unless set: AUTHAPP_ENV=development runs with generated local secrets."
            )
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"{name} is shorter than {MIN_SECRET_BYTES} bytes.")
        if len(set(value)) < 10:
            raise ConfigError(f"{name} does not look random; generate it (at least 32 bytes).")
    if settings["BCRYPT_ROUNDS"] < 10:
        raise ConfigError("BCRYPT_ROUNDS must be at least 10 in production.")
    if settings["WEBHOOK_ALLOW_PRIVATE"]:
        raise ConfigError(
            "WEBHOOK_ALLOW_PRIVATE=true is for development and tests: production webhooks must "
            "not reach private addresses."
        )
    if not settings.get("DATA_ENCRYPTION_KEY"):
        raise ConfigError(
            "DATA_ENCRYPTION_KEY must be set in production (a Fernet key: "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')."
        )
