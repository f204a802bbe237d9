"""Scale-out: the set-up these tests share, and why, is scale_out.py's docstring.

This part: a signing-key rotation half done."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.server.conftest import bearer
from tests.server.scale_out import ME, Pair, answers, call, every, log_in, masters, refresh, sign_up

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
    """Mid-rotation from RS256 to EdDSA, as docs/deployment.md "Signing keys" does it: every host's
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
