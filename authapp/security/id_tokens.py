"""An OpenID Connect ID token, checked (OpenID Connect Core 1.0 §3.1.3.7; docs/federation.md
"What is checked"): its signature against the provider's published keys, with public-key
algorithms only; `iss` the configured issuer, `aud` (and `azp`) this client, `exp`, `iat` and
`nbf` against authapp's clock, `nonce` the one this browser's flow sent, `at_hash` the access
token's. Authlib's claim rules (authlib.oidc.core) on joserfc's signature check: no JOSE code of
our own. Pure: the keys arrive as values, fetched off the request thread."""

from __future__ import annotations

from typing import Any

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError, MissingKeyError
from joserfc.jwk import KeySet

# Never `none`, never HS256 with the client secret as the key: what a provider signs with its
# own published key is what proves the provider said it.
PUBLIC_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
LEEWAY_SECONDS = 60  # clocks of two servers differ a little; an ID token lives minutes


class IdTokenRefused(Exception):
    """The ID token does not prove this sign-in; `reason` is for the audit trail only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownSigningKey(IdTokenRefused):
    """Signed with a key the set lacks: the provider may have rotated; fetch its keys again."""

    def __init__(self) -> None:
        super().__init__("unknown_signing_key")


def checked_claims(
    id_token: str,
    *,
    jwks: dict[str, Any],
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str,
    now: int,
    algorithms: list[str] | None = None,
) -> dict[str, Any]:
    """The claims of `id_token`, every check passed. Raises IdTokenRefused."""
    allowed = [alg for alg in (algorithms or PUBLIC_KEY_ALGORITHMS) if alg in PUBLIC_KEY_ALGORITHMS]
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        token = jwt.decode(id_token, keys, algorithms=allowed or list(PUBLIC_KEY_ALGORITHMS))
    except (InvalidKeyIdError, MissingKeyError):  # no key of that id, or none at all
        raise UnknownSigningKey() from None
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise IdTokenRefused(f"bad_signature: {type(exc).__name__}") from None
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "values": [client_id]},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    try:
        claims.validate(now=now, leeway=LEEWAY_SECONDS)
    except JoseError as exc:
        raise IdTokenRefused(f"bad_claims: {exc}") from None
    if not isinstance(token.claims.get("sub"), str) or not token.claims["sub"]:
        raise IdTokenRefused("bad_claims: sub")
    return dict(token.claims)
