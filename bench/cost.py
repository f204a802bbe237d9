"""The cost probe: CPU and round trips per request, in process, and the share of each layer.

    python -m bench.cost              # or: make cost; BENCH_COST_REQUESTS=2000 per request kind

authapp as `make bench` deploys it (production settings, PostgreSQL, rate limits in Redis,
metrics in multiprocess mode, JSON logs to a file), called as a WSGI app on this thread, one
request at a time, so that the figures are the app's own: no HTTP parsing, no other threads.
Each request kind runs `BENCH_COST_REQUESTS` times after a warm-up, in turns with the others and
with the floor's `/ping` and `/me` (bench/baseline_app.py, in this process too):

- CPU µs: this thread's CPU time per request (median and mean), gunicorn's access-log line
  included (written by gunicorn.conf.py's logger class, handler and formatter); authapp's over
  the floor's, for the same unavoidable work;
- PostgreSQL round trips per request (bench/wire.py: statements, BEGIN, COMMIT, ROLLBACK),
  counted in a run of their own after the CPU runs, since counting costs CPU;
- Redis commands per request (the server's `total_commands_processed`; keep Redis otherwise idle);
- the share of each layer (bench/layers.py), from a second run with timers around each layer.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import layers, stack, wire
from bench.options import _env

ME = "/api/v1/auth/me"
ORGANIZATION = "/api/v1/settings/organization"
REFRESH = "/api/v1/auth/refresh"
# gunicorn.conf.py's access_log_format, with the atoms gunicorn would fill in.
ROUNDS = 10  # each kind's requests, in this many turns
ROUND_TRIP_REQUESTS = 50  # each kind's, counted apart from the CPU runs
# authapp's kinds beside the floor's that do the same unavoidable work.
FLOOR_PAIRS = (("healthz", "floor_ping"), ("me", "floor_me"), ("api_key", "floor_me"))
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(D)s %({x-request-id}o)s'


@dataclass
class Kind:
    """One request kind: how to make its WSGI environ, and what it cost."""

    name: str
    title: str
    environ: Callable[[], dict[str, Any]]
    after: Callable[[int, bytes], None] = lambda _status, _body: None
    floor: bool = False  # bench/baseline_app.py: no access line, its round trips not counted
    cpu_ns: list[int] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    redis_commands: float = 0.0
    redis_total: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


def call(app: Any, environ: dict[str, Any], access_line: bool = True) -> tuple[int, bytes]:
    """One request through the WSGI interface, as gunicorn makes it, plus its access-log line
    written by gunicorn.conf.py's logger class, as the gthread worker calls it."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: Any, _exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda _data: None

    began = datetime.now()
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    status, headers = started[0]
    if not access_line:
        return int(status[:3]), body
    response = SimpleNamespace(status=status, sent=len(body), headers=headers)
    request = SimpleNamespace(headers=[])  # read only by an access format with header atoms
    _access_logger().access(response, request, environ, datetime.now() - began)
    return int(status[:3]), body


@cache
def _access_logger() -> Any:
    """gunicorn's logger as gunicorn.conf.py configures it: authapp's class, its access format,
    and the access records handed to the root logger's handler (its `logconfig_dict`)."""
    from gunicorn.config import Config

    from authapp.platform.logs import AccessLogger

    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", ACCESS_FORMAT)
    logger = AccessLogger(cfg)
    logger.access_log.handlers.clear()
    logger.access_log.propagate = True
    return logger


def builder(method: str, path: str, **kwargs: Any) -> Callable[[], dict[str, Any]]:
    from werkzeug.test import EnvironBuilder

    def make() -> dict[str, Any]:
        environ: dict[str, Any] = EnvironBuilder(
            path=path, method=method, environ_base={"REMOTE_ADDR": "127.0.0.1"}, **kwargs
        ).get_environ()
        return environ

    return make


