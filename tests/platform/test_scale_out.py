"""Scale-out (issue 9 item 4, F13, DESIGN.md rule 4): two gunicorn masters, 2 gthread workers
each, on two ports, one PostgreSQL database, one Redis database and the same secrets, behind
nothing but their ports. What one master issues, the other accepts; what one revokes, the other
refuses on the very next request; a rate limit or an API key's budget is one count for both; and
a signing-key rotation half done (one host switched) verifies every token on every host.

Both masters run as production does (`AUTHAPP_ENV=production`, secrets generated for the
module, `BCRYPT_ROUNDS=10`, Redis limits), with `TRUSTED_PROXIES=127.0.0.1`: the test plays the
load balancer and names each request's client in `X-Forwarded-For`. Every request gets an
address of its own unless a test names one, so no test spends another's per-address budget and
two runs sharing the Redis database never meet. Every request opens a fresh connection, so
both workers of a master answer.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import random
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask_migrate
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from authapp.cli.seed import seed_database
from authapp.platform.extensions import db
from bench.stack import production_secrets
from tests.conftest import PASSWORD, build_app, scratch_database, worker_name
from tests.platform.conftest import (
    Response,
    Server,
    _free_port,
    bearer,
    confirm_email_on,
    request_json,
    start_gunicorn,
    stop,
    unique,
    wait_for_health,
)

pytestmark = pytest.mark.e2e

# A Redis database of this module's own per xdist worker (tests/auth: 1-14 from gw0 up,
# tests/mfa/test_limits_and_races.py: 3-6, test_mfa_on_gunicorn.py: 7-8,
# test_limits_across_workers.py: 14-15, bench: 11).
REDIS_URI = (
    f"redis://127.0.0.1:6379/{9 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0) % 2}"
)
ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
SETTINGS = "/api/v1/settings"
ATTEMPTS = 6  # fresh connections per master and check, so both of its workers answer
NEW_PASSWORD = "another long passphrase nobody guesses"
LOGIN_LIMIT = 10  # RATELIMIT_LOGIN's default, 10/minute per client address
FREE_TIER_BUDGET = 100  # a new organization's API requests per minute (tier free)


def client_address() -> str:
    """A client of its own: a random /64 of the documentation prefix 2001:db8::/32 (the rate
    limits count an IPv6 client by its /64)."""
    return str(ipaddress.IPv6Address(0x20010DB8 << 96 | random.getrandbits(32) << 64 | 1))


def call(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    client: str | None = None,
) -> Response:
    """One request over a fresh connection, forwarded for `client` (a new one by default)."""
    sent = {"X-Forwarded-For": client or client_address(), **(headers or {})}
    return request_json(server, method, path, body, sent)


def code_of(answer: Response) -> tuple[int, str | None]:
    status, _, body = answer
    error = body.get("error") if isinstance(body, dict) else None
    return status, error["code"] if error else None


def answers(servers: tuple[Server, ...], method: str, path: str, **kwargs: Any) -> list[Any]:
    """(status, error code) of ATTEMPTS requests on each server in turn."""
    return [
        code_of(call(server, method, path, **kwargs)) for server in servers for _ in range(ATTEMPTS)
    ]


def every(servers: tuple[Server, ...], status: int, code: str | None = None) -> list[Any]:
    return [(status, code)] * ATTEMPTS * len(servers)


def sign_up(server: Server) -> dict[str, Any]:
    """A new account, owner of a new organization; the 201 body (token pair + user)."""
    body = {
        "email": f"{unique('scale.')}@example.com",
        "password": PASSWORD,
        "organization_name": unique("Org "),
    }
    status, _, payload = call(server, "POST", "/api/v1/auth/signup", body)
    assert status == 201, payload
    return payload


def log_in(
    server: Server, login: str, password: str = PASSWORD, *, client: str | None = None
) -> dict[str, Any]:
    status, _, payload = call(
        server, "POST", LOGIN, {"login": login, "password": password}, client=client
    )
    assert status == 200, payload
    return payload


def refresh(server: Server, pair: Mapping[str, Any]) -> Response:
    return call(server, "POST", REFRESH, {"refresh_token": pair["refresh_token"]})


# --- two masters on one database -------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: Server
    b: Server

    @property
    def both(self) -> tuple[Server, Server]:
        return self.a, self.b


@pytest.fixture(scope="module")
def deployment() -> Iterator[dict[str, str]]:
    """The environment every host shares: one database (migrated and seeded once, from one
    place, before any master starts), one Redis, the same secrets."""
    shared_secrets = production_secrets()
    with scratch_database(worker_name("live_scale_out")) as url:
        env = {
            **os.environ,
            **shared_secrets,
            "AUTHAPP_ENV": "production",
            "DATABASE_URL": url,
            "BCRYPT_ROUNDS": "10",  # production's floor: the suite stays fast
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": REDIS_URI,
            "TRUSTED_PROXIES": "127.0.0.1",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
        for name in ("FLASK_APP", "PROMETHEUS_MULTIPROC_DIR", "JWT_PRIVATE_KEY_FILE"):
            env.pop(name, None)
        # `flask db upgrade` and `flask seed` (the built-in roles every sign-up needs), done in
        # this process: each `flask` command boots the app in a new one, seconds on a busy box.
        app = build_app(url, **shared_secrets)
        with app.app_context():
            flask_migrate.upgrade()
            seed_database()
            db.engine.dispose()
        yield env


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Every master at once: a gthread master takes a few seconds to stop, even idle."""
    with ThreadPoolExecutor(max_workers=max(len(processes), 1)) as pool:
        list(pool.map(stop, processes))


