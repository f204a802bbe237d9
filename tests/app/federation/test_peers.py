"""The federation tests' peers on their own, driven over plain HTTP as a client would, without
authapp: the OpenID Connect provider (tests/oidc_peer.py, oidc-provider on Node) and the
GitHub-style OAuth server (tests/github_peer.py). If a peer drifts (a new oidc-provider that
stops putting the email in the ID token, a code that works twice), these fail, rather than
authapp's sign-in tests failing for a reason that is not authapp's."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from requests.cookies import RequestsCookieJar

from tests.github_peer import GithubServer, github_server, sign_in_at_github
from tests.oidc_peer import OidcProvider, oidc_provider, sign_in_at_provider

CLIENT_ID, CLIENT_SECRET = "authapp", "authapp-secret"
CLIENT = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "redirect_uris": ["http://127.0.0.1:9/callback", "http://localhost:9/callback"],
}
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never requested: the walk stops before it


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with oidc_provider([CLIENT]) as started:
        yield started


@pytest.fixture(scope="module")
def discovery(provider: OidcProvider) -> dict[str, Any]:
    return requests.get(provider.discovery_url, timeout=10).json()  # type: ignore[no-any-return]


def pkce_pair() -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(discovery: dict[str, Any], challenge: str | None, **extra: str) -> str:
    """An authorization URL of the code flow, with state and nonce "st" and "n-1"."""
    params = {"client_id": CLIENT_ID, "response_type": "code", "scope": "openid email profile"}
    params |= {"redirect_uri": REDIRECT_URI, "state": "st", "nonce": "n-1", **extra}
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{discovery['authorization_endpoint']}?{urlencode(params)}"


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def code_for(discovery: dict[str, Any], login: str, challenge: str) -> str:
    redirect = sign_in_at_provider(
        authorize(discovery, challenge), login, redirect_prefix=REDIRECT_URI
    )
    return query_of(redirect)["code"]


def redeem(discovery: dict[str, Any], code: str, verifier: str | None) -> requests.Response:
    """The token request of `code` with client_secret_basic (and the verifier, when given)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier is not None:
        form["code_verifier"] = verifier
    auth = (CLIENT_ID, CLIENT_SECRET)
    return requests.post(discovery["token_endpoint"], data=form, auth=auth, timeout=10)


def id_claims(discovery: dict[str, Any], tokens: dict[str, Any], audience: str) -> dict[str, Any]:
    """The ID token's claims, its RS256 signature checked against the provider's JWKS."""
    key = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(tokens["id_token"])
    issuer = discovery["issuer"]
    return jwt.decode(  # type: ignore[no-any-return]
        tokens["id_token"], key, algorithms=["RS256"], audience=audience, issuer=issuer
    )


def test_discovery_names_the_issuer_and_its_endpoints(
    provider: OidcProvider, discovery: dict[str, Any]
) -> None:
    assert discovery["issuer"] == provider.issuer == f"http://127.0.0.1:{provider.port}"
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert discovery[endpoint].startswith(provider.issuer)
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert [(key["kty"], key["alg"]) for key in keys] == [("RSA", "RS256")]
    assert "d" not in keys[0]  # the public half only


@pytest.mark.parametrize(
    "redirect_uri", ["http://127.0.0.1:9/callback", "http://localhost:9/callback"]
)
def test_the_code_flow_signs_in_with_a_verified_email(
    discovery: dict[str, Any], redirect_uri: str
) -> None:
    verifier, challenge = pkce_pair()
    url = authorize(discovery, challenge, redirect_uri=redirect_uri)
    redirect = sign_in_at_provider(url, "alice", redirect_prefix=redirect_uri)
    answer = query_of(redirect)
    assert answer["state"] == "st"
    assert answer["iss"] == discovery["issuer"]  # RFC 9207, on by default
    form = {"grant_type": "authorization_code", "code": answer["code"]}
    form |= {"redirect_uri": redirect_uri, "code_verifier": verifier}
    auth = (CLIENT_ID, CLIENT_SECRET)
    tokens = requests.post(discovery["token_endpoint"], data=form, auth=auth, timeout=10).json()
    claims = id_claims(discovery, tokens, CLIENT_ID)
    assert (claims["sub"], claims["nonce"]) == ("alice", "n-1")
    assert (claims["email"], claims["email_verified"]) == ("alice@example.com", True)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    userinfo = requests.get(discovery["userinfo_endpoint"], headers=bearer, timeout=10).json()
    assert userinfo == {
        "sub": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "alice",
        "preferred_username": "alice",
    }


