"""Signing keys: HS256 with JWT_SECRET_KEY, or an asymmetric key ring (RS256 / EdDSA).

With `JWT_PRIVATE_KEY_FILE` set, tokens are signed with that key and carry its `kid` (the RFC
7638 thumbprint of its public half). Public keys in `JWT_PUBLIC_KEYS_DIR` (`*.pem`) keep
verifying tokens signed before a rotation. Keys come only from configuration: a token naming
an unknown `kid` is refused, and `jwk`/`jku`/`x5u`/`x5c` headers are never read (JW-7).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flask import Flask, current_app
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from authapp.platform.config import ConfigError
from authapp.platform.errors import TokenError
from authapp.platform.extensions import jwt

RING_KEY = "authapp.key_ring"
# The members RFC 7638 hashes for each key type, in its lexicographic order.
THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    algorithm: str
    public_key: Any
    jwk: dict[str, str]


@dataclass(frozen=True)
class KeyRing:
    signing_kid: str
    signing_key: Any
    verifying: dict[str, VerifyingKey]


def _describe(public_key: Any, origin: str) -> VerifyingKey:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise ConfigError(f"{origin}: RSA keys must have at least 2048 bits.")
        algorithm, jwk = "RS256", RSAAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        algorithm, jwk = "EdDSA", OKPAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        raise ConfigError(f"{origin}: only RSA (RS256) and Ed25519 (EdDSA) keys are supported.")
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    public_jwk = {**members, "kid": kid, "alg": algorithm, "use": "sig"}
    return VerifyingKey(kid=kid, algorithm=algorithm, public_key=public_key, jwk=public_jwk)


def _load_ring(private_file: str, public_dir: str) -> KeyRing:
    try:
        private_key = serialization.load_pem_private_key(Path(private_file).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"JWT_PRIVATE_KEY_FILE is not a readable PEM private key: {exc}"
        ) from None
    current = _describe(private_key.public_key(), "JWT_PRIVATE_KEY_FILE")
    verifying = {current.kid: current}
    for path in sorted(Path(public_dir).glob("*.pem")) if public_dir else []:
        try:
            public_key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            message = f"JWT_PUBLIC_KEYS_DIR: {path.name} is not a PEM public key: {exc}"
            raise ConfigError(message) from None
        old = _describe(public_key, f"JWT_PUBLIC_KEYS_DIR/{path.name}")
        verifying.setdefault(old.kid, old)
    return KeyRing(signing_kid=current.kid, signing_key=private_key, verifying=verifying)


def ring() -> KeyRing | None:
    ring: KeyRing | None = current_app.extensions.get(RING_KEY)
    return ring


def signing() -> tuple[Any, str, dict[str, str] | None]:
    """The key, algorithm and extra header tokens are signed with now."""
    current = ring()
    if current is None:
        return current_app.config["JWT_SECRET_KEY"], "HS256", None
    return current.signing_key, current_app.config["JWT_ALGORITHM"], {"kid": current.signing_kid}


def public_jwks() -> dict[str, list[dict[str, str]]]:
    current = ring()
    return {"keys": [key.jwk for key in current.verifying.values()] if current else []}


def _decode_key(header: dict[str, Any], _claims: dict[str, Any]) -> Any:
    current = ring()
    kid = header.get("kid")
    if current is None:
        if kid is not None:
            raise TokenError("The token names a key this service does not have.")
        return current_app.config["JWT_SECRET_KEY"]
    key = current.verifying.get(kid) if isinstance(kid, str) else None
    if key is None or header.get("alg") != key.algorithm:
        raise TokenError("The token names a key this service does not have.")
    return key.public_key


def verifying_key(encoded: str) -> tuple[Any, list[str]]:
    """The key and algorithm a token must be verified with (tokens._decode). With HS256 that
    needs nothing from the token; with a key ring, its header's `kid` picks the key."""
    current = ring()
    if current is None:
        return current_app.config["JWT_SECRET_KEY"], ["HS256"]
    header = pyjwt.get_unverified_header(encoded)
    key = _decode_key(header, {})
    return key, [header["alg"]]


def check_header(header: dict[str, Any]) -> None:
    """After verification: an HS256 token naming a `kid` names a key we do not have (JW-7)."""
    if ring() is None and "kid" in header:
        raise TokenError("The token names a key this service does not have.")


def init_app(app: Flask) -> None:
    if app.config["JWT_PRIVATE_KEY_FILE"]:
        key_ring = _load_ring(app.config["JWT_PRIVATE_KEY_FILE"], app.config["JWT_PUBLIC_KEYS_DIR"])
        app.extensions[RING_KEY] = key_ring
        signing = key_ring.verifying[key_ring.signing_kid]
        app.config["JWT_ALGORITHM"] = signing.algorithm
        app.config["JWT_DECODE_ALGORITHMS"] = sorted(
            {key.algorithm for key in key_ring.verifying.values()}
        )
    # The JWTManager is shared by every app in the process: its loaders look the app up.
    jwt.decode_key_loader(_decode_key)
