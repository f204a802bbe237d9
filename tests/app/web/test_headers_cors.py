"""Security headers on every kind of answer (WB-4), declared charsets (WB-7) and CORS for the
allow-listed origins only (WB-5)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.platform import hooks
from tests.conftest import PASSWORD, auth_header

APP_ORIGIN = "https://app.example"
CSRF_INPUT = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
# name → (path, how to ask, what comes back)
ANSWERS = {
    "home": ("/", "anonymous", "html"),
    "login page": ("/login", "anonymous", "html"),
    "signup page": ("/signup", "anonymous", "html"),
    "settings page": ("/settings/profile", "browser", "html"),
    "api me": ("/api/v1/auth/me", "bearer", "json"),
    "api 401": ("/api/v1/auth/me", "anonymous", "json"),
    "healthz": ("/healthz", "anonymous", "json"),
    "page 404": ("/no-such-page", "anonymous", "html"),
    "api 404": ("/api/v1/no-such-thing", "anonymous", "json"),
    "stylesheet": ("/static/app.css", "anonymous", "css"),
}
HTML = [name for name, (_, _, kind) in ANSWERS.items() if kind == "html"]
JSON = [name for name, (_, _, kind) in ANSWERS.items() if kind == "json"]
NOT_STATIC = [name for name in ANSWERS if name != "stylesheet"]
NO_BROWSER = [name for name, (_, how, _) in ANSWERS.items() if how != "browser"]
STATUS = {"api 401": 401, "page 404": 404, "api 404": 404}


def csp(response: TestResponse) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = response.headers.get("Content-Security-Policy")
    assert policy, "no Content-Security-Policy"
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name.lower()] = sources
    return parsed


@pytest.fixture
def fetch(app: Flask, client: FlaskClient, make_user: Callable[..., Any]) -> Callable[..., Any]:
    """`fetch(name)`: the answer ANSWERS names, asked as a browser, a bearer or nobody."""

    def get(name: str, headers: Mapping[str, str] | None = None) -> TestResponse:
        path, how, _ = ANSWERS[name]
        sent = dict(headers or {})
        if how == "bearer":
            user = make_user(email="bearer@example.com")
            pair = client.post(
                "/api/v1/auth/login", json={"login": user["email"], "password": PASSWORD}
            )
            assert pair.status_code == 200, pair.json
            sent |= auth_header(pair.json["access_token"])
        if how == "browser":
            user = make_user(email="browser@example.com")
            form = client.get("/login").get_data(as_text=True)
            token = CSRF_INPUT.search(form).group(1)
            logged_in = client.post(
                "/login", data={"login": user["email"], "password": PASSWORD, "csrf_token": token}
            )
            assert logged_in.status_code == 303, logged_in.get_data(as_text=True)
        response = client.get(path, headers=sent)
        response.get_data()  # buffered, so closing frees the static file's handle
        response.close()
        assert response.status_code == STATUS.get(name, 200), (name, response.status_code)
        return response

    return get


# WB-4: headers


@pytest.mark.parametrize("name", ANSWERS)
def test_every_answer_carries_the_security_headers(fetch, name):
    """WB-4: nosniff, the strict CSP, Referrer-Policy and no framing, on every kind of answer."""
    response = fetch(name)

    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] in {"no-referrer", "same-origin", "strict-origin"}
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert "*" not in headers["Content-Security-Policy"]
    assert headers.get("X-Request-ID")


@pytest.mark.parametrize("name", HTML)
def test_html_answers_carry_coop_and_declare_utf8(fetch, name):
    """WB-4 (COOP on HTML) and WB-7."""
    response = fetch(name)

    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("name", JSON)
def test_json_answers_declare_utf8(fetch, name):
    """WB-7."""
    response = fetch(name)

    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json is not None


@pytest.mark.parametrize("name", NOT_STATIC)
def test_every_answer_but_static_files_is_no_store(fetch, name):
    """WB-4: pages and API answers show accounts, tokens and keys."""
    assert fetch(name).headers["Cache-Control"] == "no-store"


def test_static_files_may_be_cached(fetch):
    response = fetch("stylesheet")

    assert response.mimetype == "text/css"
    assert "no-store" not in response.headers.get("Cache-Control", "")


@pytest.mark.parametrize("name", ANSWERS)
def test_no_answer_names_the_server_software(fetch, name):
    """Werkzeug's test client adds no Server header, so any here would come from the app."""
    response = fetch(name)

    assert "Server" not in response.headers
    assert "X-Powered-By" not in response.headers


def test_the_api_docs_run_no_inline_code_and_nothing_from_another_host(client):
    """The docs page shares the origin of the auth cookies: Swagger UI comes from this origin,
    started by a static file; the CSP allows no inline script or style and no other host."""
    response = client.get("/api/docs")

    assert response.status_code == 200
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert "script-src" not in policy
    assert "style-src" not in policy
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts
    assert all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in page
    assert "<style" not in page
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/"), url
        with client.get(url) as loaded:
            assert loaded.status_code == 200, url


@pytest.mark.parametrize("name", ["swagger-ui.js", "oauth2-redirect.html", "../dist/LICENSE"])
def test_only_the_files_the_docs_page_loads_are_served_from_swagger_ui(client, name):
    with client.get(f"/static/swagger-ui/{name}") as response:
        assert response.status_code == 404


@pytest.mark.parametrize("name", ANSWERS)
def test_no_hsts_outside_production(fetch, name):
    """WB-4: HSTS over a development http:// origin would pin localhost to HTTPS."""
    assert "Strict-Transport-Security" not in fetch(name).headers


