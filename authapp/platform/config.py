"""Every setting (docs/configuration.md), read from the environment once, typed and defaulted.

`load()` is the only place that reads `os.environ`. The keys it returns are the variable names
of the contract; the library settings (SQLALCHEMY_*, JWT_*, ...) are derived from them here too,
so a test that overrides `BCRYPT_ROUNDS` or `DATABASE_URL` changes everything that follows.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from cryptography.fernet import Fernet

from authapp.platform import (
    federation_settings,
    library_settings,
    local_secrets,
    parse,
    webauthn_settings,
)

ENVIRONMENTS = parse.ENVIRONMENTS
SECRET_NAMES = ("SECRET_KEY", "JWT_SECRET_KEY", "PASSWORD_PEPPER")
MIN_SECRET_BYTES = 32
# Values that appear in docs and examples: never acceptable as a production secret.
KNOWN_DEFAULTS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "test"})


# The offload lanes (delivery/offload.py, docs/architecture.md "Offload and outbox"): lane -> the
# settings of its threads, of its waiting tasks and, where tasks carry a key (an organization),
# of how many tasks of one key run at once.
OFFLOAD_LANES: dict[str, tuple[str, str, str | None]] = {
    "mail": ("OFFLOAD_WORKERS", "OFFLOAD_QUEUE", None),
    "webhooks": ("WEBHOOK_WORKERS", "WEBHOOK_QUEUE", "WEBHOOK_MAX_PER_ORGANIZATION"),
    "federation": ("FEDERATION_WORKERS", "FEDERATION_QUEUE", None),
}


class ConfigError(click.ClickException):
    """A setting is missing or wrong; the message names the variable.

    A ClickException so that a `flask` command prints the message, not a traceback;
    gunicorn.conf.py checks the settings in the master for the same reason."""


# name -> (parser, default as the environment would spell it). None: computed below.
SETTINGS: dict[str, tuple[Callable[[str], Any], str | None]] = {
    # Unset is production: a forgotten variable must not turn off what production enforces
    # (docs/security.md "Production by default"); `make run` and the tests name their environment.
    "AUTHAPP_ENV": (parse.environment_name, "production"),
    "DATABASE_URL": (str, None),
    "SECRET_KEY": (str, None),
    "JWT_SECRET_KEY": (str, None),
    "PASSWORD_PEPPER": (str, None),
    "JWT_PRIVATE_KEY_FILE": (str, ""),
    "JWT_PUBLIC_KEYS_DIR": (str, ""),
    "JWT_ISSUER": (str, "authapp"),
    "JWT_AUDIENCE": (str, "authapp"),
    "JWT_LEEWAY_SECONDS": (parse.seconds, "30"),
    "ACCESS_TOKEN_TTL": (parse.seconds, "900"),
    "REFRESH_TOKEN_TTL": (parse.seconds, "14d"),
    "SESSION_MAX_AGE": (parse.seconds, "30d"),
    "REFRESH_REUSE_GRACE_SECONDS": (parse.seconds, "10"),
    "BCRYPT_ROUNDS": (int, "12"),
    "PASSWORD_MIN_LENGTH": (int, "15"),
    "PASSWORD_HASH_CONCURRENCY": (int, None),  # unset: one per core on the host (below)
    "PASSWORD_HASH_QUEUE": (int, "64"),  # > GUNICORN_THREADS (docs/configuration.md)
    "PASSWORD_HASH_WAIT_SECONDS": (float, "20.0"),
    "PASSWORD_HASH_NICE": (int, "10"),  # hashing threads' nice value: requests come first
    "MAX_CONTENT_LENGTH": (int, "65536"),
    "DATA_ENCRYPTION_KEY": (str, ""),
    "DATABASE_POOL_SIZE": (int, "10"),
    "DATABASE_POOL_TIMEOUT": (float, "10"),
    "DATABASE_CONNECT_TIMEOUT": (int, "5"),
    "DATABASE_PREPARE_AFTER": (int, "3"),  # 0: never prepare (PgBouncer in transaction mode)
    "RATELIMIT_ENABLED": (parse.boolean, "true"),
    "RATELIMIT_STORAGE_URI": (str, "memory://"),
    # docs/api.md's limits, as Flask-Limiter strings.
    "RATELIMIT_LOGIN": (str, "10/minute"),  # per client address
    "RATELIMIT_SIGNUP": (str, "10/minute"),  # per client address
    "RATELIMIT_FORGOT_EMAIL": (str, "3/hour"),  # per email address
    "RATELIMIT_FORGOT_IP": (str, "10/hour"),  # per client address
    "RATELIMIT_RESEND": (str, "5/hour"),  # per account
    "RATELIMIT_REFRESH": (str, "150/5 minutes"),  # per client address
    "RATELIMIT_PASSWORD_CHANGE": (str, "10/15 minutes"),  # per account
    "RATELIMIT_EXPORT": (str, "10/hour"),  # per account: the data export
    "RATELIMIT_PASSKEY_OPTIONS": (str, "30/minute"),  # per address; a login page asks once
    "RATELIMIT_TOTP": (str, "10/15 minutes"),  # TOTP or recovery-code attempts per account
    "RATELIMIT_STORAGE_TIMEOUT": (float, "0.2"),  # a hung Redis costs a request this, once
    "RATELIMIT_WEBHOOK_TEST": (str, "5/minute"),  # per organization
    "SMTP_URL": (str, ""),
    "SMTP_ALLOW_PLAINTEXT": (parse.boolean, "false"),  # production sends mail over TLS only
    "MAIL_FROM": (str, "no-reply@localhost"),
    "MAIL_DIR": (str, ""),  # no SMTP_URL: mail as <id>.eml here (unset: dev's instance/mail)
    "PUBLIC_BASE_URL": (str, "http://127.0.0.1:8000"),
    # Where authapp's routes start: "" as its own service; mounted in a host app, `/auth` unless
    # the host says otherwise (authapp/extension.py).
    "AUTHAPP_URL_PREFIX": (parse.url_prefix, ""),
    "WEBHOOK_ALLOW_PRIVATE": (parse.boolean, "false"),
    "CORS_ORIGINS": (parse.items, ""),
    "TRUSTED_PROXIES": (parse.items, ""),
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
    "WEBHOOK_ALLOWED_PORTS": (parse.ports, ""),  # empty: 443 and 80 in production, any elsewhere
    # /metrics answers these client addresses only (loopback and private ranges by default).
    "METRICS_ALLOWED_NETWORKS": (
        parse.networks,
        "127.0.0.0/8,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
    ),
    "RESET_TOKEN_TTL": (parse.seconds, "1h"),
    "LOGIN_BACKOFF_AFTER": (int, "10"),  # consecutive failures before the back-off starts
    "LOGIN_BACKOFF_MAX": (parse.seconds, "15m"),  # 1 s, doubling, never longer than this
    "DEVICE_COOKIE_TTL": (parse.seconds, "180d"),  # a device cookie's life (auth/devices.py)
    "VERIFY_TOKEN_TTL": (parse.seconds, "7d"),
    "INVITATION_TTL": (parse.seconds, "7d"),  # an invitation's mailed link (settings/invitations)
    "MFA_ISSUER": (str, "authapp"),  # the name authenticator apps show beside the account
    "MFA_LOGIN_TTL": (parse.seconds, "5m"),  # a login form's wait between password and code
    "WEBAUTHN_RP_ID": (parse.domain_name, ""),  # empty: docs/configuration.md "Passkeys"
    "WEBAUTHN_RP_NAME": (str, "authapp"),  # what the browser shows when it asks for a passkey
    "WEBAUTHN_ORIGINS": (parse.origins, ""),
    "WEBAUTHN_CHALLENGE_TTL": (parse.seconds, "5m"),  # options until the answer must come
    "PASSKEYS_PER_USER": (int, "20"),
    # Sign-in with other identity providers (docs/federation.md): none unless configured.
    "FEDERATION_PROVIDERS": (federation_settings.providers, ""),
    "FEDERATION_TIMEOUT": (float, "10"),  # all of one step's calls to a provider
    "FEDERATION_WORKERS": (int, "4"),  # the federation lane: providers never hold mail's threads
    "FEDERATION_QUEUE": (int, "50"),
    "FEDERATION_FLOW_TTL": (parse.seconds, "10m"),  # leaving for the provider until coming back
    "FEDERATION_APP_REDIRECTS": (parse.items, ""),  # the JSON flow's redirect URIs (exact)
    "SIGNUP_MODE": (parse.signup_mode, "open"),  # open, closed or invite (auth/policy.py)
    "REQUIRE_VERIFIED_EMAIL": (parse.boolean, "false"),  # true: no session before the link
    # `flask prune`: how long rows stay after they stopped mattering (auth/services/retention.py).
    "PRUNE_SESSIONS_AFTER": (parse.seconds, "30d"),  # past a session's expiry or revocation
    "PRUNE_TOKENS_AFTER": (parse.seconds, "7d"),  # past a one-time token's use or expiry
    "PRUNE_OUTBOX_SENT_AFTER": (parse.seconds, "7d"),  # past a message's sending
    "AUDIT_RETENTION": (parse.seconds, "365d"),  # 0: the audit trail is kept forever
    "SEED_ADMIN_EMAIL": (str, "admin@example.com"),
    "SEED_ADMIN_PASSWORD": (str, ""),
    "DEFAULT_ORG_NAME": (str, "Default"),
    "ORGANIZATIONS_PER_USER": (int, "10"),  # organizations one person may own (POST /organizations)
    "LOG_LEVEL": (str.upper, "INFO"),
    "LOG_FORMAT": (parse.log_format, None),  # unset: console in development, else json
    # gunicorn's own (gunicorn.conf.py reads them through load(), like every other setting).
    "GUNICORN_BIND": (str, "127.0.0.1:8000"),
    "GUNICORN_WORKERS": (int, None),  # unset: one per core
    # 48, not 8: a login waiting for a hashing thread holds its gunicorn thread (up to
    # PASSWORD_HASH_WAIT_SECONDS), and token checks must still find one during a login flood.
    "GUNICORN_THREADS": (int, "48"),
    "GUNICORN_TIMEOUT": (int, "30"),
    "GUNICORN_GRACEFUL_TIMEOUT": (int, "30"),
    "GUNICORN_KEEPALIVE": (int, "5"),
    # Recycling guards against a leak (the soak found none); each restart drops the worker's
    # keep-alive connections and costs a boot, so it is rare (docs/decisions.md "Recycling").
    "GUNICORN_MAX_REQUESTS": (int, "100000"),
    "GUNICORN_MAX_REQUESTS_JITTER": (int, "10000"),
}


def load(instance_path: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The typed settings: environment first, then `overrides` (tests), then derived keys."""
    overrides = dict(overrides or {})
    settings: dict[str, Any] = {}
    for name, (_parser, default) in SETTINGS.items():
        if name in overrides:
            settings[name] = overrides.pop(name)
            continue
        raw = os.environ.get(name, default)
        if raw is None or (raw == "" and default is None):  # empty: unset, computed below
            settings[name] = None
            continue
        settings[name] = parsed(name, raw)
    if settings["LOG_FORMAT"] is None:
        settings["LOG_FORMAT"] = "console" if settings["AUTHAPP_ENV"] == "development" else "json"
    if settings["GUNICORN_WORKERS"] is None:
        settings["GUNICORN_WORKERS"] = os.cpu_count() or 1
    if settings["PASSWORD_HASH_CONCURRENCY"] is None:
        settings["PASSWORD_HASH_CONCURRENCY"] = _hashing_threads(settings["GUNICORN_WORKERS"])
    _check_ranges(settings)
    webauthn_settings.check(settings, ConfigError)
    federation_settings.check(settings, ConfigError)
    if settings["DATABASE_URL"] is None:
        settings["DATABASE_URL"] = f"sqlite:///{Path(instance_path) / 'authapp.db'}"
    local_secrets.fill(settings, instance_path, SECRET_NAMES)
    _check_data_key(settings)
    settings.update(library_settings.derived(settings))
    settings.update(overrides)  # library keys a test sets directly win over derived ones
    return settings


