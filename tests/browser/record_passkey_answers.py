"""Records the answers Chromium's virtual authenticator gives into tests/app/passkeys/recorded/,
for tests/app/passkeys/test_recorded_answers.py to check without a browser. Run by hand, when the
pages' ceremonies change:

    AUTHAPP_TEST_RUN=rec .venv/bin/python -m pytest -p no:cacheprovider \
        tests/browser/record_passkey_answers.py

`make test` never runs it: its name is not test_*.py, so pytest collects it only when named."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from playwright.sync_api import Page, Request, Route, expect

from tests.browser.conftest import log_in_through_form
from tests.browser.test_passkey_journey import (  # noqa: F401  (context: the localhost fixture)
    RECORDED,
    Authenticator,
    add_passkey,
    by_name,
    context,
    log_out,
    path_of_url,
)
from tests.conftest import PASSWORD
from tests.server.conftest import Server, sign_up


def capture(page: Page, options_path: str, answer_path: str) -> Callable[[], dict[str, Any]]:
    """Remembers the challenge the options at `options_path` give and the credential posted
    to `answer_path`; call the result once both went by."""
    seen: dict[str, Any] = {}

    def on_options(route: Route) -> None:
        options = route.fetch()
        seen["challenge"] = options.json()["publicKey"]["challenge"]
        route.fulfill(response=options)

    def on_request(request: Request) -> None:
        if request.method == "POST" and path_of_url(request.url) == answer_path:
            seen["credential"] = json.loads(dict(parse_qsl(request.post_data or ""))["credential"])

    page.route(f"**{options_path}", on_options)
    page.on("request", on_request)
    return lambda: seen


def test_record_browser_answers(page: Page, server: Server) -> None:
    """Writes recorded/registration.json and recorded/assertion.json anew."""
    origin = by_name(server)
    Authenticator(page)
    log_in_through_form(page, sign_up(server, confirmed=True)["user"]["email"], PASSWORD)

    registration = capture(
        page, "/settings/security/passkeys/options", "/settings/security/passkeys"
    )
    add_passkey(page, "Recorded")
    log_out(page)
    page.goto("/login")
    assertion = capture(page, "/login/passkey/options", "/login/passkey")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/")
    expect(page.get_by_test_id("who")).to_be_visible()

    RECORDED.mkdir(parents=True, exist_ok=True)
    for name, seen in (("registration", registration()), ("assertion", assertion())):
        assert set(seen) == {"challenge", "credential"}, seen
        record = {"origin": origin, "rp_id": "localhost", **seen}
        (RECORDED / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