@pytest.mark.config(AUTHAPP_ENV="production", BCRYPT_ROUNDS=10)
@pytest.mark.parametrize("name", NO_BROWSER)
def test_production_answers_carry_hsts_for_at_least_a_year(fetch, name):
    """WB-4."""
    response = fetch(name)

    hsts = response.headers["Strict-Transport-Security"]
    max_age = re.search(r"(?:^|;)\s*max-age=(\d+)\s*(?:;|$)", hsts)
    assert max_age is not None, hsts
    assert int(max_age.group(1)) >= 31536000
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert csp(response)["frame-ancestors"] == ["'none'"]


# WB-5: CORS

CORS = pytest.mark.config(CORS_ORIGINS=[APP_ORIGIN])
UNLISTED = [
    "https://evil.example",
    "null",
    "https://app.example.evil",
    "http://app.example",  # the scheme differs
    "https://app.example:8443",
    "https://APP.example.",
]


def assert_no_grant(response: TestResponse) -> None:
    granted = [name for name, _ in response.headers.items() if name.startswith("Access-Control-")]
    assert granted == [], granted


def preflight(client: FlaskClient, path: str, origin: str) -> TestResponse:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-csrf-token",
        },
    )


def header_items(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",") if item.strip()}


@CORS
def test_a_listed_origin_is_echoed_exactly_with_credentials(fetch):
    """WB-5."""
    response = fetch("api me", headers={"Origin": APP_ORIGIN})

    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "origin" in header_items(response.headers["Vary"])


@CORS
@pytest.mark.parametrize("origin", UNLISTED)
def test_an_unlisted_origin_gets_no_grant(fetch, origin):
    """WB-5: not a prefix, suffix, scheme or case match; `null` never."""
    response = fetch("api me", headers={"Origin": origin})

    assert_no_grant(response)
    assert "origin" in header_items(response.headers.get("Vary", ""))  # caches keep them apart


@CORS
def test_a_preflight_from_a_listed_origin_allows_the_api_headers(client):
    """WB-5: cookie clients send X-CSRF-TOKEN, bearer clients Authorization."""
    response = preflight(client, "/api/v1/auth/login", APP_ORIGIN)

    assert response.status_code == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "post" in header_items(headers["Access-Control-Allow-Methods"])
    allowed = header_items(headers["Access-Control-Allow-Headers"])
    assert {"content-type", "x-csrf-token", "authorization"} <= allowed
    assert "origin" in header_items(headers["Vary"])


@CORS
@pytest.mark.parametrize("origin", UNLISTED)
def test_a_preflight_from_an_unlisted_origin_gets_no_grant(client, origin):
    response = preflight(client, "/api/v1/auth/login", origin)

    assert_no_grant(response)


def test_without_cors_origins_nothing_is_granted(client, fetch):
    """WB-5: the default is no cross-origin access at all."""
    assert_no_grant(fetch("api me", headers={"Origin": APP_ORIGIN}))
    assert_no_grant(preflight(client, "/api/v1/auth/login", APP_ORIGIN))


@CORS
@pytest.mark.parametrize("name", ["login page", "home", "healthz"])
def test_pages_never_get_cors_headers(client, fetch, name):
    """WB-5: CORS is for the JSON API; pages stay same-origin."""
    assert_no_grant(fetch(name, headers={"Origin": APP_ORIGIN}))
    assert_no_grant(preflight(client, ANSWERS[name][0], APP_ORIGIN))


@CORS
def test_no_answer_ever_grants_every_origin(client, fetch):
    """WB-5: never `*`, whoever asks and however."""
    answers = [
        fetch("api me", headers={"Origin": APP_ORIGIN}),
        fetch("api 401", headers={"Origin": APP_ORIGIN}),
        fetch("api 404", headers={"Origin": "https://evil.example"}),
        preflight(client, "/api/v1/auth/login", APP_ORIGIN),
        preflight(client, "/api/v1/auth/login", "*"),
        client.get("/api/v1/auth/me", headers={"Origin": "*"}),
    ]

    for response in answers:
        for name, value in response.headers.items():
            if name.startswith("Access-Control-"):
                assert "*" not in value, (name, value)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, "Origin"),
        ("Accept-Encoding", "Accept-Encoding, Origin"),
        ("Cookie, origin", "Cookie, origin"),
    ],
)
def test_vary_gains_origin_once_beside_what_the_view_set(before, after):
    response = Response()
    if before is not None:
        response.headers["Vary"] = before

    hooks._vary_on_origin(response)

    assert response.headers.get_all("Vary") == [after]


def test_a_views_own_policy_headers_stay_and_ours_are_never_doubled(database_url):
    """hooks.SecurityHeaders keeps a CSP, Referrer-Policy or X-Frame-Options the view set, and
    always writes its own X-Request-ID and Cache-Control, each once, whatever the view set."""
    from tests.conftest import build_app

    app = build_app(database_url)

    @app.get("/own-headers")
    def own_headers() -> Response:
        response = Response("ok")
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        response.headers["Referrer-Policy"] = "strict-origin"
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Cache-Control"] = "public, max-age=60"
        response.headers["X-Request-ID"] = "set-by-the-view"
        return response

    response = app.test_client().get("/own-headers", headers={"X-Request-ID": "abc-123"})

    def values(name: str) -> list[str]:
        return response.headers.getlist(name)

    assert values("Content-Security-Policy") == ["default-src 'none'"]
    assert values("Referrer-Policy") == ["strict-origin"]
    assert values("X-Frame-Options") == ["SAMEORIGIN"]
    assert values("Cache-Control") == ["no-store"]
    assert values("X-Request-ID") == ["abc-123"]
    assert values("X-Content-Type-Options") == ["nosniff"]
