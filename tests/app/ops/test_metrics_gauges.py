"""`/metrics` in process: the set-up these tests share, and why, is metrics.py's docstring.

This part: the outbox, offload and breaker gauges, one process's apps, and who may scrape."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pybreaker
import pytest
from flask import Flask
from flask.testing import FlaskClient

from authapp.delivery import offload
from authapp.models import OutboxMessage
from authapp.platform import config
from authapp.platform.extensions import db
from tests.app.ops.metrics import REQUESTS, named, scrape, scrape_text, value
from tests.app.settings import conftest as settings_fixtures
from tests.conftest import build_app
from tests.servers import free_port, wait_for

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
    """A series per webhook target would let tenants mint series (and show their
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
    """/metrics stays off the public interface (METRICS_ALLOWED_NETWORKS,
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
