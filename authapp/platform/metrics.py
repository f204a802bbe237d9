"""Prometheus metrics at `/metrics` (docs/api.md "Operations endpoints"; prometheus-flask-exporter's
series, gunicorn multiprocess mode). docs/operations.md "Metrics" lists every series.

- Requests: a latency histogram by method, `url_rule` and status, a count by method and status,
  and a count of unhandled exceptions: prometheus-flask-exporter's series, names and buckets
  (docs/decisions.md "authapp records request metrics itself" says why).
  `url_rule` is the route's pattern (`/api/v1/settings/api-keys/<key_id>`), never the path, so
  an id in a URL never becomes a series of its own, and a method outside HTTP's usual ones is
  `other`, so a client cannot mint series by inventing methods.
- The app's own series are counted where things happen, in memory: logins by outcome (from
  `audit.record`), 429s by what refused them (`errors`), the offload pool and its circuit
  breakers (`offload`). No request pays a database call for them.
- The outbox counts are read from the database at scrape time: the database, not any one
  worker, knows them. When it does not answer, the scrape still succeeds without them.

Each app has its own registry, so tests that build many apps in one process never register a
name twice. Under gunicorn, PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it before anything
imports prometheus_client) makes every worker write its values to files, and a scrape on any
worker adds up every worker's; one app per worker process, as wsgi.py builds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from time import perf_counter
from typing import Any

import pybreaker
import structlog
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_limiter.errors import RateLimitExceeded
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    values,
)
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from werkzeug.exceptions import NotFound

from authapp.platform import network
from authapp.platform.metric_series import LABEL_WORD, Series

log = structlog.get_logger(__name__)
EXTENSION = "authapp.platform.metrics"
LOGIN_EVENTS = {"login.succeeded": "succeeded", "login.failed": "failed"}
BREAKER_STATES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
# A label value taken from data must stay one of a few short words, or it could mint series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask) -> None:
    disable_created_metrics()  # `_created` twins: not written in multiprocess mode either
    series = app.extensions[EXTENSION] = Series(app, CollectorRegistry())
    app.before_request(_start_clock)
    app.after_request(lambda response: _answered(series, response))


def _start_clock() -> None:
    g.metrics_started = perf_counter()


def _answered(series: Series, response: Response) -> Response:
    """After every other after-request hook (registered first, run last): the answer as sent."""
    started = g.pop("metrics_started", None)
    status = response.status_code
    if started is not None and request.endpoint != "ops.metrics":  # a scrape is not traffic
        series.answered(_method(), _rule(), status, max(perf_counter() - started, 0.0))
    if status == 429:
        source, scope = g.pop("rate_limit_refusal", ("other", "unknown"))
        series.rate_limited.labels(source=source, scope=scope).inc()
    elif status == 500 and g.pop("unhandled_error", False):
        series.exceptions.labels(method=_method(), status=status).inc()
    return response


def failed() -> None:
    """errors' handler of an exception no other handler took (a bug): counted as it answers 500.
    (Flask passes teardown hooks only exceptions no handler took, and that handler takes all.)"""
    if has_request_context():
        g.unhandled_error = True


def _method() -> str:
    method = request.method
    return method if method in METHODS else "other"


def _rule() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "None"  # the exporter's label for no route


def scrape(*collectors: Collector) -> Response:
    """The series of every worker, plus `collectors` read now (ops.py: the outbox counts)."""
    if not network.client_within(current_app.config["METRICS_ALLOWED_NETWORKS"]):
        # Off the public interface (docs/security.md "Metrics access"): the counts describe every
        # tenant.
        log.info("metrics.refused", ip=network.client_ip())
        raise NotFound()
    registry = CollectorRegistry(auto_describe=False)  # nothing is collected at registration
    if getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client chose file-backed values when imported: sum every worker's files.
        MultiProcessCollector(registry)
    else:
        registry.register(_Collected(_series().registry))
    for collector in collectors:
        registry.register(collector)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), headers={"Content-Type": content_type})


class _Collected(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def _series() -> Series:
    series: Series = current_app.extensions[EXTENSION]
    return series


def _of(app: Flask) -> Series | None:
    return app.extensions.get(EXTENSION)  # None: an app built without metrics


def _word(value: Any) -> str:
    return value if isinstance(value, str) and LABEL_WORD.fullmatch(value) else "other"


def audited(event: str, data: Mapping[str, Any]) -> None:
    """audit.record's hook: a login's outcome and method, counted with its audit row. A new
    failure reason (invalid_mfa_code, mfa_required, ...) becomes a label value by itself."""
    outcome = LOGIN_EVENTS.get(event)
    if outcome is None:
        return
    series = _of(current_app)
    if series is not None:
        reason = "" if outcome == "succeeded" else _word(data.get("reason"))
        method = _word(data.get("method", "password"))
        series.logins.labels(outcome=outcome, reason=reason, method=method).inc()


def refused(source: str, scope: str) -> None:
    """A 429 is being decided; counted once when the answer leaves (`_answered`), however
    it is rendered: by the error handlers, or by a page that shows the refusal in its form."""
    if has_request_context():
        g.rate_limit_refusal = (source, _word(scope.removeprefix("authapp.")))


def refused_by_limiter(exc: Exception) -> None:
    """errors' 429 handler: Flask-Limiter names the breached limit's scope (login, signup, ...)."""
    if isinstance(exc, RateLimitExceeded):
        scope = exc.limit.scope
        refused("limiter", scope if isinstance(scope, str) else request.endpoint or "unknown")


def offload_accepted(app: Flask, lane: str) -> None:
    series = _of(app)
    if series is not None:
        series.offload_depth.labels(lane=lane).inc()


def offload_finished(app: Flask, lane: str) -> None:
    series = _of(app)
    if series is not None:
        series.offload_depth.labels(lane=lane).dec()


def offload_rejected(app: Flask, lane: str, task: str, reason: str) -> None:
    series = _of(app)
    if series is not None:
        series.offload_rejected.labels(lane=lane, task=task, reason=reason).inc()


def breakers_open(app: Flask, dependency: str, count: int) -> None:
    series = _of(app)
    if series is not None:
        series.breakers_open.labels(dependency=dependency).set(count)


class _BreakerState(pybreaker.CircuitBreakerListener):
    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.gauge.set(BREAKER_STATES.get(new_state.name, BREAKER_STATES[pybreaker.STATE_OPEN]))


def watch_breaker(app: Flask, breaker: pybreaker.CircuitBreaker) -> None:
    """Export a new breaker's state. pybreaker leaves `open` on the next call after its reset
    timeout, so an idle dependency shows `open` until something tries it again."""
    series = _of(app)
    if series is None:
        return
    # Names come from code (`smtp`): one series per dependency. Breakers per target are only
    # counted (`breakers_open`): their names hold what tenants chose.
    gauge = series.breaker_state.labels(breaker=breaker.name or "unnamed")
    gauge.set(BREAKER_STATES.get(breaker.current_state, 0))
    breaker.add_listener(_BreakerState(gauge))
