"""authapp/client.py (TokenChecker) against real gunicorn signing with an RSA key: local
verification against `/.well-known/jwks.json`, introspection with an API key holding
`tokens:introspect`, their cache, and their failures (docs/protecting-services.md).

The server is this module's own: its signing key is written before gunicorn starts, which a
module-level GUNICORN_ENV (evaluated at import) cannot name. Requests to authapp are counted
on its own `/metrics`, not on a stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from authapp.client import AuthappUnavailable, InvalidToken, TokenChecker, _AnswerCache
from tests.conftest import worker_name
from tests.server.conftest import (
    Server,
    bearer,
    log_in,
    request_json,
    running_server,
    sign_up,
    unique,
)

INTROSPECT = "/api/v1/auth/introspect"
INTROSPECTIONS = (
    "flask_http_request_duration_seconds_count",
    frozenset({"method": "POST", "url_rule": INTROSPECT, "status": "200"}.items()),
)
HOUR = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """tests/server/conftest.py's `server`, signing with a fresh RSA key (RS256)."""
    key_file = tmp_path_factory.mktemp("jwt-key") / "signing.key"
    key_file.write_bytes(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    key_file.chmod(0o600)
    extra = {"JWT_PRIVATE_KEY_FILE": str(key_file)}
    with running_server(worker_name("live_client_helper"), extra, tmp_path_factory) as started:
        yield started


@pytest.fixture(scope="module")
def owner(server: Server) -> dict[str, Any]:
    """The sign-up answer of the owner of a new organization (owners hold tokens:introspect)."""
    return sign_up(server, confirmed=True, organization_name=unique("Org "))


def make_key(server: Server, owner: dict[str, Any], scopes: list[str]) -> str:
    status, _, created = request_json(
        server,
        "POST",
        "/api/v1/settings/api-keys",
        {"name": unique("service "), "scopes": scopes},
        bearer(owner["access_token"]),
    )
    assert status == 201, created
    return str(created["key"])


@pytest.fixture(scope="module")
def api_key(server: Server, owner: dict[str, Any]) -> str:
    return make_key(server, owner, ["tokens:introspect"])


def new_session(server: Server, owner: dict[str, Any]) -> dict[str, Any]:
    """Another session of the owner: its own access token, to log out without harm."""
    return log_in(server, owner["user"]["email"])


def introspections(server: Server) -> float:
    """200 answers of the introspection endpoint so far, both workers summed (/metrics)."""
    text = scrape(server)
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return samples.get(INTROSPECTIONS, 0.0)


def scrape(server: Server) -> str:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Connection": "close"})
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
        return text
    finally:
        conn.close()


def closed_port() -> int:
    """A loopback port nothing listens on (just released by the kernel)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepted_by(checker: TokenChecker, tokens: dict[str, str]) -> list[str]:
    """The names of the tokens `checker.verify` accepts (each should raise InvalidToken)."""
    accepted = []
    for name, token in tokens.items():
        try:
            checker.verify(token)
        except InvalidToken:
            continue
        accepted.append(name)
    return accepted


def set_clock(server: Server, offset_seconds: int) -> None:
    status, _, body = request_json(
        server, "POST", "/_testing/clock", {"offset_seconds": offset_seconds}
    )
    assert status == 200, body


# --- local verification against the JWKS ------------------------------------------------------


def test_verify_accepts_a_real_access_token(server, owner):
    claims = TokenChecker(server.base_url).verify(owner["access_token"])

    assert claims["sub"] == owner["user"]["id"]
    assert claims["org"] == owner["user"]["organization"]["id"]
    assert (claims["type"], claims["iss"], claims["aud"]) == ("access", "authapp", "authapp")
    assert claims["sid"]
    assert claims["exp"] > claims["iat"]


def test_verify_refuses_a_tampered_token(server, owner):
    header, payload, signature = owner["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other = sign_up(server)["user"]["id"]
    forged_payload = _b64url(json.dumps({**claims, "sub": other}).encode())
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    tampered = {
        "another sub": f"{header}.{forged_payload}.{signature}",
        "another signature": f"{header}.{payload}.{flipped}",
    }

    assert accepted_by(TokenChecker(server.base_url), tampered) == []


def _forgeries(server: Server, token: str) -> dict[str, str]:
    """Tokens with the real claims that only the JWKS's key can tell from the real one."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    status, _, jwks = request_json(server, "GET", "/.well-known/jwks.json")
    assert status == 200
    assert [key["kid"] for key in jwks["keys"]] == [header["kid"]]
    public_pem = jwt.PyJWK(jwks["keys"][0]).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = ".".join(
        _b64url(json.dumps(part).encode())
        for part in ({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}, claims)
    )
    confused = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    unsigned = ".".join(
        _b64url(json.dumps(part).encode()) for part in ({"alg": "none", "typ": "JWT"}, claims)
    )
    return {
        "public key as HMAC secret": f"{signing_input}.{_b64url(confused)}",
        "alg none": f"{unsigned}.",
        "stranger key, real kid": jwt.encode(claims, stranger, "RS256", {"kid": header["kid"]}),
        "stranger key, unknown kid": jwt.encode(claims, stranger, "RS256", {"kid": "unknown"}),
        "no kid": jwt.encode(claims, stranger, "RS256"),
        "garbage": "not.a.token",
    }


def test_verify_refuses_forged_tokens(server, owner):
    forged = _forgeries(server, owner["access_token"])

    assert accepted_by(TokenChecker(server.base_url), forged) == []


def test_verify_refuses_another_audience_or_issuer(server, owner):
    token = owner["access_token"]

    with pytest.raises(InvalidToken):
        TokenChecker(server.base_url, audience="billing").verify(token)
    with pytest.raises(InvalidToken):
        TokenChecker(server.base_url, issuer="https://elsewhere.example").verify(token)


def test_verify_refuses_a_refresh_token(server, owner):
    with pytest.raises(InvalidToken):
        TokenChecker(server.base_url).verify(owner["refresh_token"])


def test_verify_refuses_an_expired_token(server, owner):
    """authapp's testing clock set an hour back: the token it issues expired 45 minutes ago by
    the wall clock the checker reads; with an hour's leeway it would still pass."""
    set_clock(server, -HOUR)
    try:
        token = new_session(server, owner)["access_token"]
    finally:
        set_clock(server, 0)

    with pytest.raises(InvalidToken):
        TokenChecker(server.base_url).verify(token)
    lenient = TokenChecker(server.base_url, leeway=2 * HOUR)
    assert lenient.verify(token)["sub"] == owner["user"]["id"]


# --- introspection ------------------------------------------------------------------------------


def test_a_live_token_is_active_and_inactive_after_logout(server, owner, api_key):
    token = new_session(server, owner)["access_token"]
    checker = TokenChecker(server.base_url, api_key=api_key, introspection_cache_seconds=0)

    answer = checker.introspect(token)
    assert answer["active"] is True
    user = owner["user"]
    assert (answer["sub"], answer["org"]) == (user["id"], user["organization"]["id"])
    assert "tokens:introspect" in answer["permissions"]
    assert checker.check(token)["sid"] == answer["sid"]

    status, _, body = request_json(server, "POST", "/api/v1/auth/logout", {}, bearer(token))
    assert status == 204, body

    assert checker.introspect(token) == {"active": False}
    with pytest.raises(InvalidToken):
        checker.check(token)
    # The trade-off: the signature still holds until the token expires.
    assert checker.check(token, revocation=False)["sid"] == answer["sid"]


def test_introspection_of_garbage_is_inactive(server, api_key):
    checker = TokenChecker(server.base_url, api_key=api_key, introspection_cache_seconds=0)

    for token in ("garbage", "a.b.c", "", "x" * 9000, "\u00e9t\u00e9"):
        assert checker.introspect(token) == {"active": False}
        with pytest.raises(InvalidToken):
            checker.check(token)


def test_the_cache_answers_a_second_call_without_a_request(server, owner, api_key):
    token = new_session(server, owner)["access_token"]
    cached = TokenChecker(server.base_url, api_key=api_key, introspection_cache_seconds=60)
    uncached = TokenChecker(server.base_url, api_key=api_key, introspection_cache_seconds=0)
    before = introspections(server)

    first = cached.introspect(token)
    second = cached.introspect(token)

    assert first["active"] is True
    assert second == first
    assert introspections(server) == before + 1
    status, _, _ = request_json(server, "POST", "/api/v1/auth/logout", {}, bearer(token))
    assert status == 204
    # Within its period the cached answer outlives the logout; a fresh question does not.
    assert cached.check(token)["sub"] == owner["user"]["id"]
    assert uncached.introspect(token) == {"active": False}
    assert introspections(server) == before + 2


def test_the_cache_is_bounded_and_drops_the_oldest_first():
    cache = _AnswerCache(3)
    for number in range(5):
        cache.put(f"digest {number}", {"active": True, "n": number}, 60)

    assert [cache.get(f"digest {number}") for number in (0, 1)] == [None, None]
    assert cache.get("digest 4") == {"active": True, "n": 4}
    answer = cache.get("digest 2")
    assert answer is not None
    answer["n"] = "changed by a caller"
    assert cache.get("digest 2") == {"active": True, "n": 2}


def test_a_key_without_the_scope_is_unavailable_not_invalid(server, owner):
    """A service's own misconfiguration must not read as its users' tokens being bad."""
    checker = TokenChecker(server.base_url, api_key=make_key(server, owner, ["users:read"]))

    with pytest.raises(AuthappUnavailable):
        checker.check(owner["access_token"])


# --- authapp out of reach ----------------------------------------------------------------------


def test_a_closed_port_is_unavailable(owner):
    checker = TokenChecker(f"http://127.0.0.1:{closed_port()}", api_key="ak_0_x", timeout=2)

    with pytest.raises(AuthappUnavailable):
        checker.introspect(owner["access_token"])
    with pytest.raises(AuthappUnavailable):
        checker.check(owner["access_token"])
    with pytest.raises(AuthappUnavailable):
        checker.verify(owner["access_token"])
