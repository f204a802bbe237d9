"""The libraries' settings (SQLAlchemy, flask-jwt-extended, Flask-WTF, Flask-Limiter,
flask-smorest), derived from ours by config.load: a test that overrides `DATABASE_URL` or
`AUTHAPP_ENV` changes everything that follows from it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authapp.platform import connections


def _database_url(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the design card pins psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def derived(s: dict[str, Any]) -> dict[str, Any]:
    testing = s["AUTHAPP_ENV"] == "testing"
    return {
        "TESTING": testing,
        "DEBUG": False,
        "PROPAGATE_EXCEPTIONS": False,
        "TRAP_HTTP_EXCEPTIONS": False,
        **_database(s),
        **_tokens(s, testing=testing),
        **_cookies(production=s["AUTHAPP_ENV"] == "production"),
        **_rate_limits(s),
        "API_TITLE": "authapp",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": s["AUTHAPP_URL_PREFIX"] + "/api",
        "OPENAPI_JSON_PATH": "openapi.json",  # the reader at /api/docs: platform/api_docs.py
    }


def _database(s: dict[str, Any]) -> dict[str, Any]:
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
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    }


def _tokens(s: dict[str, Any], *, testing: bool) -> dict[str, Any]:
    return {
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        # Browsers carry the same JWTs in cookies (WB-3); a cookie-authenticated JSON request
        # that changes state must echo the token's csrf claim in X-CSRF-TOKEN (WB-2).
        "JWT_TOKEN_LOCATION": ["headers", "cookies"],
        "JWT_ENCODE_ISSUER": s["JWT_ISSUER"],
        "JWT_DECODE_ISSUER": s["JWT_ISSUER"],
        "JWT_ENCODE_AUDIENCE": s["JWT_AUDIENCE"],
        "JWT_DECODE_AUDIENCE": s["JWT_AUDIENCE"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=s["ACCESS_TOKEN_TTL"]),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=s["REFRESH_TOKEN_TTL"]),
        # Expiry is decided by platform/clock.py (security/tokens.py); the testing clock may
        # run ahead of the wall clock, so PyJWT's own time checks get room only in testing.
        "JWT_DECODE_LEEWAY": 10 * 365 * 86400 if testing else s["JWT_LEEWAY_SECONDS"],
    }


def _cookies(*, production: bool) -> dict[str, Any]:
    # __Host- cookies are Secure, Path=/ and host-only: no subdomain can set or read them.
    prefix = "__Host-" if production else ""
    return {
        "JWT_ACCESS_COOKIE_NAME": f"{prefix}access_token",
        "JWT_REFRESH_COOKIE_NAME": f"{prefix}refresh_token",
        "JWT_ACCESS_CSRF_COOKIE_NAME": f"{prefix}csrf_access_token",
        "DEVICE_COOKIE_NAME": f"{prefix}device",
        "JWT_REFRESH_CSRF_COOKIE_NAME": f"{prefix}csrf_refresh_token",
        "JWT_COOKIE_SECURE": production,
        "JWT_COOKIE_SAMESITE": "Lax",
        "JWT_COOKIE_CSRF_PROTECT": True,
        "JWT_CSRF_IN_COOKIES": True,
        "JWT_SESSION_COOKIE": False,  # cookies live as long as their token
        "SESSION_COOKIE_NAME": f"{prefix}session",  # holds Flask-WTF's form CSRF secret
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # A login page left open for hours must still work; the token is bound to the session.
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_CHECK_DEFAULT": False,  # web/pages.py checks every form outside /api/ instead
    }


def _rate_limits(s: dict[str, Any]) -> dict[str, Any]:
    redis = s["RATELIMIT_STORAGE_URI"].startswith(("redis", "rediss"))
    timeout = s["RATELIMIT_STORAGE_TIMEOUT"]
    return {
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
        | ({"socket_timeout": timeout, "socket_connect_timeout": timeout} if redis else {}),
    }
