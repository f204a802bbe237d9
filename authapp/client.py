"""Checking authapp's access tokens from another Python service (docs/protecting-services.md).

A service that authapp's users call with `Authorization: Bearer <access token>` has two ways to
tell whether the token is good, with different costs:

- **Local verification** (`TokenChecker.verify`): the signature against the public keys authapp
  publishes at `/.well-known/jwks.json` (only when it signs with an asymmetric key,
  `JWT_PRIVATE_KEY_FILE`), then `iss`, `aud`, `exp`, `iat` and `type`. Fast: no request per
  token once the key set is cached (`jwks_cache_seconds`). But the token cannot learn about
  revocation: after a logout, a revoked session or a suspended member, it stays good until it
  expires (`ACCESS_TOKEN_TTL`, 15 minutes by default).
- **Introspection** (`TokenChecker.introspect`, RFC 7662): authapp itself says whether the
  token is good now, session, user and membership included, to an API key with the
  `tokens:introspect` scope. A revocation counts at once, give or take
  `introspection_cache_seconds`; the price is one request per distinct token per cache period,
  and authapp must be up.

`TokenChecker.check` is the one call a service needs: introspection when it has an API key
(unless the caller passes `revocation=False`), local verification otherwise.

Only PyJWT and the standard library: no Flask, nothing else of authapp. Every method is safe to
call from many threads. Tokens are never logged nor put in an exception's message; the
introspection cache keeps only their SHA-256.
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from typing import Any

import jwt

INTROSPECT_PATH = "/api/v1/auth/introspect"
JWKS_PATH = "/.well-known/jwks.json"
# Public-key algorithms only: no key set can make an HMAC secret, or "none", acceptable.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REQUIRED_CLAIMS = ("sub", "sid", "type", "jti", "iat", "exp", "iss", "aud")  # authapp's own
CACHE_ENTRIES = 10_000  # introspection answers kept: a few MB at most


class InvalidToken(Exception):
    """The token is not, or no longer, a good access token: answer 401."""


class AuthappUnavailable(Exception):
    """authapp could not be asked (network error, timeout, 5xx, rate limit, or a refused API
    key): the token's fate is unknown, answer 503 rather than 401."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """An API key is never sent on to wherever a redirect points."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class _AnswerCache:
    """Introspection answers by the SHA-256 of their token, each until its deadline; at most
    `size` entries, the oldest dropped first. Thread-safe; callers get copies."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[digest]
                return None
        return copy.deepcopy(entry[1])

    def put(self, digest: str, answer: dict[str, Any], seconds: float) -> None:
        if seconds <= 0:
            return
        kept = copy.deepcopy(answer)
        with self._lock:
            self._entries.pop(digest, None)
            self._entries[digest] = (time.monotonic() + seconds, kept)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class TokenChecker:
    """Checks authapp's access tokens for another service; one per process, shared by threads.

    `base_url` is where authapp answers (with its `AUTHAPP_URL_PREFIX`, if mounted), e.g.
    `https://auth.example.com`. `issuer` and `audience` are authapp's `JWT_ISSUER` and
    `JWT_AUDIENCE`. `api_key` (an `ak_…` key with the `tokens:introspect` scope) enables
    introspection. `timeout` bounds every request to authapp, `leeway` the clock skew allowed
    on `exp` and `iat` in local verification.
    """

    def __init__(
        self,
        base_url: str,
        *,
        issuer: str = "authapp",
        audience: str = "authapp",
        api_key: str | None = None,
        introspection_cache_seconds: float = 5.0,
        jwks_cache_seconds: int = 300,
        timeout: float = 3.0,
        leeway: int = 30,
    ) -> None:
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http:// or https:// URL.")
        if jwks_cache_seconds <= 0 or timeout <= 0:
            raise ValueError("jwks_cache_seconds and timeout must be positive.")
        self.base_url = base_url.rstrip("/")
        self.issuer = issuer
        self.audience = audience
        self.api_key = api_key
        self.introspection_cache_seconds = introspection_cache_seconds
        self.timeout = timeout
        self.leeway = leeway
        # PyJWKClient locks itself, caches the key set for `lifespan` and refetches it for an
        # unknown `kid` at most once per cooldown (30 s): a rotated key is found, and a flood
        # of made-up `kid`s costs authapp one request per cooldown.
        self._jwks = jwt.PyJWKClient(
            self.base_url + JWKS_PATH, lifespan=jwks_cache_seconds, timeout=timeout
        )
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._answers = _AnswerCache(CACHE_ENTRIES)

    def check(self, token: str, *, revocation: bool = True) -> dict[str, Any]:
        """The token's claims if it is a good access token, else InvalidToken.

        Without an `api_key`: `verify(token)`. With one: `introspect(token)` (a revoked token
        is refused), whose active answer must also name this checker's issuer and audience;
        `revocation=False` asks for `verify(token)` instead, for a route that prefers speed.
        Either way the answer has `sub` (user id), `sid` (session), `org` (organization), `iss`,
        `aud`, `exp`, `iat` and `jti`; introspection adds `permissions` (the codes the member
        holds now), verification `roles` (the role names when the token was made).
        AuthappUnavailable when authapp could not be asked.
        """
        if self.api_key is None or not revocation:
            return self.verify(token)
        answer = self.introspect(token)
        if answer.get("active") is not True:
            raise InvalidToken("The token is not active.")
        audience = answer.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if answer.get("iss") != self.issuer or self.audience not in audiences:
            raise InvalidToken("The token is for another issuer or audience.")
        return answer

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of `token`, checked locally against authapp's JWKS: a public-key signature
        (never HS*, never "none") by a key the JWKS publishes under the token's `kid`, then
        `iss`, `aud`, `exp` and `iat` (with `leeway`) and `type` "access". Revocation is not
        seen (see the module's docstring). InvalidToken when any check fails, or when authapp
        publishes no keys (it signs with HS256: use introspection); AuthappUnavailable when the
        JWKS cannot be fetched."""
        key = self._signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(f"The token is invalid ({type(exc).__name__}).") from None
        if claims["type"] != "access":
            raise InvalidToken("The token is not an access token.")
        return claims

    def _signing_key(self, token: str) -> jwt.PyJWK:
        """The JWKS key the token's header names, for the algorithm that key is for."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidToken("The token is malformed.") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS or not isinstance(kid, str) or not kid:
            raise InvalidToken("The token's algorithm or key id is not accepted.")
        try:
            key = self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthappUnavailable(f"authapp's JWKS could not be fetched: {exc}") from None
        except jwt.PyJWKSetError:
            raise InvalidToken("authapp publishes no signing keys: use introspection.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The token names a key authapp does not publish.") from None
        if key.algorithm_name != algorithm:
            raise InvalidToken("The token's algorithm is not its key's.")
        return key

    def introspect(self, token: str) -> dict[str, Any]:
        """authapp's introspection answer for `token` (RFC 7662): `{"active": true, "sub", "sid",
        "org", "iss", "aud", "exp", "iat", "jti", "permissions", ...}` for a live access token
        of the API key's organization, else `{"active": false}`.

        Answers, active or not, are kept per SHA-256 of the token for
        `introspection_cache_seconds` (an active one never past its `exp`); 0 asks every time.
        AuthappUnavailable on a network error, a timeout, a redirect, a 5xx, a 429 or a refused
        API key (401, 403); ValueError when the checker has no `api_key`."""
        if self.api_key is None:
            raise ValueError("Introspection needs an api_key with the tokens:introspect scope.")
        if not token or not token.isascii():  # a JWT is ASCII: nothing to ask
            return {"active": False}
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._answers.get(digest)
        if cached is not None:
            return cached
        answer = self._ask(token, self.api_key)
        self._answers.put(digest, answer, self._lifetime(answer))
        return answer

    def _lifetime(self, answer: dict[str, Any]) -> float:
        seconds = self.introspection_cache_seconds
        expires = answer.get("exp")
        if answer["active"] and isinstance(expires, int | float):
            seconds = min(seconds, expires - time.time())
        return seconds

    def _ask(self, token: str, api_key: str) -> dict[str, Any]:
        """One POST to the introspection endpoint, form-encoded as RFC 7662 §2.1 says."""
        form = {"token": token, "token_type_hint": "access_token"}
        request = urllib.request.Request(
            self.base_url + INTROSPECT_PATH,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "X-API-Key": api_key,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            return _refusal(exc.code)
        except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts included
            raise AuthappUnavailable(f"authapp could not be asked: {exc}") from None
        return _answer(body)


def _refusal(status: int) -> dict[str, Any]:
    """What an HTTP error of the introspection endpoint means for the token."""
    if status == 422:  # the `token` field itself refused (too long): nothing authapp issued
        return {"active": False}
    if status in (401, 403):
        raise AuthappUnavailable(
            f"authapp refused the API key (HTTP {status}): check it and its scopes."
        )
    raise AuthappUnavailable(f"authapp answered HTTP {status}.")


def _answer(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        raise AuthappUnavailable("authapp's answer is not JSON.") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
        raise AuthappUnavailable("authapp's answer is not an introspection answer.")
    return answer if answer["active"] else {"active": False}