def test_an_unverified_login_gives_an_unverified_email(discovery: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    tokens = redeem(discovery, code_for(discovery, "unverified-bob", challenge), verifier).json()
    claims = id_claims(discovery, tokens, CLIENT_ID)
    assert (claims["email"], claims["email_verified"]) == ("unverified-bob@example.com", False)


def test_a_login_with_an_at_sign_is_the_email(discovery: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    tokens = redeem(discovery, code_for(discovery, "carol@corp.test", challenge), verifier).json()
    assert id_claims(discovery, tokens, CLIENT_ID)["email"] == "carol@corp.test"


def test_a_code_works_once(discovery: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(discovery, "dave", challenge)
    assert redeem(discovery, code, verifier).status_code == 200
    again = redeem(discovery, code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_a_code_needs_its_pkce_verifier(discovery: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(discovery, "erin", challenge)
    refused = redeem(discovery, code, None)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    wrong = redeem(discovery, code_for(discovery, "erin", challenge), pkce_pair()[0])
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")


def test_an_authorization_without_pkce_is_refused(discovery: dict[str, Any]) -> None:
    url = authorize(discovery, None)
    answer = query_of(sign_in_at_provider(url, "frank", redirect_prefix=REDIRECT_URI))
    assert answer["error"] == "invalid_request"
    assert "code" not in answer


def test_the_client_secret_may_come_in_the_form_body(discovery: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()  # client_secret_post, for a client of client_secret_basic
    form = {"grant_type": "authorization_code", "code": code_for(discovery, "gina", challenge)}
    form |= {"redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    form |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    tokens = requests.post(discovery["token_endpoint"], data=form, timeout=10).json()
    assert id_claims(discovery, tokens, CLIENT_ID)["sub"] == "gina"


def test_a_second_sign_in_in_one_browser_reuses_the_provider_session(
    discovery: dict[str, Any],
) -> None:
    browser = RequestsCookieJar()
    for login in ("harry", "someone-else"):  # the second walk meets no login form to type in
        verifier, challenge = pkce_pair()
        url = authorize(discovery, challenge)
        redirect = sign_in_at_provider(url, login, redirect_prefix=REDIRECT_URI, cookies=browser)
        tokens = redeem(discovery, query_of(redirect)["code"], verifier).json()
        assert id_claims(discovery, tokens, CLIENT_ID)["sub"] == "harry"


@pytest.fixture
def github() -> Iterator[GithubServer]:
    with github_server() as server:
        yield server


def github_code(github: GithubServer, login: str) -> str:
    query = {"client_id": github.client_id, "redirect_uri": REDIRECT_URI, "state": "gh-st"}
    url = f"{github.base_url}/login/oauth/authorize?{urlencode(query | {'scope': 'user:email'})}"
    answer = query_of(sign_in_at_github(url, login, redirect_prefix=REDIRECT_URI))
    assert answer["state"] == "gh-st"
    return answer["code"]


def github_token(github: GithubServer, code: str, secret: str = "github-secret") -> Any:
    form = {"client_id": github.client_id, "client_secret": secret, "code": code}
    url = f"{github.base_url}/login/oauth/access_token"
    accept = {"Accept": "application/json"}
    form |= {"redirect_uri": REDIRECT_URI}
    return requests.post(url, data=form, headers=accept, timeout=10).json()


def test_the_github_flow_gives_the_profile_and_the_emails(github: GithubServer) -> None:
    token = github_token(github, github_code(github, "octo"))
    assert (token["token_type"], token["scope"]) == ("bearer", "user:email")
    for scheme in ("Bearer", "token"):
        headers = {"Authorization": f"{scheme} {token['access_token']}"}
        user = requests.get(f"{github.base_url}/user", headers=headers, timeout=10).json()
        assert user == {"id": user["id"], "login": "octo", "name": "octo", "email": None}
    emails = requests.get(f"{github.base_url}/user/emails", headers=headers, timeout=10).json()
    assert emails == [{"email": "octo@example.com", "primary": True, "verified": True}]


def test_github_ids_are_stable_and_emails_may_be_unverified(github: GithubServer) -> None:
    def user(login: str) -> tuple[Any, Any]:
        token = github_token(github, github_code(github, login))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        profile = requests.get(f"{github.base_url}/user", headers=headers, timeout=10).json()
        emails = requests.get(f"{github.base_url}/user/emails", headers=headers, timeout=10)
        return profile["id"], emails.json()[0]["verified"]

    first, verified = user("unverified-oct")
    assert verified is False
    assert user("unverified-oct")[0] == first != user("other")[0]


def test_github_refuses_a_wrong_secret_and_a_reused_code(github: GithubServer) -> None:
    code = github_code(github, "octo")
    assert github_token(github, code, secret="wrong") == {"error": "incorrect_client_credentials"}
    assert "access_token" in github_token(github, code)
    assert github_token(github, code) == {"error": "bad_verification_code"}
    anonymous = requests.get(f"{github.base_url}/user", timeout=10)
    assert anonymous.status_code == 401
