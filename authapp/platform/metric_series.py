"""The series of one app (platform/metrics.py records them; docs/operations.md "Metrics" lists
them). Gauges say how gunicorn workers combine their values."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from authapp.platform.config import OFFLOAD_LANES

# Exported at 0 from the start, so a rate() over them works before the first failure.
KNOWN_LOGIN_FAILURES = ("bad_password", "unknown_account", "account_disabled")
LOGIN_METHODS = ("password", "passkey", "federated")
# A label value taken from data must stay one of a few short words, or it could mint series.
LABEL_WORD = re.compile(r"[a-z0-9_.:-]{1,64}")


class Series:
    """One app's own metrics. Gauges say how gunicorn workers combine: `livesum` and `livemax`
    count only live workers (gunicorn.conf.py's `child_exit` drops a dead worker's)."""

    def __init__(self, app: Flask, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Each answer's histogram and counter, found once per (method, route, status): a few
        # hundred at most, and `labels()` costs as much as the observation itself.
        self._answer_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._declare_requests(registry)
        self._declare_logins_and_limits(registry)
        self._declare_offload(registry, app)
        self._declare_breakers_and_workers(registry)

    def _declare_requests(self, registry: CollectorRegistry) -> None:
        """prometheus-flask-exporter's series, names and buckets (docs/decisions.md)."""
        self.durations = Histogram(
            "flask_http_request_duration_seconds",
            "Flask HTTP request duration in seconds",
            ["method", "url_rule", "status"],
            registry=registry,
        )
        self.requests = Counter(
            "flask_http_request_total",
            "Total number of HTTP requests",
            ["method", "status"],
            registry=registry,
        )
        self.exceptions = Counter(
            "flask_http_request_exceptions_total",
            "Total number of HTTP requests which resulted in an exception",
            ["method", "status"],
            registry=registry,
        )

    def _declare_logins_and_limits(self, registry: CollectorRegistry) -> None:
        self.logins = Counter(
            "authapp_logins_total",
            "Login attempts by outcome (succeeded, failed), method (password, passkey, federated) "
            "and, for failures, the reason.",
            ["outcome", "reason", "method"],
            registry=registry,
        )
        for method in LOGIN_METHODS:
            self.logins.labels(outcome="succeeded", reason="", method=method)
        for reason in KNOWN_LOGIN_FAILURES:
            self.logins.labels(outcome="failed", reason=reason, method="password")
        self.logins.labels(outcome="failed", reason="invalid_passkey", method="passkey")
        self.rate_limited = Counter(
            "authapp_rate_limited_total",
            "429 answers by source (limiter: Flask-Limiter; app: the app's own RateLimited) "
            "and scope (the limit's scope, or the module that refused).",
            ["source", "scope"],
            registry=registry,
        )

    def _declare_offload(self, registry: CollectorRegistry, app: Flask) -> None:
        self.offload_depth = Gauge(
            "authapp_offload_queue_depth",
            "Offload tasks accepted and not finished (running or waiting), by lane.",
            ["lane"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.offload_capacity = Gauge(
            "authapp_offload_capacity",
            "Offload tasks that may be running or waiting before submit refuses, by lane.",
            ["lane"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        for lane, (workers, queue, _per_key) in OFFLOAD_LANES.items():
            self.offload_depth.labels(lane=lane)
            self.offload_capacity.labels(lane=lane).set(app.config[workers] + app.config[queue])
        self.offload_rejected = Counter(
            "authapp_offload_rejected_total",
            "Offload submissions refused (backlog_full, shut_down); the outbox keeps the work.",
            ["lane", "task", "reason"],
            registry=registry,
        )

    def _declare_breakers_and_workers(self, registry: CollectorRegistry) -> None:
        self.breaker_state = Gauge(
            "authapp_circuit_breaker_state",
            "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open (worst worker).",
            ["breaker"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.breakers_open = Gauge(
            "authapp_circuit_breakers_open",
            "Open circuit breakers of a dependency with a breaker per target (webhook: one per "
            "organization and host), live workers summed.",
            ["dependency"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.breakers_open.labels(dependency="webhook")
        self.workers = Gauge(
            "authapp_workers",
            "Processes serving the app (each live gunicorn worker counts 1).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.workers.set(1)

    def answered(self, method: str, rule: str, status: int, seconds: float) -> None:
        key = (method, rule, status)
        found = self._answer_series.get(key)
        if found is None:
            found = self._answer_series[key] = (
                self.durations.labels(method=method, url_rule=rule, status=status),
                self.requests.labels(method=method, status=status),
            )
        duration, count = found
        duration.observe(seconds)
        count.inc()
