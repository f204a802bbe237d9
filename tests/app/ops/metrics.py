"""`/metrics` in process (docs/api.md "Operations endpoints", docs/architecture.md "Rules", rules 2
and 3, docs/operations.md "Metrics"): series
by route pattern, logins by outcome, 429s by scope, the offload pool and its breakers, the
outbox counts read from the database at scrape time, and a scrape that never fails.

What the /metrics tests (test_metrics_*.py) share: scraping and reading samples."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "flask_http_request_duration_seconds_count"  # requests by method, url_rule, status
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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
