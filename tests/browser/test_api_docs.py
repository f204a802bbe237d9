"""`/api/docs` in Chromium: Swagger UI renders every operation from this origin alone, and the
page's CSP (no `unsafe-inline`, no other host) is never violated (docs/security.md "API docs")."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.server.conftest import Server, request_json

# Runs before the page's own scripts, through the DevTools protocol (which the CSP does not
# govern), and keeps every violation the page reports.
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`);
});
"""


def test_swagger_ui_renders_every_operation_from_this_origin_without_violations(
    page: Page, server: Server
) -> None:
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(WATCH_CSP)

    response = page.goto("/api/docs")

    assert response is not None
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy, policy
    assert "http" not in policy, policy
    login = page.locator(".opblock-summary-path", has_text="/api/v1/auth/login").first
    expect(login).to_be_visible()
    operations = server_operations(server)
    expect(page.locator(".opblock")).to_have_count(operations)
    assert page.evaluate("window.__violations") == []
    assert errors == []
    origins = {urlsplit(url)[:2] for url in requested if not url.startswith("data:")}
    assert origins == {urlsplit(server.base_url)[:2]}, requested


def server_operations(server: Server) -> int:
    status, _, document = request_json(server, "GET", "/api/openapi.json")
    assert status == 200
    return sum(
        1
        for item in document["paths"].values()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
