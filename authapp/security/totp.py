"""The second factor's arithmetic, with no database: TOTP (RFC 6238) through pyotp, its QR code
through segno, and recovery codes.

A code is accepted for the current 30-second step and the one before and after it (pyotp's
`valid_window=1`), and only for a step later than the last one accepted, so a code works once
(MF-2). Time is `authapp.platform.clock`, so tests can move it.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets

import pyotp
import segno

from authapp.platform import clock
from authapp.security.digests import sha256_hex

STEP_SECONDS = 30
VALID_WINDOW = 1  # steps either side of now: clocks drift, people type slowly
TOTP_CODE = re.compile(r"\A[0-9]{6}\Z")
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 15  # 120 bits (MF-3 asks for at least 112)


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits, RFC 4226's recommendation


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The `otpauth://` URI an authenticator app reads (from the QR code or pasted)."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code: dark on light whatever the page's colours."""
    return str(
        segno.make(uri, error="m").svg_inline(
            scale=4, dark="#000", light="#fff", title="QR code for your authenticator app"
        )
    )


def current_step() -> int:
    return int(clock.now().timestamp()) // STEP_SECONDS


def looks_like_totp(code: str) -> bool:
    return TOTP_CODE.match(code.strip()) is not None


def matching_step(secret: str, code: str, *, after: int | None) -> int | None:
    """The step within the window whose code is `code` and which is later than `after` (the last
    step accepted), or None."""
    code = code.strip()
    if not TOTP_CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now = current_step()
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes of 120 random bits each, in base32 groups that are easy to copy by hand."""
    return [_format(secrets.token_bytes(RECOVERY_CODE_BYTES)) for _ in range(RECOVERY_CODE_COUNT)]


def _format(raw: bytes) -> str:
    text = base64.b32encode(raw).decode().lower()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def recovery_code_hash(code: str) -> str:
    """The stored form: case, spaces and dashes do not matter, as people retype codes."""
    return sha256_hex(re.sub(r"[\s-]", "", code).lower())
