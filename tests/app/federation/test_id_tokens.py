"""security/id_tokens.py on ID tokens a real provider signed (tests/oidc_peer.py): each check
of OpenID Connect Core §3.1.3.7 refuses the token it is there for."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt as pyjwt
import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from authapp.security import id_tokens
from authapp.security.id_tokens import IdTokenRefused, UnknownSigningKey
from tests.app.federation.conftest import CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID
from tests.oidc_peer import OidcProvider, sign_in_at_provider

REDIRECTS = {
    CLIENT_ID: "http://localhost/login/with/idp/callback",
    OTHER_CLIENT_ID: "http://localhost/elsewhere",
}


@dataclass
class Issued:
    id_token: str
    access_token: str
    jwks: dict[str, Any]
    claims: dict[str, Any]


def _issued(provider: OidcProvider, client_id: str, nonce: str) -> Issued:
    """A code flow by hand, as `client_id`: its ID token, access token and the keys."""
    metadata = requests.get(provider.discovery_url, timeout=10).json()
    verifier = secrets.token_urlsafe(48)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECTS[client_id],
            "scope": "openid email profile",
            "state": "s",
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    back = sign_in_at_provider(
        f"{metadata['authorization_endpoint']}?{query}", "ada", redirect_prefix=REDIRECTS[client_id]
    )
    code = parse_qs(urlsplit(back).query)["code"][0]
    token = requests.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECTS[client_id],
            "code_verifier": verifier,
        },
        auth=(client_id, CLIENT_SECRET),
        timeout=10,
    ).json()
    jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
    claims = pyjwt.decode(token["id_token"], options={"verify_signature": False})
    return Issued(token["id_token"], token["access_token"], jwks, claims)


@pytest.fixture(scope="module")
def ours(provider: OidcProvider) -> Issued:
    return _issued(provider, CLIENT_ID, "our-nonce")


def _check(issued: Issued, provider: OidcProvider, **changed: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "jwks": issued.jwks,
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "nonce": "our-nonce",
        "access_token": issued.access_token,
        "now": issued.claims["iat"] + 5,
        **changed,
    }
    token = arguments.pop("id_token", issued.id_token)
    return id_tokens.checked_claims(token, **arguments)


def test_a_genuine_id_token_gives_its_claims(ours: Issued, provider: OidcProvider):
    claims = _check(ours, provider)

    assert claims["sub"] == "ada"
    assert claims["email"] == "ada@example.com"
    assert claims["email_verified"] is True


def test_another_clients_id_token_is_refused(provider: OidcProvider):
    """Wrong audience: a token the provider issued to another service, replayed at us."""
    theirs = _issued(provider, OTHER_CLIENT_ID, "our-nonce")

    with pytest.raises(IdTokenRefused, match="aud"):
        _check(theirs, provider)


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"nonce": "another-flows-nonce"}, "nonce"),
        ({"issuer": "http://127.0.0.1:1"}, "iss"),
        ({"access_token": "not-the-one-issued"}, "at_hash"),
    ],
)
def test_a_claim_that_does_not_match_the_flow_is_refused(
    ours: Issued, provider: OidcProvider, changed: dict[str, str], why: str
):
    with pytest.raises(IdTokenRefused, match=why):
        _check(ours, provider, **changed)


def test_an_expired_id_token_is_refused_past_the_leeway(ours: Issued, provider: OidcProvider):
    expiry = ours.claims["exp"]
    _check(ours, provider, now=expiry + id_tokens.LEEWAY_SECONDS - 5)  # clocks differ a little

    with pytest.raises(IdTokenRefused, match="exp"):
        _check(ours, provider, now=expiry + id_tokens.LEEWAY_SECONDS + 5)


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_a_changed_payload_breaks_the_signature(ours: Issued, provider: OidcProvider):
    header, _, signature = ours.id_token.split(".")
    forged = f"{header}.{_b64({**ours.claims, 'sub': 'someone-else'})}.{signature}"

    with pytest.raises(IdTokenRefused, match="bad_signature"):
        _check(ours, provider, id_token=forged)


def test_unsigned_and_shared_secret_tokens_are_refused(ours: Issued, provider: OidcProvider):
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(ours.claims)}."
    with_secret = pyjwt.encode(ours.claims, CLIENT_SECRET, algorithm="HS256")

    for token in (unsigned, with_secret, "not a token", ""):
        with pytest.raises(IdTokenRefused):
            _check(ours, provider, id_token=token)


def test_a_key_the_set_lacks_asks_for_the_keys_again(ours: Issued, provider: OidcProvider):
    other = {**ours.jwks["keys"][0], "kid": "rotated-away"}
    for jwks in ({"keys": []}, {"keys": [other]}):
        with pytest.raises(UnknownSigningKey):
            _check(ours, provider, jwks=jwks)
