"""The one way authapp keeps a secret or an identifier it never needs back: its SHA-256."""

from __future__ import annotations

import hashlib


def sha256_hex(text: str) -> str:
    # A fast hash is enough: what goes in carries ≥ 128 random bits, or is only an identifier.
    # Any str hashes, even one with a lone surrogate (JSON's "\ud800" decodes to one): a rate
    # limit's key function must never raise (F12), and such a string is no valid identifier.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