def redis_commands(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def warm_up(app: Any, kind: Kind, count: int) -> None:
    for _ in range(max(20, count // 10)):  # caches, pools, first-use imports
        kind.after(*call(app, kind.environ(), access_line=not kind.floor))


def run_kind(app: Any, kind: Kind, count: int, redis_url: str | None) -> None:
    """`count` more requests of this kind, added to its figures."""
    before = redis_commands(redis_url) if redis_url else 0
    for _ in range(count):
        environ = kind.environ()
        began = time.thread_time_ns()
        status, body = call(app, environ, access_line=not kind.floor)
        kind.cpu_ns.append(time.thread_time_ns() - began)
        kind.statuses[status] += 1
        kind.after(status, body)
    if redis_url:  # the INFO calls themselves count once each
        kind.redis_total += redis_commands(redis_url) - before - 1
        kind.redis_commands = kind.redis_total / len(kind.cpu_ns)


def count_round_trips(app: Any, kind: Kind, count: int) -> None:
    """After the CPU runs, on connections that count (bench/wire.py): counting costs CPU."""
    for _ in range(count):
        with wire.counting() as trips:
            status, body = call(app, kind.environ())
        kind.round_trips.append(len(trips))
        kind.statements = trips
        kind.after(status, body)


def _counting_connections(app: Any) -> None:
    """authapp's next connections count their round trips: the pooled ones are dropped."""
    from authapp.platform.extensions import db

    wire.install()
    with app.app_context():
        db.engine.dispose()


def profile(app: Any, kind: Kind, count: int) -> str:
    """cProfile's top functions (own time) for one kind: BENCH_COST_PROFILE=me."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile(time.thread_time)  # CPU, not waits on PostgreSQL
    for _ in range(count):
        environ = kind.environ()
        profiler.enable()
        status, body = call(app, environ)
        profiler.disable()
        kind.after(status, body)
    out = io.StringIO()
    callers = _env("BENCH_COST_CALLERS", "")
    if callers:
        pstats.Stats(profiler, stream=out).print_callers(callers)
    pstats.Stats(profiler, stream=out).sort_stats(_env("BENCH_COST_SORT", "tottime")).print_stats(
        45
    )
    return out.getvalue()


def time_layers(app: Any, kind: Kind, count: int) -> None:
    with layers.measuring() as spent:
        for _ in range(count):
            status, body = call(app, kind.environ())
            kind.after(status, body)
    kind.layers = spent


@contextmanager
def deployed(opts_redis: str, postgres: str) -> Iterator[Any]:
    """authapp on a scratch database, configured as `make bench` starts it."""
    with tempfile.TemporaryDirectory(prefix="authapp-cost-") as workdir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = workdir  # before prometheus_client is imported
        nonce = secrets.token_hex(4)
        with stack.scratch_database(postgres, f"bench_cost_{nonce}") as database:
            env = stack.authapp_env(database, ratelimit="redis", redis_url=opts_redis)
            os.environ.update(env)  # create_app() reads the environment, as wsgi.py does
            stack.flask(env, "db", "upgrade")
            stack.flask(env, "seed")
            stack.flask(env, "org", "set-tier", "Default", "enterprise")
            from authapp import create_app

            app = create_app()
            log_file = (Path(workdir) / "app.log").open("a")
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler):
                    handler.setStream(log_file)
            try:
                yield app
            finally:
                from authapp.delivery import offload
                from authapp.platform.extensions import db

                offload.shutdown(app)
                with app.app_context():
                    db.engine.dispose()
                log_file.close()


@contextmanager
def floor(postgres: str) -> Iterator[tuple[Any, str]]:
    """bench/baseline_app.py, the bench's floor, on a scratch database of its own with one
    account: the app and a bearer token for it."""
    import jwt
    import psycopg2

    nonce = secrets.token_hex(4)
    with stack.scratch_database(postgres, f"bench_cost_floor_{nonce}") as database:
        secret = secrets.token_urlsafe(48)
        os.environ.update(
            BASELINE_DATABASE_URL=database, BASELINE_JWT_SECRET=secret, BASELINE_THREADS="1"
        )
        from bench import baseline_app

        baseline_app.create_schema(database)
        user_id = str(uuid.uuid4())
        with psycopg2.connect(database) as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, %s)",
                (user_id, "floor@example.com", "-"),
            )
        conn.close()
        token = jwt.encode({"sub": user_id, "exp": int(time.time()) + 3600}, secret, "HS256")
        try:
            yield baseline_app.app, token
        finally:
            if baseline_app._pool is not None:
                baseline_app._pool.closeall()
                baseline_app._pool = None


def prepare(app: Any) -> dict[str, str]:
    """An account's tokens, and an API key made by the seeded owner."""
    client = app.test_client()
    email = f"cost-{secrets.token_hex(4)}@example.com"
    signed_up = client.post(
        "/api/v1/auth/signup", json={"email": email, "password": stack.PASSWORD}
    ).get_json()
    admin = client.post(
        "/api/v1/auth/login", json={"login": stack.ADMIN_EMAIL, "password": stack.PASSWORD}
    ).get_json()
    key = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "cost probe", "scopes": ["users:read"]},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    ).get_json()
    return {
        "access": signed_up["access_token"],
        "refresh": signed_up["refresh_token"],
        "key": key["key"],
    }


def kinds(app: Any, made: dict[str, str]) -> list[Kind]:
    bearer = {"Authorization": f"Bearer {made['access']}"}
    chain = {"token": made["refresh"]}

    def next_refresh() -> dict[str, Any]:
        return builder("POST", REFRESH, json={"refresh_token": chain["token"]})()

    def rotated(status: int, body: bytes) -> None:
        if status == 200:
            chain["token"] = json.loads(body)["refresh_token"]

    cookie = f"{app.config['JWT_ACCESS_COOKIE_NAME']}={made['access']}"
    return [
        Kind("healthz", "GET /healthz (no credentials, no SQL)", builder("GET", "/healthz")),
        Kind("me", "GET /auth/me (bearer)", builder("GET", ME, headers=bearer)),
        Kind(
            "api_key",
            "GET /settings/organization (API key)",
            builder("GET", ORGANIZATION, headers={"X-API-Key": made["key"]}),
        ),
        Kind("refresh", "POST /auth/refresh", next_refresh, after=rotated),
        Kind(
            "page", "GET / (page, access cookie)", builder("GET", "/", headers={"Cookie": cookie})
        ),
    ]


def report(found: list[Kind]) -> str:
    lines = [
        f"{'request':<38} {'status':<9} {'CPU µs p50':>10} {'mean':>7} {'PG trips':>8} "
        f"{'Redis':>6}",
        "-" * 84,
    ]
    for kind in found:
        statuses = ",".join(f"{s}" for s in sorted(kind.statuses))
        trips = f"{statistics.median(kind.round_trips):.0f}" if kind.round_trips else "-"
        lines.append(
            f"{kind.title:<38} {statuses:<9} {statistics.median(kind.cpu_ns) / 1e3:>10.0f} "
            f"{statistics.fmean(kind.cpu_ns) / 1e3:>7.0f} "
            f"{trips:>8} {kind.redis_commands:>6.1f}"
        )
    by_name = {kind.name: kind for kind in found}
    if "floor_me" in by_name:
        lines += [
            "",
            "CPU per request (p50), authapp over the floor, measured in turns in this run",
        ]
        for ours, theirs in (
            ("healthz", "floor_ping"),
            ("me", "floor_me"),
            ("api_key", "floor_me"),
        ):
            if ours in by_name:
                ratio = statistics.median(by_name[ours].cpu_ns) / statistics.median(
                    by_name[theirs].cpu_ns
                )
                lines.append(f"  {by_name[ours].title:<38} {ratio:4.2f}x {by_name[theirs].title}")
        lines.append("  (the bench's 0.60x of the floor's /me req/s asks for about 1.67x or less)")
    found = [kind for kind in found if not kind.floor]
    names = sorted({name for kind in found for name in kind.layers})
    lines += [
        "",
        "share of CPU by layer (timed run)",
        f"{'layer':<24}" + "".join(f"{kind.name:>10}" for kind in found),
    ]
    for name in names:
        cells = ""
        for kind in found:
            total = sum(kind.layers.values()) or 1
            cells += f"{kind.layers[name] / total:>10.0%}"
        lines.append(f"{name:<24}{cells}")
    lines += ["", "round trips of the last request of each kind"]
    for kind in found:
        shown = [" ".join(s.split())[:90] for s in kind.statements]
        lines.append(f"  {kind.name}: " + ("; ".join(shown) or "none"))
    return "\n".join(lines)


def main() -> None:
    count = int(_env("BENCH_COST_REQUESTS", "2000"))
    redis_url = _env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
    postgres = _env("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if not stack.port_open(postgres) or not stack.port_open(redis_url):
        raise SystemExit("the cost probe needs PostgreSQL and Redis (BENCH_POSTGRES_URL, ...)")
    with deployed(redis_url, postgres) as app, floor(postgres) as (floor_app, floor_token):
        made = prepare(app)
        ours = kinds(app, made)
        theirs = [
            Kind("floor_ping", "floor: GET /ping", builder("GET", "/ping"), floor=True),
            Kind(
                "floor_me",
                "floor: GET /auth/me (bearer)",
                builder("GET", ME, headers={"Authorization": f"Bearer {floor_token}"}),
                floor=True,
            ),
        ]
        runs = [(app, kind) for kind in ours] + [(floor_app, kind) for kind in theirs]
        for kind_app, kind in runs:
            warm_up(kind_app, kind, count)
        # In turns, so that the machine's speed, which drifts on a VM, weighs on every kind alike.
        for _ in range(ROUNDS):
            for kind_app, kind in runs:
                run_kind(kind_app, kind, max(1, count // ROUNDS), redis_url)
        _counting_connections(app)
        for kind in ours:
            count_round_trips(app, kind, ROUND_TRIP_REQUESTS)
        profiled = [kind for kind in ours if kind.name == _env("BENCH_COST_PROFILE", "")]
        for kind in profiled:
            sys.stdout.write(profile(app, kind, count))
        layers.install(app)  # after the CPU runs: the timers cost CPU themselves
        for kind in ours:
            time_layers(app, kind, count)
    sys.stdout.write(report(ours + theirs) + "\n")


if __name__ == "__main__":
    main()
