"""A GitHub-style OAuth 2.0 server for the federation tests: GitHub's own protocol, since GitHub
itself cannot run here.

It answers what a GitHub sign-in uses, the way GitHub does: the authorize page (a form with the
login name to sign in as), the code exchange at /login/oauth/access_token (errors in a 200
answer, as GitHub gives them), and the API's /user (no public email) and /user/emails. Any login
name is an account: its email is <login>@example.com, unverified when the name starts with
`unverified`, and its numeric id stays the same for the server's life. One base URL serves the
web and the API parts (github.com and api.github.com at GitHub). Threads of the test process on
a free loopback port, like tests/servers.py's; nothing is mocked.
"""

from __future__ import annotations

import html
import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.oidc_peer import sign_in_at_provider
from tests.servers import free_port

AUTHORIZE = "/login/oauth/authorize"
ACCESS_TOKEN = "/login/oauth/access_token"


@dataclass
class Grant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    login: str
    scope: str


@dataclass
class GithubServer:
    """The server and its state: one registered OAuth app (`client_id`, `client_secret`), the
    codes not yet exchanged, the access tokens issued (token: login) and the accounts' ids."""

    port: int
    client_id: str = "github-client"
    client_secret: str = "github-secret"
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: _HttpServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issue_code(self, grant: Grant) -> str:
        code = secrets.token_hex(10)
        with self.lock:
            self.codes[code] = grant
        return code

    def exchange(self, form: dict[str, str]) -> dict[str, str]:
        """The access token answer for a code exchange, or GitHub's error for it."""
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return {"error": "incorrect_client_credentials"}
        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)  # a code works once
            if grant is None:
                return {"error": "bad_verification_code"}
            if form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
                return {"error": "redirect_uri_mismatch"}
            token = f"gho_{secrets.token_hex(16)}"
            self.tokens[token] = grant.login
        return {"access_token": token, "token_type": "bearer", "scope": grant.scope}

    def account(self, login: str) -> dict[str, Any]:
        with self.lock:
            user_id = self.ids.setdefault(login, 1000 + len(self.ids))
        return {"id": user_id, "login": login, "name": login, "email": None}

    def start(self) -> None:
        self.httpd = _HttpServer(self)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def emails_of(login: str) -> list[dict[str, Any]]:
    verified = not login.startswith("unverified")
    return [{"email": f"{login}@example.com", "primary": True, "verified": verified}]


def authorize_page(query: dict[str, str]) -> str:
    """GitHub's sign-in and authorize steps in one form: the login name to sign in as."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
        for name in ("client_id", "redirect_uri", "state", "scope")
    )
    return (
        "<!doctype html><title>Sign in to GitHub</title>"
        f'<form method="post" action="{AUTHORIZE}">{hidden}'
        '<input type="text" name="login" required><button type="submit">Authorize</button>'
        "</form>"
    )


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, peer: GithubServer) -> None:
        super().__init__(("127.0.0.1", peer.port), _Handler)
        self.peer = peer


class _Handler(http.server.BaseHTTPRequestHandler):
    """The routes; the state is the GithubServer of the HTTP server answering."""

    server: _HttpServer

    @property
    def peer(self) -> GithubServer:
        return self.server.peer

    def do_GET(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        params = dict(parse_qsl(query))
        login = self._bearer_login()
        if path == AUTHORIZE and params.get("client_id") == self.peer.client_id:
            self._send(200, "text/html", authorize_page(params).encode())
        elif path == AUTHORIZE:
            self._send(404, "text/plain", b"Not Found")  # GitHub's answer to an unknown app
        elif login is None:
            self._json(401, {"message": "Requires authentication"})
        elif path == "/user":
            self._json(200, self.peer.account(login))
        elif path == "/user/emails":
            self._json(200, emails_of(login))
        else:
            self._json(404, {"message": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        if self.path == AUTHORIZE:
            self._redirect_back(form)
        elif self.path == ACCESS_TOKEN and "application/json" in self.headers.get("Accept", ""):
            self._json(200, self.peer.exchange(form))
        elif self.path == ACCESS_TOKEN:  # GitHub's default answer: a form
            answer = urlencode(self.peer.exchange(form)).encode()
            self._send(200, "application/x-www-form-urlencoded", answer)
        else:
            self._json(404, {"message": "Not Found"})

    def _redirect_back(self, form: dict[str, str]) -> None:
        fields = (form.get(name, "") for name in ("client_id", "redirect_uri", "login", "scope"))
        grant = Grant(*fields)
        code = self.peer.issue_code(grant)
        query = urlencode({"code": code, "state": form.get("state", "")})
        separator = "&" if urlsplit(grant.redirect_uri).query else "?"
        self.send_response(302)
        self.send_header("Location", f"{grant.redirect_uri}{separator}{query}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _bearer_login(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in {"bearer", "token"}:
            return None
        with self.peer.lock:
            return self.peer.tokens.get(token.strip())

    def _json(self, status: int, body: Any) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def github_server(
    client_id: str = "github-client", client_secret: str = "github-secret"
) -> Iterator[GithubServer]:
    """A started server whose one OAuth app is `client_id`/`client_secret`."""
    server = GithubServer(port=free_port(), client_id=client_id, client_secret=client_secret)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sign_in_at_github(authorization_url: str, login: str, *, redirect_prefix: str) -> str:
    """Sign in as `login` on the authorize page of `authorization_url`: the redirect back to the
    client (starting with `redirect_prefix`, with code and state), not requested."""
    return sign_in_at_provider(authorization_url, login, redirect_prefix=redirect_prefix)
