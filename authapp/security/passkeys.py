"""WebAuthn ceremonies with the `webauthn` library (Duo Labs): the options a browser needs and
the checks of what its authenticator answers (docs/api.md "Passkeys"). Pure functions of their
arguments: the relying party, the challenge and the stored credential come from the callers.

Every refusal is a PasskeyRefused naming the reason for the audit trail; the client is told
less (auth/services/passkey_logins.py, settings/services/passkeys.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import webauthn
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authapp.security.digests import sha256_hex

MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn §5.8.3 (models/passkey.py sizes its column for it)
# A response is a few hundred bytes; anything far larger is not one (and is not parsed).
MAX_RESPONSE_CHARACTERS = 16_384
T = TypeVar("T")
KNOWN_TRANSPORTS = {transport.value for transport in AuthenticatorTransport}


class PasskeyRefused(Exception):
    """The response does not prove what it must; `reason` is for the audit trail only."""

    def __init__(self, reason: str, *, passkey_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.passkey_id = reason, passkey_id


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the RP id (a domain name), the origins allowed to ask, and how
    long a challenge lives (the browser is told to give up then too)."""

    id: str
    name: str
    origins: tuple[str, ...]
    challenge_seconds: int = 300


@dataclass(frozen=True)
class Presented:
    """A response from navigator.credentials.get(), as its JSON form, with the relying party
    it must have been made for."""

    party: RelyingParty
    credential: Any


@dataclass(frozen=True)
class NewPasskey:
    """What a verified registration yields: all of it is public."""

    credential_id: str
    public_key: bytes
    sign_count: int
    transports: str
    aaguid: str
    backed_up: bool


@dataclass(frozen=True)
class Assertion:
    """A login response, read once before any check: which credential, which challenge, and
    the parsed answer the checks take (`credential`)."""

    credential_id: str
    challenge: bytes
    user_handle: bytes | None
    credential: AuthenticationCredential


def new_challenge() -> bytes:
    return webauthn.helpers.generate_challenge()  # 64 random bytes


def challenge_key(challenge: bytes) -> str:
    """How a challenge is kept: its SHA-256 (security/digests.py), of its base64url text."""
    return sha256_hex(bytes_to_base64url(challenge))


def user_handle(user_id: str) -> bytes:
    """The WebAuthn user handle of an account: its random id's 16 bytes (no email, no name)."""
    return uuid.UUID(user_id).bytes


def user_id_of(handle: bytes) -> str | None:
    try:
        return str(uuid.UUID(bytes=handle))
    except ValueError:
        return None


def registration_options(
    party: RelyingParty,
    *,
    challenge: bytes,
    user_id: str,
    user_name: str,
    display_name: str,
    registered: list[str],
) -> dict[str, Any]:
    """Creation options (JSON form): a discoverable key preferred, user verification required,
    attestation `none`, the account's passkeys excluded (an authenticator holds one each)."""
    options = webauthn.generate_registration_options(
        rp_id=party.id,
        rp_name=party.name,
        user_id=user_handle(user_id),
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=party.challenge_seconds * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(registered),
    )
    return dict(json.loads(webauthn.options_to_json(options)))


def authentication_options(
    party: RelyingParty, *, challenge: bytes, allowed: list[str]
) -> dict[str, Any]:
    """Request options (JSON form): user verification required; `allowed` empty lets the
    authenticator offer any passkey it holds for this RP (discoverable, conditional UI)."""
    options = webauthn.generate_authentication_options(
        rp_id=party.id,
        challenge=challenge,
        timeout=party.challenge_seconds * 1000,
        allow_credentials=_descriptors(allowed),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return dict(json.loads(webauthn.options_to_json(options)))


def verify_registration(party: RelyingParty, response: Any, challenge: bytes) -> NewPasskey:
    """Raises PasskeyRefused unless `response` was made for `challenge` on one of the party's
    origins, for its RP id, with the user verified."""
    credential = _parsed(response, parse_registration_credential_json)
    verified = _verified(
        webauthn.verify_registration_response, party, credential=credential, challenge=challenge
    )
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise PasskeyRefused("credential_id_too_long")
    transports = [
        t.value for t in credential.response.transports or [] if t.value in KNOWN_TRANSPORTS
    ]
    return NewPasskey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=",".join(sorted(set(transports))),
        aaguid=verified.aaguid,
        backed_up=bool(verified.credential_backed_up),
    )


