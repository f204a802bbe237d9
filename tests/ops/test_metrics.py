"""`/metrics` in process (API.md "Operations", DESIGN.md rule 2 and 3, README "Metrics"): series
by route pattern, logins by outcome, 429s by scope, the offload pool and its breakers, the
outbox counts read from the database at scrape time, and a scrape that never fails."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pybreaker
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from authapp.auth import backoff
from authapp.delivery import offload
from authapp.models import LoginThrottle, Organization, OutboxMessage, User
from authapp.platform import clock, config
from authapp.platform.errors import RateLimited
from authapp.platform.extensions import db
from authapp.security import audit
from tests.conftest import build_app
from tests.servers import free_port, wait_for
from tests.settings import conftest as settings_fixtures

LOGIN = "/api/v1/auth/login"
REQUESTS = "flask_http_request_duration_seconds_count"  # requests by method, url_rule, status
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MEMORY_LIMITS = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"}
tenants = settings_fixtures.tenants  # two organizations with owners, for an API key
# An app refusal is labelled with the scope its raiser names, else with the raiser's module:
# either is right here, so these tests hold before and after the raisers name their scopes.

# Pool tasks take plain arguments only, so the test's handle on them lives at module level.
RELEASE = threading.Event()


def hold() -> None:
    RELEASE.wait(timeout=20)  # bounded: a failing test cannot hang the pool


def fail() -> None:
    raise ConnectionRefusedError("the dependency is down")


@pytest.fixture
def gate(app: Flask) -> Iterator[threading.Event]:
    """RELEASE, cleared for this test and set again before the app fixture shuts the pool."""
    RELEASE.clear()
    yield RELEASE
    RELEASE.set()


def scrape_text(client: FlaskClient, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def scrape(client: FlaskClient) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(scrape_text(client)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: found for (sample, labels), found in samples.items() if sample == name}


def logins(samples: Samples, outcome: str, reason: str = "") -> float | None:
    return value(samples, "authapp_logins_total", outcome=outcome, reason=reason)


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


def test_outbox_gauges_count_pending_and_dead_rows_from_the_database(app, client):
    before = scrape(client)
    with app.app_context():
        for status, count in (("pending", 2), ("dead", 1), ("sent", 3)):
            for _ in range(count):
                db.session.add(OutboxMessage(kind="email", payload={}, status=status))
        db.session.commit()

    after = scrape(client)

    assert value(after, "authapp_outbox_up") == 1
    for status, added in (("pending", 2), ("dead", 1)):
        was = value(before, "authapp_outbox_messages", status=status)
        assert value(after, "authapp_outbox_messages", status=status) == (was or 0) + added
    assert value(after, "authapp_outbox_messages", status="sent") is None


def test_a_scrape_without_a_database_is_200_and_marks_the_outbox_counts_missing():
    app = build_app(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere")
    client = app.test_client()
    client.get("/healthz")

    samples = scrape(client)

    assert value(samples, "authapp_outbox_up") == 0
    assert not named(samples, "authapp_outbox_messages")
    assert value(samples, REQUESTS, method="GET", url_rule="/healthz", status="200") == 1


@pytest.mark.config(OFFLOAD_WORKERS=1, OFFLOAD_QUEUE=1, WEBHOOK_WORKERS=2, WEBHOOK_QUEUE=3)
def test_offload_gauges_follow_each_lane_and_count_refusals(app, client, gate):
    depth = "authapp_offload_queue_depth"
    before = scrape(client)
    assert (value(before, depth, lane="mail"), value(before, depth, lane="webhooks")) == (0, 0)
    with app.app_context():
        offload.submit(hold)
        offload.submit(hold)
        with pytest.raises(offload.Rejected):
            offload.submit(hold)
        offload.submit(hold, lane=offload.WEBHOOKS)

    samples = scrape(client)
    assert value(samples, depth, lane="mail") == 2
    assert value(samples, depth, lane="webhooks") == 1
    assert value(samples, "authapp_offload_capacity", lane="mail") == 2
    assert value(samples, "authapp_offload_capacity", lane="webhooks") == 5
    rejected = value(
        samples, "authapp_offload_rejected_total", lane="mail", task="hold", reason="backlog_full"
    )
    assert rejected == 1

    gate.set()
    wait_for(lambda: value(scrape(client), depth, lane="mail") == 0)
    wait_for(lambda: value(scrape(client), depth, lane="webhooks") == 0)


@pytest.mark.config(BREAKER_FAILURES=2)
def test_each_dependency_breaker_state_is_exported(app, client):
    with app.app_context():
        smtp = offload.breaker("smtp")
    state = "authapp_circuit_breaker_state"
    assert value(scrape(client), state, breaker="smtp") == 0

    with pytest.raises(ConnectionRefusedError):
        smtp.call(fail)
    with pytest.raises(pybreaker.CircuitBreakerError):
        smtp.call(fail)  # the second failure opens it

    assert value(scrape(client), state, breaker="smtp") == 2


@pytest.mark.config(BREAKER_FAILURES=1)
def test_webhook_breakers_are_counted_never_named(app, client):
    """Issue 15: a series per webhook target would let tenants mint series (and show their
    hosts to every scraper); the open ones are counted per dependency instead."""
    with app.app_context():
        breakers = [offload.breaker("webhook", f"org-{n}:hooks-{n}.example.com") for n in range(3)]
    assert value(scrape(client), "authapp_circuit_breakers_open", dependency="webhook") == 0

    for breaker in breakers[:2]:
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(fail)  # BREAKER_FAILURES=1: the first failure opens it

    text = scrape_text(client)
    samples = scrape(client)
    assert value(samples, "authapp_circuit_breakers_open", dependency="webhook") == 2
    assert "hooks-" not in text
    assert "org-" not in text
    assert all(
        "webhook" not in dict(labels).get("breaker", "")
        for labels in named(samples, "authapp_circuit_breaker_state")
    )


def test_apps_built_in_one_process_keep_their_own_series(database_url):
    """No "Duplicated timeseries in CollectorRegistry", and no count leaks between apps."""
    first, second = build_app(database_url), build_app(database_url)

    first.test_client().get("/healthz")

    healthz = {"method": "GET", "url_rule": "/healthz", "status": "200"}
    assert value(scrape(first.test_client()), REQUESTS, **healthz) == 1
    assert value(scrape(second.test_client()), REQUESTS, **healthz) is None
    assert value(scrape(second.test_client()), "authapp_workers") == 1
    for app in (first, second):
        with app.app_context():
            db.engine.dispose()


def scrape_from(client: FlaskClient, address: str, **headers: str) -> int:
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})
    return response.status_code


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("127.0.0.1", 200),
        ("::1", 200),
        ("10.1.2.3", 200),
        ("172.20.0.9", 200),
        ("192.168.1.20", 200),
        ("fd00::5", 200),
        ("::ffff:10.1.2.3", 200),  # a dual-stack listener's view of an IPv4 peer
        ("203.0.113.7", 404),
        ("8.8.8.8", 404),
        ("2001:db8::1", 404),
        ("::ffff:8.8.8.8", 404),
    ],
)
def test_metrics_answer_loopback_and_private_addresses_only(client, address, status):
    """Issue 15 item 9: /metrics stays off the public interface (METRICS_ALLOWED_NETWORKS,
    by default loopback and the private ranges); elsewhere it does not exist."""
    assert scrape_from(client, address) == status


@pytest.mark.config(TRUSTED_PROXIES=["127.0.0.1"])
def test_metrics_judge_the_client_behind_a_trusted_proxy_not_the_proxy(client):
    assert scrape_from(client, "127.0.0.1", **{"X-Forwarded-For": "203.0.113.7"}) == 404
    assert scrape_from(client, "127.0.0.1", **{"X-Forwarded-For": "10.0.0.8"}) == 200
    assert scrape_from(client, "127.0.0.1") == 200


@pytest.mark.config(METRICS_ALLOWED_NETWORKS=["203.0.113.0/24"])
def test_metrics_networks_are_configurable(client):
    assert scrape_from(client, "203.0.113.7") == 200
    assert scrape_from(client, "127.0.0.1") == 404


def test_a_bad_metrics_network_stops_the_start(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")

    with pytest.raises(config.ConfigError, match="METRICS_ALLOWED_NETWORKS"):
        config.load(str(tmp_path))
