"""A real OpenID Connect provider for the federation tests, and a browser's walk through its pages.

`oidc_provider` runs tests/oidc/provider.mjs (the certified oidc-provider package, on Node) on a
free loopback port: any login name is an account there, and the email address, its verification
and the name follow from the name (see provider.mjs). `sign_in_at_provider` signs in the way a
browser without JavaScript would, over plain HTTP, and stops at the redirect back to the client,
which the test then hands to authapp (or to its own client code). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import requests
from requests.cookies import RequestsCookieJar

from tests.servers import free_port

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
PROVIDER = OIDC_DIR / "provider.mjs"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
PASSWORD = "any password"  # the provider accepts every password
MAX_STEPS = 10  # redirects and forms of one sign-in; more is a loop


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    port: int
    discovery_url: str


@contextmanager
def oidc_provider(clients: list[dict[str, Any]]) -> Iterator[OidcProvider]:
    """A started provider knowing `clients` ({client_id, client_secret, redirect_uris}; the
    secret authenticates them as client_secret_basic or client_secret_post); stopped, its pipes
    closed, on exit."""
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("tests/oidc/node_modules is missing: run `make e2e-tools`")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "OIDC_CLIENTS": json.dumps(clients)}
    command = [shutil.which("node") or "node", str(PROVIDER)]
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            command, cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE, stderr=stderr
        ) as process,
    ):
        try:
            issuer = _await_ready(process, stderr)
            yield OidcProvider(issuer, port, f"{issuer}/.well-known/openid-configuration")
        finally:
            _stop(process)


def _await_ready(process: subprocess.Popen[bytes], stderr: IO[bytes]) -> str:
    """The issuer the provider's `ready <issuer>` line names, once it is listening."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
    line = process.stdout.readline().decode() if readable else ""
    if line.startswith("ready "):
        return line.removeprefix("ready ").strip()
    _stop(process)  # first, so that its stderr is complete
    stderr.seek(0)
    raise RuntimeError(
        f"the OpenID provider did not start within {READY_TIMEOUT} s "
        f"(exit status {process.returncode}): {stderr.read().decode(errors='replace')}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # provider.mjs closes its server and exits on SIGTERM
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sign_in_at_provider(
    authorization_url: str,
    login: str,
    *,
    redirect_prefix: str,
    cookies: RequestsCookieJar | None = None,
) -> str:
    """Follow the sign-in from `authorization_url` as a browser would: redirects, then each form
    (the login form gets `login` and a password, a consent form is accepted as it is), until a
    redirect to a URL starting with `redirect_prefix`, which is returned without requesting it.
    `cookies`, when given, is the browser's jar: kept across calls, so a second sign-in reuses
    the provider's session (and skips its login form) as a browser would."""
    with requests.Session() as session:
        if cookies is not None:
            session.cookies = cookies
        url, data = authorization_url, None
        for _ in range(MAX_STEPS):
            if url.startswith(redirect_prefix):
                return url
            url, data = _next_step(session, url, data, login)
    raise RuntimeError(f"no redirect to {redirect_prefix} after {MAX_STEPS} steps: at {url}")


def _next_step(
    session: requests.Session, url: str, data: dict[str, str] | None, login: str
) -> tuple[str, dict[str, str] | None]:
    """Request `url` (POST `data` when given): where its redirect or its form leads next."""
    method = "GET" if data is None else "POST"
    response = session.request(method, url, data=data, allow_redirects=False, timeout=10)
    if response.is_redirect:
        return urljoin(url, response.headers["Location"]), None
    form = read_form(response.text)
    if response.status_code != 200 or form is None:
        raise RuntimeError(f"{method} {url}: {response.status_code}, no form: {response.text}")
    return urljoin(url, form.action), form.filled(login)


@dataclass
class Form:
    """A page's first form: where it posts, and its named inputs with their values."""

    action: str = ""
    inputs: dict[str, str] = field(default_factory=dict)

    def filled(self, login: str) -> dict[str, str]:
        """The fields a user submits: `login` typed in, a password, the rest as they come."""
        typed = {"login": login, "password": PASSWORD}
        return {name: typed.get(name, value) for name, value in self.inputs.items()}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and self.form is None:
            self.form = Form(action=attributes.get("action", ""))
        elif tag == "input" and self.form is not None and not self.done and "name" in attributes:
            self.form.inputs[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.done = True


def read_form(html: str) -> Form | None:
    """The first form of `html`, or None when it has none."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.form