def read_registration(response: Any) -> RegistrationCredential:
    """A registration response (JSON form) parsed once, for registration_challenge and
    verify_registration. Raises PasskeyRefused("malformed")."""
    parsed: RegistrationCredential = _parsed(response, parse_registration_credential_json)
    return parsed


def registration_challenge(response: Any) -> bytes:
    """The challenge a registration response says it answers, before anything is trusted.
    Raises PasskeyRefused("malformed")."""
    credential = _parsed(response, parse_registration_credential_json)
    return _client_data(credential).challenge


def read_assertion(response: Any) -> Assertion:
    """The credential and challenge a login response names, before anything is trusted.
    Raises PasskeyRefused("malformed")."""
    credential = _parsed(response, parse_authentication_credential_json)
    client_data = _client_data(credential)
    if bytes_to_base64url(credential.raw_id) != credential.id:
        raise PasskeyRefused("malformed")
    handle = credential.response.user_handle
    user_handle = bytes(handle) if handle else None
    return Assertion(credential.id, client_data.challenge, user_handle, credential)


def verify_assertion(
    party: RelyingParty, response: Any, *, challenge: bytes, public_key: bytes
) -> tuple[int, bool]:
    """The authenticator's new signature count and whether the credential is backed up.
    Raises PasskeyRefused unless it is signed by `public_key` over `challenge` on one of the
    party's origins, for its RP id, with the user verified. The count is compared by the
    caller, after the signature is known to be good (a forged response must not be able to
    raise a clone alarm)."""
    verified = _verified(
        webauthn.verify_authentication_response,
        party,
        credential=_parsed(response, parse_authentication_credential_json),
        challenge=challenge,
        credential_public_key=public_key,
        credential_current_sign_count=0,
    )
    return verified.new_sign_count, bool(verified.credential_backed_up)


def counter_went_back(stored: int, new: int) -> bool:
    """WebAuthn §6.1.1: with a counter in use (either side non-zero) it must grow; if it did
    not, two copies of the authenticator may exist."""
    return (stored > 0 or new > 0) and new <= stored


def _verified(verify: Callable[..., T], party: RelyingParty, *, challenge: bytes, **rest: Any) -> T:
    """The library's check of an answer for `party` and `challenge`, the user verified; its
    refusal (or a crash on a shape it did not expect) as PasskeyRefused."""
    try:
        return verify(
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=list(party.origins),
            require_user_verification=True,
            **rest,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyRefused(_reason(exc)) from None


def _descriptors(credential_ids: list[str]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c)) for c in credential_ids
    ]


def _parsed(response: Any, parse: Any) -> Any:
    """The library's structure for a JSON response, or PasskeyRefused("malformed"): hostile
    shapes (wrong types, bad base64, huge values) end here, never in a 500. A response parsed
    already (read_assertion, read_registration) is taken as it is."""
    if isinstance(response, AuthenticationCredential | RegistrationCredential):
        return response
    try:
        size = len(json.dumps(response)) if isinstance(response, dict) else None
    except (ValueError, RecursionError):  # nested past what json can write back
        size = None
    if size is None or size > MAX_RESPONSE_CHARACTERS:
        raise PasskeyRefused("malformed")
    try:
        return parse(response)
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError):
        raise PasskeyRefused("malformed") from None


def _client_data(credential: Any) -> Any:
    try:
        return parse_client_data_json(bytes(credential.response.client_data_json))
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise PasskeyRefused("malformed") from None


def _reason(exc: Exception) -> str:
    """A short, fixed reason for the audit trail (the library's message may quote the input)."""
    text = str(exc).lower()
    for needle, reason in (
        ("origin", "wrong_origin"),
        ("rp id", "wrong_rp_id"),
        ("challenge", "wrong_challenge"),
        ("user verification", "user_not_verified"),
        ("verified", "user_not_verified"),
        ("present", "user_not_present"),
        ("signature", "bad_signature"),
    ):
        if needle in text:
            return reason
    return "invalid_response"
