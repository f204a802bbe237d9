"""What a run stands on: scratch PostgreSQL databases and gunicorn masters, each in its own
process group: authapp's started as operators start it (`gunicorn -c gunicorn.conf.py ...`), the
baseline's on plain gunicorn (its command-line defaults, no configuration file). Both are
started by bench/launch.py, the one launcher the tests use too."""

from __future__ import annotations

import os
import resource
import secrets
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from cryptography.fernet import Fernet

from bench import launch

ROOT = launch.ROOT
BIN = launch.BIN
plain_gunicorn_command = launch.plain_gunicorn_command
ADMIN_EMAIL = "bench-admin@example.com"
# Every account of a run shares this password: policy-valid and unrelated to the addresses.
PASSWORD = "correct horse battery staple under load"
# The per-address limits are raised for throughput scenarios: all load comes from 127.0.0.1,
# so the real 10/minute would measure the limiter, not the work. They are still counted.
RAISED_LIMIT = "1000000/minute"


def raise_open_files() -> int:
    """The soft limit on open files up to the hard one (1,000 connections need them); children
    (wrk, gunicorn) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def port_open(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError:
        return False
    return True


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    """A new empty database beside `server_url`'s, dropped afterwards (also on Ctrl-C)."""
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
        yield database_url(server_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def production_secrets() -> dict[str, str]:
    """Real secrets for this run only: production refuses placeholders."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "PASSWORD_PEPPER": secrets.token_urlsafe(48),
        "DATA_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("FLASK_APP", "GUNICORN_BIND"):
        env.pop(name, None)
    return env


def authapp_env(database: str, *, ratelimit: str, redis_url: str) -> dict[str, str]:
    """AUTHAPP_ENV=production at the production password cost, with this run's secrets."""
    env = base_env() | production_secrets()
    env |= {
        "AUTHAPP_ENV": "production",
        "DATABASE_URL": database,
        "BCRYPT_ROUNDS": "12",
        "SEED_ADMIN_EMAIL": ADMIN_EMAIL,
        "SEED_ADMIN_PASSWORD": PASSWORD,
        # Tokens are minted once before the run; a long run must not outlive them.
        "ACCESS_TOKEN_TTL": "4h",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    if ratelimit == "off":
        env["RATELIMIT_ENABLED"] = "false"
    else:
        env |= {
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_STORAGE_URI": redis_url,
            "RATELIMIT_LOGIN": RAISED_LIMIT,
            "RATELIMIT_SIGNUP": RAISED_LIMIT,
            "RATELIMIT_REFRESH": RAISED_LIMIT,
        }
    return env


def flask(env: Mapping[str, str], *args: str) -> str:
    """`flask --app authapp ARGS`; its output, or SystemExit showing why it failed."""
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "authapp", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# The benchmark's servers are the launcher's: name, port, url, log_size, log_since, worker_pids,
# cpu_seconds, stop.
Server = launch.Launched
STOP_SECONDS = 40.0  # a master stopping right after a heavy load takes its time


def start_gunicorn(
    name: str, app: str, env: Mapping[str, str], logdir: Path, *, workers: int = 2
) -> Server:
    """`gunicorn -c gunicorn.conf.py APP` with `workers` gthread workers, its output in
    `logdir`/NAME.log; waits for /healthz."""
    return _started(
        lambda: launch.start_gunicorn(
            env, logdir, name=name, app=app, workers=workers, split_logs=False
        )
    )


def start_plain_gunicorn(
    name: str,
    app: str,
    env: Mapping[str, str],
    logdir: Path,
    *,
    workers: int = 2,
    threads: int = 8,
) -> Server:
    """APP on plain gunicorn (launch.plain_gunicorn_command); waits for /healthz."""
    return _started(
        lambda: launch.start_plain_gunicorn(
            env, logdir, name=name, app=app, workers=workers, threads=threads
        )
    )


def _started(start: Callable[[], Server]) -> Server:
    try:
        server = start()
    except launch.LaunchError as exc:
        raise SystemExit(str(exc)[-4000:]) from None
    server.stop_seconds = STOP_SECONDS
    return server
