"""Device cookies (docs/security.md "Login back-off and device cookies"; OWASP "Slow down online
guessing attacks with device cookies"): a browser or client where an account logged in successfully
carries a signed cookie naming the account and a random device id. With it, a login of that
account is held only by the device's own failures, never by failures other clients caused.

The cookie is signed with SECRET_KEY and the account's password hash, so it is valid for one
account only and a password change or reset voids every device cookie of the account. It is
read by a login only: an authenticated request never looks at it.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from authapp.models import User
from authapp.models.base import new_id


def _serializer(user: User) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        current_app.config["SECRET_KEY"],
        salt=f"authapp.device-cookie:{user.password_hash}",
        signer_kwargs={"digest_method": hashlib.sha256},
    )


def recognise(cookie: str | None, user: User | None) -> str | None:
    """The device id of a valid device cookie of `user`, else None (no cookie, another
    account's, expired, forged, or issued before the password last changed)."""
    if not cookie or user is None:
        return None
    try:
        claims = _serializer(user).loads(cookie, max_age=current_app.config["DEVICE_COOKIE_TTL"])
    except BadData:
        return None
    if not isinstance(claims, dict) or claims.get("user") != user.id:
        return None
    device = claims.get("device")
    return device if isinstance(device, str) else None


def issue(user: User, device_id: str | None) -> str:
    """A device cookie for `user` after a successful login: the device keeps its id, a new
    device gets one."""
    return _serializer(user).dumps({"user": user.id, "device": device_id or new_id()})
