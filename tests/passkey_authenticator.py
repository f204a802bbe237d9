"""A software WebAuthn authenticator for the server-side tests.

`Authenticator` speaks WebAuthn's data formats (Level 2/3: authenticator data, attested
credential data, COSE keys, the "none" attestation, client data JSON) and signs with real
ES256 (ECDSA P-256, SHA-256) keys, so the app and server tests can produce genuine signed
registration and assertion responses, in the JSON form a browser's
`PublicKeyCredential.toJSON()` gives, without a browser. (The browser tests use Chromium's
DevTools virtual authenticator instead.)

It is written from the spec, not from a library:

- authenticatorData = rpIdHash (32) | flags (1) | signCount (4, big-endian)
  [| attestedCredentialData = aaguid (16) | credentialIdLength (2) | credentialId
  | credentialPublicKey (COSE_Key, CBOR)];
- attestationObject = CBOR {"fmt": "none", "attStmt": {}, "authData": authenticatorData};
- clientDataJSON = JSON {"type", "challenge" (base64url), "origin", "crossOrigin": false};
- the assertion signature is ECDSA-SHA256 (DER) over authenticatorData || SHA-256(clientDataJSON).

Tampering in a test is editing the returned dicts (or setting `origin`, `rp_id`, the flags or
`counter_step` before a call); `clone()` gives a second authenticator with the same keys and
counts, as a cloned authenticator would have.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["Authenticator", "Credential", "b64url", "unb64url"]

# Authenticator data flags (WebAuthn §6.1).
FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_AT = 0x40  # attested credential data included

# COSE (RFC 9052/9053): kty EC2 = 2, alg ES256 = -7, crv P-256 = 1.
COSE_KTY, COSE_ALG, COSE_EC2_CRV, COSE_EC2_X, COSE_EC2_Y = 1, 3, -1, -2, -3
COSE_KTY_EC2, COSE_ALG_ES256, COSE_CRV_P256 = 2, -7, 1

AAGUID = bytes(16)  # all zeros, as "none" attestation authenticators commonly send


def b64url(data: bytes) -> str:
    """`data` in base64url, without padding (WebAuthn's JSON encoding of bytes)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """The bytes of base64url `text`, padded or not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """One credential (passkey) the authenticator holds.

    `rp_id` is the RP the credential is scoped to (the one that created it); `sign_count` is
    the signature counter last reported.
    """

    id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        """The credential's public key as a CBOR-encoded COSE_Key (EC2, ES256, P-256)."""
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                COSE_KTY: COSE_KTY_EC2,
                COSE_ALG: COSE_ALG_ES256,
                COSE_EC2_CRV: COSE_CRV_P256,
                COSE_EC2_X: numbers.x.to_bytes(32, "big"),
                COSE_EC2_Y: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class Authenticator:
    """A platform authenticator with "none" attestation and ES256 credentials.

    `origin` is what clientDataJSON says. `rp_id`, when set, is the RP id hashed into the
    authenticator data in place of the one the options name (the credential is still scoped
    to, and looked up by, the RP id of the options). `user_verified` and `user_present` set
    the UV and UP flags. Each assertion adds `counter_step` to the credential's sign count;
    0 keeps it at 0, as synced passkeys do. `credentials` holds the credentials by their
    base64url id.
    """

    origin: str = "http://localhost"
    rp_id: str | None = None
    user_verified: bool = True
    user_present: bool = True
    counter_step: int = 1
    credentials: dict[str, Credential] = field(default_factory=dict)

    def create(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """A registration response, in the JSON form a browser's `PublicKeyCredential.toJSON()`
        gives: {"id", "rawId", "type": "public-key", "response": {"clientDataJSON",
        "attestationObject", "transports": ["internal"]}, "clientExtensionResults": {},
        "authenticatorAttachment": "platform"}.

        `options` are creation options in their JSON form (the `publicKey` object: challenge
        base64url, rp {id, name}, user {id base64url, name, displayName}, ...). Keeps the new
        credential (a fresh P-256 key, a random 16-byte credential id, the user handle) in
        `credentials`.
        """
        rp = options.get("rp") or {}
        rp_id = rp.get("id") or self._origin_host()
        credential = Credential(
            id=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=unb64url(options["user"]["id"]),
        )
        attested = (
            AAGUID
            + struct.pack(">H", len(credential.id))
            + credential.id
            + credential.cose_public_key()
        )
        auth_data = self._auth_data(rp_id, FLAG_AT, credential.sign_count) + attested
        client_data = self._client_data("webauthn.create", options["challenge"])
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials[b64url(credential.id)] = credential
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self, options: Mapping[str, Any], *, credential_id: str | None = None
    ) -> dict[str, Any]:
        """An assertion response, in JSON form: {"id", "rawId", "type": "public-key",
        "response": {"clientDataJSON", "authenticatorData", "signature", "userHandle"},
        "clientExtensionResults": {}, "authenticatorAttachment": "platform"}.

        `options` are request options in their JSON form (challenge, rpId, allowCredentials
        [{id, type}], possibly empty). Uses the credential `credential_id` (base64url) if given,
        else the first allowed credential it holds, else, when no credential is listed
        (discoverable credentials), the first one it holds for the options' RP id. Adds
        `counter_step` to that credential's sign count.
        """
        rp_id = options.get("rpId") or self._origin_host()
        credential = self._pick(rp_id, options.get("allowCredentials") or [], credential_id)
        credential.sign_count += self.counter_step
        auth_data = self._auth_data(rp_id, 0, credential.sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def clone(self) -> Authenticator:
        """A copy with the same settings, keys and sign counts whose counts then move on their
        own (a cloned authenticator)."""
        return dataclasses.replace(
            self,
            credentials={
                key: dataclasses.replace(credential) for key, credential in self.credentials.items()
            },
        )

    def _pick(
        self, rp_id: str, allowed: list[Mapping[str, Any]], credential_id: str | None
    ) -> Credential:
        """The credential to assert with (see `get`); LookupError when there is none."""
        if credential_id is not None:
            return self.credentials[b64url(unb64url(credential_id))]
        if allowed:
            for descriptor in allowed:
                key = b64url(unb64url(descriptor["id"]))
                if key in self.credentials:
                    return self.credentials[key]
            raise LookupError("none of the allowed credentials is held")
        for credential in self.credentials.values():
            if credential.rp_id == rp_id:
                return credential
        raise LookupError(f"no credential held for RP id {rp_id!r}")

    def _auth_data(self, rp_id: str, extra_flags: int, sign_count: int) -> bytes:
        """rpIdHash | flags | signCount, hashing `self.rp_id` if set, else `rp_id`."""
        flags = extra_flags
        if self.user_present:
            flags |= FLAG_UP
        if self.user_verified:
            flags |= FLAG_UV
        rp_id_hash = hashlib.sha256((self.rp_id or rp_id).encode("utf-8")).digest()
        return rp_id_hash + bytes([flags]) + struct.pack(">I", sign_count)

    def _client_data(self, type_: str, challenge: str) -> bytes:
        """The clientDataJSON bytes for a ceremony of type `type_`."""
        data = {
            "type": type_,
            "challenge": b64url(unb64url(challenge)),
            "origin": self.origin,
            "crossOrigin": False,
        }
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    def _origin_host(self) -> str:
        """The origin's host: the RP id a browser uses when the options name none."""
        return urlsplit(self.origin).hostname or ""