@contextmanager
def masters(
    envs: list[Mapping[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    """A gunicorn master (2 workers) per environment, each on its own port with its own
    PROMETHEUS_MULTIPROC_DIR; all started before any is waited for, all stopped afterwards."""
    servers: list[Server] = []
    processes: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        stack.callback(stop_all, processes)
        for env in envs:
            logs = tmp_path_factory.mktemp("master")
            port = _free_port()
            server = Server("127.0.0.1", port, logs / "gunicorn.log", logs / "stdout.log", env)
            (logs / "metrics").mkdir()
            master_env = {
                **env,
                "GUNICORN_WORKERS": "2",
                "GUNICORN_GRACEFUL_TIMEOUT": "5",
                "PROMETHEUS_MULTIPROC_DIR": str(logs / "metrics"),
            }
            processes.append(start_gunicorn(server, master_env))
            servers.append(server)
        for server, process in zip(servers, processes, strict=True):
            wait_for_health(server, process, "gunicorn")
        yield servers


@pytest.fixture(scope="module")
def pair(deployment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # No grace window: a parent replayed after its rotation is reuse at once (API.md).
    env = {**deployment, "REFRESH_REUSE_GRACE_SECONDS": "0"}
    with masters([env, env], tmp_path_factory) as (a, b):
        yield Pair(a, b)


def test_a_token_issued_by_one_master_is_accepted_by_the_other(pair):
    """F13: access and refresh tokens, and the password hash, from A work on B and back."""
    signed_up = sign_up(pair.a)
    user_id = signed_up["user"]["id"]

    for server in pair.both:
        for _ in range(ATTEMPTS):
            status, _, body = call(server, "GET", ME, headers=bearer(signed_up["access_token"]))
            assert status == 200, body
            assert body["user"]["id"] == user_id
    logged_in = log_in(pair.b, signed_up["user"]["email"])  # hashed on A, checked on B
    assert answers(pair.both, "GET", ME, headers=bearer(logged_in["access_token"])) == every(
        pair.both, 200
    )
    status, _, rotated = refresh(pair.b, signed_up)  # A's refresh token, rotated by B
    assert status == 200, rotated
    assert answers(pair.both, "GET", ME, headers=bearer(rotated["access_token"])) == every(
        pair.both, 200
    )
    assert [code_of(call(server, "GET", "/readyz")) for server in pair.both] == [(200, None)] * 2


def test_a_logout_on_one_master_is_seen_by_the_other_at_the_next_request(pair):
    """F13, SE-1: B refuses the session A logged out; the user's other session lives on."""
    signed_up = sign_up(pair.a)
    other = log_in(pair.b, signed_up["user"]["email"])
    headers = bearer(signed_up["access_token"])
    assert answers((pair.b,), "GET", ME, headers=headers) == every((pair.b,), 200)

    status, _, body = call(pair.a, "POST", "/api/v1/auth/logout", headers=headers)

    assert status == 204, body
    assert answers((pair.b, pair.a), "GET", ME, headers=headers) == every(
        pair.both, 401, "token_revoked"
    )
    assert code_of(refresh(pair.b, signed_up)) == (401, "token_revoked")
    assert answers(pair.both, "GET", ME, headers=bearer(other["access_token"])) == every(
        pair.both, 200
    )


def test_a_logout_all_on_one_master_revokes_every_session_on_the_other(pair):
    """F13, SE-2: sessions opened on either master all end with B's logout-all."""
    signed_up = sign_up(pair.a)
    email = signed_up["user"]["email"]
    sessions = [signed_up, log_in(pair.b, email), log_in(pair.a, email)]

    status, _, body = call(
        pair.b, "POST", "/api/v1/auth/logout-all", headers=bearer(sessions[1]["access_token"])
    )

    assert status == 204, body
    for session in sessions:
        assert answers(
            (pair.a, pair.b), "GET", ME, headers=bearer(session["access_token"])
        ) == every(pair.both, 401, "token_revoked")
        assert code_of(refresh(pair.a, session)) == (401, "token_revoked")


def test_a_password_change_on_one_master_revokes_the_other_sessions_on_the_other(pair):
    """F13, SE-3: B changes the password; A refuses the other session and the old password."""
    signed_up = sign_up(pair.a)
    email = signed_up["user"]["email"]
    kept = log_in(pair.b, email)

    status, _, body = call(
        pair.b,
        "POST",
        f"{SETTINGS}/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        bearer(kept["access_token"]),
    )

    assert status == 204, body
    assert answers((pair.a, pair.b), "GET", ME, headers=bearer(signed_up["access_token"])) == every(
        pair.both, 401, "token_revoked"
    )
    assert answers(pair.both, "GET", ME, headers=bearer(kept["access_token"])) == every(
        pair.both, 200
    )
    wrong = call(pair.a, "POST", LOGIN, {"login": email, "password": PASSWORD})
    assert code_of(wrong) == (401, "invalid_credentials")
    log_in(pair.a, email, NEW_PASSWORD)


def test_a_parent_replayed_on_one_master_after_a_rotation_on_the_other_is_reuse(pair):
    """F13, RT-1, RT-2 with REFRESH_REUSE_GRACE_SECONDS=0: A rotates, B sees the replay as
    reuse and revokes the session, so the child A issued dies on both masters."""
    parent = sign_up(pair.a)
    status, _, child = refresh(pair.a, parent)
    assert status == 200, child

    assert code_of(refresh(pair.b, parent)) == (401, "token_reused")

    assert code_of(refresh(pair.a, child)) == (401, "token_reused")
    assert answers(pair.both, "GET", ME, headers=bearer(child["access_token"])) == every(
        pair.both, 401, "token_revoked"
    )


def test_the_login_limit_is_one_count_for_both_masters(pair):
    """F13, RL-1, RL-3: ten logins from one client split over A and B, the eleventh is 429 on
    either; another client behind the same balancer still logs in."""
    email = sign_up(pair.a)["user"]["email"]
    client = client_address()

    for attempt in range(LOGIN_LIMIT):
        log_in(pair.both[attempt % 2], email, client=client)

    for server in pair.both:
        status, headers, body = call(
            server, "POST", LOGIN, {"login": email, "password": PASSWORD}, client=client
        )
        assert (status, body["error"]["code"]) == (429, "rate_limited"), body
        assert 0 < int(headers["Retry-After"]) <= 60
    log_in(pair.b, email, client=client_address())


def test_an_api_keys_budget_is_one_count_for_both_masters(pair):
    """F13, RL-5: the organization's requests per minute, spent half on A and half on B; the
    next request is 429 on either."""
    account = sign_up(pair.a)
    confirm_email_on(pair.a, account["user"]["email"])  # keys wait for a confirmed address
    owner = bearer(account["access_token"])
    status, _, organization = call(pair.b, "GET", f"{SETTINGS}/organization", headers=owner)
    assert status == 200, organization
    assert organization["rate_limit_per_minute"] == FREE_TIER_BUDGET
    status, _, created = call(
        pair.b,
        "POST",
        f"{SETTINGS}/api-keys",
        {"name": "scale-out key", "scopes": ["users:read"]},
        owner,
    )
    assert status == 201, created
    key = {"X-API-Key": created["key"]}

    spent = [
        code_of(call(pair.both[n % 2], "GET", f"{SETTINGS}/members", headers=key))
        for n in range(FREE_TIER_BUDGET)
    ]

    assert spent == [(200, None)] * FREE_TIER_BUDGET
    for server in pair.both:
        status, headers, body = call(server, "GET", f"{SETTINGS}/members", headers=key)
        assert (status, body["error"]["code"]) == (429, "rate_limited"), body
        assert 0 < int(headers["Retry-After"]) <= 60


# --- a signing-key rotation half done ---------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    old_private: Path
    new_private: Path
    old_kid: str
    new_kid: str
    stranger: ed25519.Ed25519PrivateKey  # never configured anywhere


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> str:
    """RFC 7638, computed here from the key itself: the kid a token and the JWKS must name."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        members = {
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        }
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def _write_private(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_public(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, path: Path) -> None:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="module")
def rotation(
    deployment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pair, Keys]]:
    """Mid-rotation from RS256 to EdDSA, as README "Many hosts" does it: every host's
    JWT_PUBLIC_KEYS_DIR (one per host, nothing shared) already holds the old and the new public
    key; A has switched JWT_PRIVATE_KEY_FILE to the new key, B still signs with the old one."""
    folder = tmp_path_factory.mktemp("jwt-keys")
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = ed25519.Ed25519PrivateKey.generate()
    keys = Keys(
        old_private=folder / "old.key",
        new_private=folder / "new.key",
        old_kid=thumbprint(old.public_key()),
        new_kid=thumbprint(new.public_key()),
        stranger=ed25519.Ed25519PrivateKey.generate(),
    )
    _write_private(old, keys.old_private)
    _write_private(new, keys.new_private)
    envs = []
    for host, private in (("a", keys.new_private), ("b", keys.old_private)):
        public = folder / f"{host}-public"
        public.mkdir()
        _write_public(old, public / "old.pem")
        _write_public(new, public / "new.pem")  # a host's own signing key is listed once
        envs.append(
            {**deployment, "JWT_PRIVATE_KEY_FILE": str(private), "JWT_PUBLIC_KEYS_DIR": str(public)}
        )
    with masters(envs, tmp_path_factory) as (a, b):
        yield Pair(a, b), keys


def test_mid_rotation_tokens_from_either_master_verify_on_both(rotation):
    """F13, JW-7: A's tokens name the new kid (EdDSA), B's the old one (RS256); each works on
    both masters, and a refresh moves a session from the old key to the new."""
    pair, keys = rotation
    from_a = sign_up(pair.a)
    from_b = log_in(pair.b, from_a["user"]["email"])

    for tokens, kid, algorithm in (
        (from_a, keys.new_kid, "EdDSA"),
        (from_b, keys.old_kid, "RS256"),
    ):
        for name in ("access_token", "refresh_token"):
            header = jwt.get_unverified_header(tokens[name])
            assert (header["kid"], header["alg"]) == (kid, algorithm), name
        assert answers(pair.both, "GET", ME, headers=bearer(tokens["access_token"])) == every(
            pair.both, 200
        )
    status, _, moved = refresh(pair.a, from_b)  # an old-key refresh token, rotated by A
    assert status == 200, moved
    assert jwt.get_unverified_header(moved["refresh_token"])["kid"] == keys.new_kid
    assert answers(pair.both, "GET", ME, headers=bearer(moved["access_token"])) == every(
        pair.both, 200
    )


def test_mid_rotation_both_masters_publish_both_keys(rotation):
    """JW-7: /.well-known/jwks.json lists the old and the new kid on each master, public members
    only, and a client verifies each master's token with the key the JWKS names."""
    pair, keys = rotation
    tokens = [sign_up(server)["access_token"] for server in pair.both]

    for server in pair.both:
        status, _, jwks = call(server, "GET", "/.well-known/jwks.json")
        assert status == 200, jwks
        assert sorted(key["kid"] for key in jwks["keys"]) == sorted([keys.old_kid, keys.new_kid])
        by_kid = {key["kid"]: key for key in jwks["keys"]}
        assert not [key for key in jwks["keys"] if "d" in key or "p" in key]
        for token in tokens:
            header = jwt.get_unverified_header(token)
            public = jwt.PyJWK(by_kid[header["kid"]]).key
            claims = jwt.decode(
                token, public, algorithms=[header["alg"]], audience="authapp", issuer="authapp"
            )
            assert claims["type"] == "access"


def test_mid_rotation_a_key_no_host_was_given_is_refused_by_both(rotation):
    """JW-7: a token signed by a stranger's key is 401 on both, even when it names a known kid."""
    pair, keys = rotation
    genuine = sign_up(pair.a)["access_token"]
    claims = jwt.decode(genuine, options={"verify_signature": False})

    for kid in (keys.new_kid, "a-kid-nobody-configured"):
        forged = jwt.encode(claims, keys.stranger, algorithm="EdDSA", headers={"kid": kid})
        assert answers(pair.both, "GET", ME, headers=bearer(forged)) == every(
            pair.both, 401, "invalid_token"
        ), kid
