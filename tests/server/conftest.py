"""Real gunicorn (2 gthread workers) on its own scratch PostgreSQL database, for the server
and browser tests (tests/server, tests/browser) and, through tests/faults/harness.py, the fault
scenarios.

`server` is module-scoped: `flask db upgrade`, `flask seed`, then gunicorn with
AUTHAPP_ENV=testing, started by bench/launch.py (the one launcher of tests and bench). A module
changes its server's environment with a module-level `GUNICORN_ENV = {"NAME": "value"}`; an
indirect parametrisation (`@pytest.mark.parametrize("server", [{...}], indirect=True)`) adds to
that. Each distinct environment gets its own database, so servers never share state (the
testing clock included).

`request_json` sends one request over a fresh connection (`Connection: close`), so successive
requests are spread over both workers; it uses the standard library only.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa

from authapp.cli.seed import seed_database
from authapp.models import User
from authapp.platform.extensions import db
from bench import launch
from bench.stack import production_secrets
from tests.conftest import PASSWORD, TEST_SECRETS, build_app, scratch_database, worker_name

ROOT = launch.ROOT
BIN = launch.BIN
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "seeded operator passphrase for gunicorn"  # policy-valid: no "admin" in it
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    log_path: Path
    stdout_path: Path
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # also right for `flask`
    # The client's own address (another loopback address is another client, behind nginx).
    source: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def source_address(self) -> tuple[str, int] | None:
        return (self.source, 0) if self.source else None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") + self.stdout_path.read_text(
            errors="replace"
        )


Response = tuple[int, http.client.HTTPMessage, Any]


def request_json(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One request over a fresh connection: (status, headers, JSON body or None)."""
    conn = http.client.HTTPConnection(
        server.host, server.port, timeout=REQUEST_TIMEOUT, source_address=server.source_address
    )
    try:
        sent = {"Connection": "close", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        payload = (
            json.loads(raw)
            if raw and "json" in (response.getheader("Content-Type") or "")
            else None
        )
        return response.status, response.headers, payload
    finally:
        conn.close()


def all_at_once(count: int, call: Callable[[], Response]) -> list[Response | BaseException]:
    """`call` from `count` threads released together by a barrier; an exception is returned."""
    barrier = threading.Barrier(count, timeout=REQUEST_TIMEOUT)

    def one() -> Response | BaseException:
        barrier.wait()
        try:
            return call()
        except OSError as exc:  # a reset or timeout is an answer to report, not to hide
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(one) for _ in range(count)]
        return [future.result() for future in futures]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def sign_up(server: Server, *, confirmed: bool = False, **fields: Any) -> dict[str, Any]:
    """A fresh account (uuid email unless given); returns the 201 body (token pair + user).
    `confirmed`: its address is marked confirmed, as its mailed link would (MFA, API keys and
    administration wait for that)."""
    body = {"email": f"{unique('live.')}@example.com", "password": PASSWORD, **fields}
    status, _, payload = request_json(server, "POST", "/api/v1/auth/signup", body)
    assert status == 201, payload
    if confirmed:
        confirm_email_on(server, payload["user"]["email"])
    return payload


def confirm_email_on(server: Server, email: str) -> None:
    """Mark the address confirmed in the server's database."""
    engine = sa.create_engine(server.env["DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(User)
                .where(User.email_normalized == email.strip().lower())
                .values(email_verified_at=sa.func.now())
            )
    finally:
        engine.dispose()


def log_in(server: Server, login: str, password: str = PASSWORD) -> dict[str, Any]:
    """A new session; returns the 200 body (token pair + user)."""
    status, _, payload = request_json(
        server, "POST", "/api/v1/auth/login", {"login": login, "password": password}
    )
    assert status == 200, payload
    return payload


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_flask(env: Mapping[str, str], *args: str) -> str:
    """`flask --app authapp ARGS` in `env`; its output, or the test fails showing it."""
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "authapp", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def healthy(launched: launch.Launched) -> launch.Launched:
    """`launched` once it answers /healthz (gunicorn itself, or nginx in front of it); the test
    fails with its output when it exits first or takes too long."""
    try:
        return launch.wait_until_healthy(launched)
    except launch.LaunchError as exc:
        pytest.fail(str(exc), pytrace=False)


def served_by(launched: launch.Launched, env: Mapping[str, str]) -> Server:
    """The Server to send requests to: `launched`'s address and logs, `env` for `flask`."""
    return Server(launched.host, launched.port, launched.log_path, launched.stdout_path, env)


def _extra_env(request: pytest.FixtureRequest) -> dict[str, str]:
    extra: dict[str, str] = dict(getattr(request.module, "GUNICORN_ENV", {}))
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, Mapping):
            raise TypeError(f"server is parametrised with an environment mapping, not {param!r}")
        extra |= dict(param)
    for name, value in extra.items():
        if not isinstance(value, str):
            raise TypeError(f"GUNICORN_ENV[{name!r}] must be a string, not {value!r}")
    return extra


