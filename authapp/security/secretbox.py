"""Secrets the service must read back (webhook and TOTP secrets), encrypted at rest with Fernet
under DATA_ENCRYPTION_KEY."""

from __future__ import annotations

from cryptography.fernet import Fernet
from flask import current_app


def _fernet() -> Fernet:
    return Fernet(current_app.config["DATA_ENCRYPTION_KEY"])


def seal(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def open_sealed(sealed: str) -> str:
    return _fernet().decrypt(sealed.encode()).decode()
