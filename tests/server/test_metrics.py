"""`/metrics` on real gunicorn (2 gthread workers) in prometheus_client's multiprocess mode, with
gunicorn.conf.py's defaults: a private PROMETHEUS_MULTIPROC_DIR per master, wiped at start;
a scrape on either worker sums both workers' files; `child_exit` drops a dead worker's live
gauges while its counts stay in the sums (docs/operations.md "Metrics")."""

from __future__ import annotations

import http.client
import os
import signal
import stat
import tempfile
import uuid
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import (
    REQUEST_TIMEOUT,
    Server,
    all_at_once,
    gunicorn_processes,
    request_json,
)
from tests.servers import wait_for

ROUTE = "/api/v1/settings/api-keys/<key_id>"
REQUESTS = "flask_http_request_duration_seconds_count"
LABELS = {"method": "DELETE", "url_rule": ROUTE, "status": "401"}
BATCH = 10
MAX_REQUESTS = 300
SCRAPES = 8  # fresh connections: both workers answer some of them


def two_workers(server: Server, gone: int | None = None) -> set[int]:
    def two() -> set[int] | None:
        found = gunicorn_processes(server)[1]
        return found if len(found) == 2 and gone not in found else None

    found: set[int] = wait_for(two, timeout=15)
    return found


def metrics_dir(worker: int) -> Path:
    """The directory of the files the worker has mapped (its value store), once it has mapped
    them: a worker that has just booted may not have yet."""

    def mapped() -> set[Path] | None:
        maps = Path(f"/proc/{worker}/maps").read_text().splitlines()
        return {Path(line.split()[-1]) for line in maps if line.endswith(".db")} or None

    files: set[Path] = wait_for(mapped, timeout=15)
    directories = {path.parent for path in files}
    assert len(directories) == 1, files
    return directories.pop()


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("GET", "/metrics", headers={"Connection": "close"})
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
    finally:
        conn.close()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def route_count(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    return samples.get((REQUESTS, frozenset(LABELS.items())), 0.0)


def served_by(directory: Path, worker: int) -> float:
    """The route's requests that one worker served, from that worker's file alone."""
    path = directory / f"histogram_{worker}.db"
    if not path.exists():
        return 0.0
    for metric in MultiProcessCollector.merge([str(path)]):
        for sample in metric.samples:
            if sample.name == REQUESTS and sample.labels == LABELS:
                return float(sample.value)
    return 0.0


def traffic_on_both_workers(server: Server, directory: Path, workers: set[int]) -> int:
    """Requests to ROUTE (each with its own id, on fresh connections, BATCH at once) until
    both workers have served some; how many were sent."""
    sent = 0
    while sent < MAX_REQUESTS:
        answers = all_at_once(
            BATCH,
            lambda: request_json(server, "DELETE", f"/api/v1/settings/api-keys/{uuid.uuid4()}"),
        )
        assert [answer[0] for answer in answers if not isinstance(answer, BaseException)] == [
            401
        ] * BATCH, answers
        sent += BATCH
        if all(served_by(directory, worker) for worker in workers):
            return sent
    pytest.fail(f"{MAX_REQUESTS} requests on fresh connections never reached both workers")


def test_every_scrape_sums_both_workers_in_a_private_directory(server):
    workers = two_workers(server)
    directory = metrics_dir(min(workers))
    assert directory.parent == Path(tempfile.gettempdir())
    assert directory.name.startswith("authapp-metrics-")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert metrics_dir(max(workers)) == directory
    before = route_count(scrape(server))

    sent = traffic_on_both_workers(server, directory, workers)

    assert sum(served_by(directory, worker) for worker in workers) == before + sent
    for _ in range(SCRAPES):
        samples = scrape(server)
        assert route_count(samples) == before + sent
        assert samples[("authapp_workers", frozenset())] == 2  # read from both workers' files


def test_a_dead_workers_live_gauges_go_and_its_counts_stay(server):
    workers = two_workers(server)
    directory = metrics_dir(min(workers))
    traffic_on_both_workers(server, directory, workers)
    counted = route_count(scrape(server))
    victim = min(workers)
    assert list(directory.glob(f"gauge_livesum_{victim}.db"))

    os.kill(victim, signal.SIGKILL)  # a crash: no worker_exit, only the master's child_exit

    (replacement,) = two_workers(server, gone=victim) - workers
    wait_for(lambda: (directory / f"gauge_livesum_{replacement}.db").exists(), timeout=15)
    assert not list(directory.glob(f"gauge_live*_{victim}.db"))
    assert (directory / f"histogram_{victim}.db").exists()
    for _ in range(SCRAPES):
        samples = scrape(server)
        assert samples[("authapp_workers", frozenset())] == 2  # 3 if the dead one still counted
        assert route_count(samples) == counted
