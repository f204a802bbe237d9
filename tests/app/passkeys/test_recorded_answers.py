"""authapp.security.passkeys on answers Chromium really gave (its DevTools virtual authenticator,
an Ed25519 key), recorded by tests/browser/record_passkey_answers.py (run by hand) into
recorded/: a registration and then an assertion of the same passkey, each with the challenge
of the options the page was given and the origin it was opened at (http://localhost:PORT). No
browser, no database: the checks are pure functions.

The software authenticator (tests/passkey_authenticator.py) is written from the spec by the
same hands as the server; these answers come from a browser, so a shared misreading of the
formats would show here."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from authapp.security.passkeys import (
    NewPasskey,
    PasskeyRefused,
    RelyingParty,
    read_assertion,
    registration_challenge,
    verify_assertion,
    verify_registration,
)
from tests.passkey_authenticator import Authenticator

RECORDED = Path(__file__).resolve().parent / "recorded"


def recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((RECORDED / f"{name}.json").read_text()))


REGISTRATION = recorded("registration")
ASSERTION = recorded("assertion")
OTHER_CHALLENGE = bytes(range(64))


def party(
    record: dict[str, Any], *, rp_id: str | None = None, origin: str | None = None
) -> RelyingParty:
    return RelyingParty(
        id=rp_id or record["rp_id"], name="authapp", origins=(origin or record["origin"],)
    )


def challenge_of(record: dict[str, Any]) -> bytes:
    return base64url_to_bytes(record["challenge"])


def registered() -> NewPasskey:
    return verify_registration(
        party(REGISTRATION), REGISTRATION["credential"], challenge_of(REGISTRATION)
    )


def with_flipped_byte(credential: dict[str, Any], field: str) -> dict[str, Any]:
    """The credential with the last byte of response[`field`] (base64url) inverted."""
    changed = copy.deepcopy(credential)
    raw = bytearray(base64url_to_bytes(changed["response"][field]))
    raw[-1] ^= 0xFF
    changed["response"][field] = bytes_to_base64url(bytes(raw))
    return changed


def verify_recorded_assertion(
    rp: RelyingParty | None = None,
    credential: dict[str, Any] | None = None,
    challenge: bytes | None = None,
) -> tuple[int, bool]:
    return verify_assertion(
        rp or party(ASSERTION),
        ASSERTION["credential"] if credential is None else credential,
        challenge=challenge_of(ASSERTION) if challenge is None else challenge,
        public_key=registered().public_key,
    )


def test_the_recordings_are_of_one_passkey_on_localhost() -> None:
    assert REGISTRATION["rp_id"] == ASSERTION["rp_id"] == "localhost"
    assert REGISTRATION["origin"] == ASSERTION["origin"]
    assert REGISTRATION["origin"].startswith("http://localhost:")
    assert REGISTRATION["credential"]["id"] == ASSERTION["credential"]["id"]
    assert REGISTRATION["challenge"] != ASSERTION["challenge"]


def test_the_recorded_registration_is_accepted() -> None:
    new = registered()

    assert new.credential_id == REGISTRATION["credential"]["id"]
    assert new.public_key  # COSE, as stored
    assert new.transports == "internal"
    assert new.sign_count >= 0
    assert registration_challenge(REGISTRATION["credential"]) == challenge_of(REGISTRATION)


@pytest.mark.parametrize(
    ("rp", "challenge", "reason"),
    [
        (party(REGISTRATION), OTHER_CHALLENGE, "wrong_challenge"),
        (party(REGISTRATION, origin="http://localhost:1"), None, "wrong_origin"),
        (party(REGISTRATION, origin="https://auth.example"), None, "wrong_origin"),
        (party(REGISTRATION, rp_id="auth.example"), None, "wrong_rp_id"),
    ],
    ids=["challenge", "port", "origin", "rp-id"],
)
def test_the_recorded_registration_is_refused_elsewhere(
    rp: RelyingParty, challenge: bytes | None, reason: str
) -> None:
    with pytest.raises(PasskeyRefused) as refused:
        verify_registration(rp, REGISTRATION["credential"], challenge or challenge_of(REGISTRATION))

    assert refused.value.reason == reason


def test_a_tampered_client_data_is_refused() -> None:
    with pytest.raises(PasskeyRefused):
        verify_registration(
            party(REGISTRATION),
            with_flipped_byte(REGISTRATION["credential"], "clientDataJSON"),
            challenge_of(REGISTRATION),
        )


def test_a_tampered_public_key_registers_but_never_signs_in() -> None:
    """Attestation "none" signs nothing: a flipped byte of the public key (the attestation
    object's last) still registers, as WebAuthn says it must, but that key then verifies no
    assertion of the real passkey."""
    tampered = verify_registration(
        party(REGISTRATION),
        with_flipped_byte(REGISTRATION["credential"], "attestationObject"),
        challenge_of(REGISTRATION),
    )
    assert tampered.public_key != registered().public_key

    with pytest.raises(PasskeyRefused):
        verify_assertion(
            party(ASSERTION),
            ASSERTION["credential"],
            challenge=challenge_of(ASSERTION),
            public_key=tampered.public_key,
        )


def test_read_assertion_names_the_recorded_challenge_and_credential() -> None:
    claimed = read_assertion(ASSERTION["credential"])

    assert claimed.credential_id == ASSERTION["credential"]["id"] == registered().credential_id
    assert claimed.challenge == challenge_of(ASSERTION)
    assert claimed.user_handle == base64url_to_bytes(
        ASSERTION["credential"]["response"]["userHandle"]
    )
    assert len(claimed.user_handle or b"") == 16  # the account's random id, nothing else


def test_the_recorded_assertion_is_accepted_with_the_registered_key() -> None:
    count, backed_up = verify_recorded_assertion()

    assert count > registered().sign_count  # Chromium's virtual authenticator counts
    assert backed_up is False


@pytest.mark.parametrize(
    ("rp", "challenge", "reason"),
    [
        (party(ASSERTION), OTHER_CHALLENGE, "wrong_challenge"),
        (party(ASSERTION), challenge_of(REGISTRATION), "wrong_challenge"),
        (party(ASSERTION, origin="http://localhost:1"), None, "wrong_origin"),
        (party(ASSERTION, origin="https://auth.example"), None, "wrong_origin"),
        (party(ASSERTION, rp_id="auth.example"), None, "wrong_rp_id"),
    ],
    ids=["challenge", "registration-challenge", "port", "origin", "rp-id"],
)
def test_the_recorded_assertion_is_refused_elsewhere(
    rp: RelyingParty, challenge: bytes | None, reason: str
) -> None:
    with pytest.raises(PasskeyRefused) as refused:
        verify_recorded_assertion(rp, challenge=challenge)

    assert refused.value.reason == reason


def test_a_flipped_signature_byte_is_refused() -> None:
    with pytest.raises(PasskeyRefused) as refused:
        verify_recorded_assertion(
            credential=with_flipped_byte(ASSERTION["credential"], "signature")
        )

    assert refused.value.reason == "bad_signature"


def test_a_flipped_authenticator_data_byte_is_refused() -> None:
    """The last byte of the counter: the signature covers the authenticator data."""
    tampered = with_flipped_byte(ASSERTION["credential"], "authenticatorData")

    with pytest.raises(PasskeyRefused) as refused:
        verify_recorded_assertion(credential=tampered)

    assert refused.value.reason == "bad_signature"


def test_the_assertion_is_refused_with_another_key() -> None:
    """The registration's public key is what makes the assertion good: the same answer checked
    against another passkey's key (the software authenticator's) is refused."""
    other = Authenticator(origin=ASSERTION["origin"])
    options = {
        "challenge": REGISTRATION["challenge"],
        "rp": {"id": "localhost"},
        "user": {"id": bytes_to_base64url(bytes(16))},
    }
    foreign = verify_registration(
        party(REGISTRATION), other.create(options), challenge_of(REGISTRATION)
    )

    with pytest.raises(PasskeyRefused) as refused:
        verify_assertion(
            party(ASSERTION),
            ASSERTION["credential"],
            challenge=challenge_of(ASSERTION),
            public_key=foreign.public_key,
        )

    assert refused.value.reason == "bad_signature"
