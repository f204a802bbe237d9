"""Self-service passkeys (docs/api.md "Passkeys"): register (options, then the browser's
answer), list, rename, remove. Removing the last passkey takes the password again, so a stolen
session cannot take the account's phishing-resistant way in away quietly. Each function owns
its commit."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from flask import current_app

from authapp.auth import passkey_checks
from authapp.auth.principals import Principal
from authapp.auth.services import reauthentication, security_mail
from authapp.models import Passkey, User
from authapp.models.base import is_id
from authapp.platform.errors import Conflict, NotFound, ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit, passkeys
from authapp.security.passkeys import PasskeyRefused, RelyingParty
from authapp.settings.verified import require_verified_email

NOT_FOUND = "No such passkey."


class InvalidPasskey(ValidationFailed):
    """A registration answer that does not check out: 422 `invalid_passkey`."""

    code = "invalid_passkey"

    def __init__(self, message: str) -> None:
        super().__init__({"credential": [message]}, message)


def listed(user: User) -> list[Passkey]:
    return passkey_checks.passkeys_of(user.id)


def registration_options(
    principal: Principal, user: User, party: RelyingParty, password: str
) -> dict[str, Any]:
    """Creation options with a challenge for this session only. The password is asked again,
    as for TOTP: a stolen session must not plant a passkey that outlives a password change.
    Raises Forbidden(email_not_verified) before the address is confirmed (a passkey made then
    would be the pre-account hijacker's: docs/security.md "Unconfirmed accounts"),
    ValidationFailed on `password`, Conflict(too_many_passkeys) at PASSKEYS_PER_USER."""
    require_verified_email(principal)
    reauthentication.require_password(
        principal, user, password, failed_event="passkey.register_failed", reason="bad_password"
    )
    registered = passkey_checks.credential_ids(user.id)
    _check_room(len(registered))
    challenge = passkey_checks.issue_challenge(
        "register", user_id=user.id, session_id=principal.session_id
    )
    db.session.commit()
    return passkeys.registration_options(
        party,
        challenge=challenge,
        user_id=user.id,
        user_name=user.email,
        display_name=user.full_name or user.email,
        registered=registered,
    )


def register(
    principal: Principal, user: User, party: RelyingParty, credential: Any, name: str
) -> Passkey:
    """Keep the passkey the browser created for those options. Raises InvalidPasskey (the
    answer is malformed, for another site or challenge, or the challenge is spent or expired),
    Conflict(passkey_exists, too_many_passkeys)."""
    try:
        answer = passkeys.read_registration(credential)
        challenge = passkeys.registration_challenge(answer)
        if not passkey_checks.claim_registration_challenge(
            challenge, user_id=user.id, session_id=principal.session_id
        ):
            raise PasskeyRefused("challenge_not_live")
        new = passkeys.verify_registration(party, answer, challenge)
    except PasskeyRefused as exc:
        audit.by_principal("passkey.register_failed", principal, user_id=user.id, why=exc.reason)
        db.session.commit()  # the audit row, and the challenge spent
        raise InvalidPasskey(_register_refusal(exc.reason)) from None
    db.session.commit()  # the challenge stays spent, whatever the checks below answer
    _lock(user)
    registered = len(passkey_checks.credential_ids(user.id))
    _check_room(registered)
    if db.session.scalar(sa.select(Passkey.id).where(Passkey.credential_id == new.credential_id)):
        raise Conflict("This passkey is registered already.", code="passkey_exists")
    name = name or f"Passkey {registered + 1}"
    passkey = Passkey(user_id=user.id, name=name, **dataclasses.asdict(new))
    db.session.add(passkey)
    try:
        db.session.flush()
    except sa.exc.IntegrityError:  # the same passkey, registered by a concurrent request
        db.session.rollback()
        raise Conflict("This passkey is registered already.", code="passkey_exists") from None
    audit.by_principal("passkey.registered", principal, user_id=user.id, passkey_id=passkey.id)
    security_mail.tell_owner(user, "passkeys_changed", added=True, passkey_name=passkey.name)
    return passkey


def rename(principal: Principal, user: User, passkey_id: str, name: str) -> Passkey:
    passkey = _own(user, passkey_id)
    passkey.name = name
    audit.by_principal("passkey.renamed", principal, user_id=user.id, passkey_id=passkey.id)
    db.session.commit()
    return passkey


def remove(principal: Principal, user: User, passkey_id: str, password: str | None) -> None:
    """Raises NotFound, or ValidationFailed on `password` when this is the account's last
    passkey and the password is missing or wrong."""
    _lock(user)
    passkey = _own(user, passkey_id)
    if len(passkey_checks.credential_ids(user.id)) == 1:
        if not password:
            raise ValidationFailed(
                {"password": ["Enter your password to remove your last passkey."]},
                "Enter your password to remove your last passkey.",
            )
        reauthentication.require_password(
            principal, user, password, failed_event="passkey.remove_failed", reason="bad_password"
        )
    db.session.delete(passkey)
    audit.by_principal("passkey.removed", principal, user_id=user.id, passkey_id=passkey.id)
    security_mail.tell_owner(user, "passkeys_changed", added=False, passkey_name=passkey.name)


def _lock(user: User) -> None:
    """The account's row, locked until the commit: counting its passkeys and acting on the
    count (the last one; the limit) happen one request at a time."""
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())


def _own(user: User, passkey_id: str) -> Passkey:
    """The account's passkey `passkey_id`; another account's is as unknown as none (AC-2)."""
    passkey = db.session.get(Passkey, passkey_id) if is_id(passkey_id) else None
    if passkey is None or passkey.user_id != user.id:
        raise NotFound(NOT_FOUND)
    return passkey


def _check_room(registered: int) -> None:
    limit = current_app.config["PASSKEYS_PER_USER"]
    if registered >= limit:
        raise Conflict(
            f"An account can have {limit} passkeys; remove one first.", code="too_many_passkeys"
        )


def _register_refusal(reason: str) -> str:
    if reason == "challenge_not_live":
        return "The passkey set-up expired or was finished already; start again."
    return "The passkey's answer could not be verified; try again."