def _database_name(request: pytest.FixtureRequest, extra: Mapping[str, str]) -> str:
    """Stable per module and environment (a crashed run's leftover is dropped next time)."""
    module = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    digest = hashlib.sha256(json.dumps(sorted(extra.items())).encode()).hexdigest()[:6]
    return worker_name(f"live_{module[:32]}_{digest}")


def server_env(database_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment the `server` fixture (and tests/faults) give gunicorn and `flask`: a
    module's `extra` (GUNICORN_ENV) wins."""
    env = {
        **os.environ,
        **TEST_SECRETS,
        "DATABASE_URL": database_url,
        "AUTHAPP_ENV": "testing",
        "BCRYPT_ROUNDS": "4",
        "SEED_ADMIN_EMAIL": ADMIN_EMAIL,
        "SEED_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATELIMIT_ENABLED": "false",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        **extra,
    }
    env.pop("FLASK_APP", None)
    return env


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    extra = _extra_env(request)
    with running_server(_database_name(request, extra), extra, tmp_path_factory) as started:
        yield started


@contextmanager
def running_server(
    database: str,
    extra: Mapping[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    port: int | None = None,
) -> Iterator[Server]:
    """gunicorn on a new, migrated and seeded database `database`, with `extra` in its
    environment, on `port` (a free one by default; given when a peer must know the address
    first); stopped and dropped afterwards (the `server` fixture's, for a module that must
    build its environment first)."""
    with scratch_database(database) as url:
        env = server_env(url, extra)
        run_flask(env, "db", "upgrade")
        run_flask(env, "seed")
        gunicorn = launch.start_gunicorn(
            env, tmp_path_factory.mktemp("gunicorn"), port=port, wait=False
        )
        try:
            healthy(gunicorn)
            yield served_by(gunicorn, env)
        finally:
            gunicorn.stop()


def refresh_race(server: Server, token: str, racers: int) -> list[Response | BaseException]:
    """`racers` concurrent refreshes of one token, each on its own connection (F9)."""
    body = {"refresh_token": token}
    return all_at_once(racers, lambda: request_json(server, "POST", "/api/v1/auth/refresh", body))


def describe(answers: list[Response | BaseException]) -> list[Any]:
    """(status, body) per answer, or the connection error: for assertion messages."""
    return [
        answer if isinstance(answer, BaseException) else (answer[0], answer[2])
        for answer in answers
    ]


def gunicorn_processes(server: Server) -> tuple[int, set[int]]:
    """(master pid, worker pids), found in /proc by the GUNICORN_BIND only this server has."""
    marker = f"GUNICORN_BIND={server.host}:{server.port}".encode()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile, or not ours
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    masters = [pid for pid, parent in parents.items() if parent not in parents]
    assert len(masters) == 1, parents
    return masters[0], {pid for pid, parent in parents.items() if parent == masters[0]}


# The Redis database of the scale-out modules (test_scale_out_*.py), one per xdist worker
# (tests/app/auth: 1-14 from gw0 up, tests/app/mfa/test_limits_and_races.py: 3-6,
# test_mfa_on_gunicorn.py: 7-8, test_limits_across_workers.py: 14-15, bench: 11).
SCALE_OUT_REDIS_URI = (
    f"redis://127.0.0.1:6379/{9 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0) % 2}"
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[dict[str, str]]:
    """The environment every host shares: one database (migrated and seeded once, from one
    place, before any master starts), one Redis, the same secrets."""
    shared_secrets = production_secrets()
    with scratch_database(worker_name("live_scale_out")) as url:
        env = {
            **os.environ,
            **shared_secrets,
            "AUTHAPP_ENV": "production",
            "DATABASE_URL": url,
            "BCRYPT_ROUNDS": "10",  # production's floor: the suite stays fast
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": SCALE_OUT_REDIS_URI,
            "TRUSTED_PROXIES": "127.0.0.1",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
        for name in ("FLASK_APP", "PROMETHEUS_MULTIPROC_DIR", "JWT_PRIVATE_KEY_FILE"):
            env.pop(name, None)
        # `flask db upgrade` and `flask seed` (the built-in roles every sign-up needs), done in
        # this process: each `flask` command boots the app in a new one, seconds on a busy box.
        app = build_app(url, **shared_secrets)
        with app.app_context():
            flask_migrate.upgrade()
            seed_database()
            db.engine.dispose()
        yield env
