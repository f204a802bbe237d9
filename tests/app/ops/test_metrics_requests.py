"""`/metrics` in process: the set-up these tests share, and why, is metrics.py's docstring.

This part: requests, logins, rate-limit answers and refusals counted."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from authapp.auth import backoff
from authapp.models import LoginThrottle, Organization, User
from authapp.platform import clock
from authapp.platform.errors import RateLimited
from authapp.platform.extensions import db
from authapp.security import audit
from tests.app.ops.metrics import REQUESTS, Samples, named, scrape, scrape_text, value
from tests.app.settings import conftest as settings_fixtures
from tests.conftest import build_app

LOGIN = "/api/v1/auth/login"
MEMORY_LIMITS = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"}
tenants = settings_fixtures.tenants  # two organizations with owners, for an API key


def logins(
    samples: Samples, outcome: str, reason: str = "", method: str = "password"
) -> float | None:
    return value(samples, "authapp_logins_total", outcome=outcome, reason=reason, method=method)


def test_requests_are_counted_by_route_pattern_never_by_path(client):
    """An id in a URL must not become a series of its own (no cardinality blow-up)."""
    key_ids = [uuid.uuid4().hex for _ in range(3)]
    for key_id in key_ids:
        assert client.delete(f"/api/v1/settings/api-keys/{key_id}").status_code == 401

    text = scrape_text(client)
    samples = scrape(client)

    pattern = "/api/v1/settings/api-keys/<key_id>"
    assert value(samples, REQUESTS, method="DELETE", url_rule=pattern, status="401") == 3
    assert not [key_id for key_id in key_ids if key_id in text]


def test_the_scrape_is_not_counted_as_traffic(client):
    client.get("/healthz")
    scrape(client)
    samples = scrape(client)

    assert value(samples, REQUESTS, method="GET", url_rule="/healthz", status="200") == 1
    routes = {dict(labels)["url_rule"] for labels in named(samples, REQUESTS)}
    assert routes == {"/healthz"}


def test_an_invented_method_is_counted_as_other_and_mints_no_series(client):
    """The method is a label: a client sending BREW, BREW1, BREW2... must not add series."""
    for method in ("BREW", "BREW1", "X" * 200):
        assert client.open("/healthz", method=method).status_code == 405
    client.open("/healthz", method="GET")

    samples = scrape(client)

    methods = {dict(labels)["method"] for labels in named(samples, REQUESTS)}
    assert methods == {"other", "GET"}
    assert value(samples, REQUESTS, method="other", url_rule="None", status="405") == 3
    assert value(samples, "flask_http_request_total", method="other", status="405") == 3


def test_an_unhandled_exception_is_counted_and_timed_once(database_url):
    app = build_app(database_url)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("a bug")

    client = app.test_client()
    assert client.get("/boom").status_code == 500
    samples = scrape(client)

    assert value(samples, "flask_http_request_exceptions_total", method="GET", status="500") == 1
    assert value(samples, REQUESTS, method="GET", url_rule="/boom", status="500") == 1
    assert value(samples, "flask_http_request_total", method="GET", status="500") == 1


def test_the_scrape_is_prometheus_text_and_never_cached(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    assert "# TYPE authapp_logins_total counter" in response.get_data(as_text=True)


def test_openmetrics_is_served_when_asked_for(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})

    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_logins_are_counted_by_outcome_and_failure_reason(app, client, make_user):
    ada = make_user()
    bob = make_user(email="bob@example.com")
    with app.app_context():
        db.session.get(User, bob["id"]).is_active = False
        db.session.commit()
    before = scrape(client)

    answers = [
        client.post(LOGIN, json={"login": ada["email"], "password": ada["password"]}),
        client.post(LOGIN, json={"login": ada["email"], "password": "not the password at all"}),
        client.post(LOGIN, json={"login": "nobody@example.com", "password": ada["password"]}),
        client.post(LOGIN, json={"login": bob["email"], "password": bob["password"]}),
    ]

    assert [answer.status_code for answer in answers] == [200, 401, 401, 403]
    after = scrape(client)
    assert (logins(before, "succeeded"), logins(after, "succeeded")) == (0, 1)
    for reason in ("bad_password", "unknown_account", "account_disabled"):
        assert (logins(before, "failed", reason), logins(after, "failed", reason)) == (0, 1)


def test_a_failure_reason_the_code_adds_later_is_counted_by_itself(app, client):
    """The count follows audit.record: a new reason needs no change to the metrics."""
    with app.app_context():
        for reason in ("invalid_mfa_code", "invalid_mfa_code", "Not A Word!"):
            audit.record(
                "login.failed",
                organization_id=None,
                user_id=None,
                actor="system",
                data={"reason": reason},
            )
        audit.record("user.created", organization_id=None, user_id=None, actor="system")
        db.session.rollback()

    samples = scrape(client)

    assert logins(samples, "failed", "invalid_mfa_code") == 2
    assert logins(samples, "failed", "other") == 1  # free text never becomes a label value
    assert sum(named(samples, "authapp_logins_total").values()) == 3


@pytest.mark.config(**MEMORY_LIMITS, RATELIMIT_LOGIN="2/minute")
def test_a_flask_limiter_429_is_counted_by_its_scope(client):
    wrong = {"login": "nobody@example.com", "password": "not the password at all"}

    statuses = [client.post(LOGIN, json=wrong).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]
    samples = scrape(client)
    assert value(samples, "authapp_rate_limited_total", source="limiter", scope="login") == 1
    assert sum(named(samples, "authapp_rate_limited_total").values()) == 1
    # Timed too: the request clock starts before the limiter refuses.
    assert value(samples, REQUESTS, method="POST", url_rule=LOGIN, status="429") == 1


def test_the_login_back_off_is_counted_on_the_api_and_on_the_login_page(app, client, make_user):
    """The app's own RateLimited, labelled with the module that refused; the page renders it in
    its form, not through the error handlers, and is counted all the same."""
    ada = make_user()
    with app.app_context():
        db.session.add(
            LoginThrottle(
                login_key=backoff.of_account(db.session.get(User, ada["id"])).key,
                failures=10,
                locked_until=clock.now() + timedelta(hours=1),
            )
        )
        db.session.commit()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]

    api = client.post(LOGIN, json={"login": ada["email"], "password": ada["password"]})
    form = {"csrf_token": token, "login": ada["email"], "password": ada["password"]}
    on_page = client.post("/login", data=form)

    assert (api.status_code, on_page.status_code) == (429, 429)
    counted = named(scrape(client), "authapp_rate_limited_total")
    assert list(counted.values()) == [2]
    assert [dict(labels) for labels in counted] == [{"source": "app", "scope": "login_backoff"}]


@pytest.mark.config(**MEMORY_LIMITS)
def test_an_api_keys_budget_is_counted_as_an_app_429(app, client, tenants):
    acme = tenants["acme"]
    with app.app_context():
        db.session.execute(
            sa.update(Organization)
            .where(Organization.id == acme.id)
            .values(rate_limit_per_minute=1)
        )
        db.session.commit()
    created = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "ci", "scopes": ["users:read"]},
        headers=acme["owner"].headers,
    )
    headers = {"X-API-Key": created.json["key"]}

    answers = [client.get("/api/v1/settings/members", headers=headers) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [200, 429]
    counted = named(scrape(client), "authapp_rate_limited_total")
    assert list(counted.values()) == [1]
    assert [dict(labels) for labels in counted] == [{"source": "app", "scope": "api_key"}]


def test_an_app_refusal_is_labelled_with_its_scope(database_url):
    app = build_app(database_url)

    @app.get("/api/v1/named")
    def named_refusal() -> None:
        raise RateLimited("Slow down.", retry_after=5, scope="totp")

    client = app.test_client()
    answer = client.get("/api/v1/named")

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "5"
    counted = named(scrape(client), "authapp_rate_limited_total")
    assert counted == {frozenset({("source", "app"), ("scope", "totp")}): 1}
    with app.app_context():
        db.engine.dispose()