def default(name: str) -> Any:
    """A setting's default value, parsed."""
    raw = SETTINGS[name][1]
    return None if raw is None else parsed(name, raw)


def parsed(name: str, raw: str) -> Any:
    try:
        return SETTINGS[name][0](raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid: {exc}.") from None


def _hashing_threads(workers: int) -> int:
    """The cores shared among the host's gunicorn workers: one hash per core in all. Two per
    core hashed no faster and, at the end of a burst, left more half-done hashes behind
    (login at 0.91x of the bcrypt limit, 0.97x with one: docs/decisions.md "The hashing line")."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


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
        "ORGANIZATIONS_PER_USER": (0, 100_000),
        "PASSKEYS_PER_USER": (1, 1000),
        "WEBAUTHN_CHALLENGE_TTL": (10, 86_400),
        "GUNICORN_WORKERS": (1, 1024),
        "GUNICORN_THREADS": (1, 10_000),
        "GUNICORN_TIMEOUT": (0, 86_400),
        "GUNICORN_GRACEFUL_TIMEOUT": (0, 86_400),
        "GUNICORN_KEEPALIVE": (0, 3_600),
        "GUNICORN_MAX_REQUESTS": (0, 2**31),
        "GUNICORN_MAX_REQUESTS_JITTER": (0, 2**31),
    }
    for name, (low, high) in ranges.items():
        if not low <= settings[name] <= high:
            raise ConfigError(f"{name} must be between {low} and {high}.")


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
