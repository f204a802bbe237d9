"""API key material: `ak_<prefix>_<secret>`, a 256-bit secret, stored only as SHA-256 (CS-2)."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from authapp.security.digests import sha256_hex

KEY_FORMAT = re.compile(r"\Aak_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, in the answer that creates it
    prefix: str
    key_hash: str


def generate() -> NewKey:
    prefix = secrets.token_hex(6)  # 48 bits: the unique index tells keys apart, not the secret
    key = f"ak_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, key_hash=digest(key))


def digest(key: str) -> str:
    return sha256_hex(key)  # the secret has 256 bits: nothing to brute-force (CS-2)


def prefix_of(presented: str) -> str | None:
    match = KEY_FORMAT.match(presented)
    return match[1] if match else None


def matches(presented: str, key_hash: str) -> bool:
    return hmac.compare_digest(digest(presented), key_hash)
