"""Bringing up what a bench or soak run measures: authapp as operators deploy it (migrated,
seeded, production settings) and the baseline (the floor: a bare app on plain gunicorn), each on
its own scratch database."""

from __future__ import annotations

import os
import platform
import secrets
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authapp.platform.config import SECRET_NAMES, SETTINGS
from bench import calibrate, prepare, stack
from bench.loadgen import wrk_path
from bench.options import Options

# The floor's gunicorn: gthread, 2 workers as authapp, 8 threads each (its pool has as many
# connections). Fixed, not read from GUNICORN_*: those configure authapp's gunicorn.conf.py.
BASELINE_WORKERS = 2
BASELINE_THREADS = 8
BASELINE_APP = "bench.baseline_app:app"


def show(text: str) -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def say(line: str) -> None:
    show(f"[bench] {line}")


def check_prerequisites(opts: Options) -> None:
    wrk_path()
    if not stack.port_open(opts.postgres_url):
        raise SystemExit(f"PostgreSQL is unreachable at {opts.postgres_url} (BENCH_POSTGRES_URL)")
    if opts.ratelimit == "redis" and not stack.port_open(opts.redis_url):
        raise SystemExit(
            f"Redis is unreachable at {opts.redis_url}: set BENCH_REDIS_URL, or "
            "BENCH_RATELIMIT=off to run without rate limits"
        )


def ratelimit_note(opts: Options) -> str:
    if opts.ratelimit == "off":
        return "RATELIMIT_ENABLED=false (no limits, no API-key budgets)"
    return (
        f"rate limits on, counted in Redis ({opts.redis_url}); login, sign-up and refresh "
        f"per-address limits raised to {stack.RAISED_LIMIT} (all load comes from one address)"
    )


@dataclass(frozen=True)
class Authapp:
    server: stack.Server
    database_url: str
    env: dict[str, str]


def start_authapp(
    opts: Options, exits: ExitStack, workdir: Path, nonce: str, **overrides: str
) -> Authapp:
    """`flask db upgrade`, `flask seed`, the seeded organization on the enterprise tier (its
    API keys' budget), then gunicorn. Stopped, and its database dropped, by `exits`."""
    database = exits.enter_context(stack.scratch_database(opts.postgres_url, f"bench_{nonce}"))
    env = stack.authapp_env(database, ratelimit=opts.ratelimit, redis_url=opts.redis_url)
    env |= overrides
    say("authapp: flask db upgrade, seed, org set-tier Default enterprise")
    stack.flask(env, "db", "upgrade")
    stack.flask(env, "seed")
    stack.flask(env, "org", "set-tier", env.get("DEFAULT_ORG_NAME", "Default"), "enterprise")
    server = stack.start_gunicorn("authapp", "wsgi:app", env, workdir)
    exits.callback(server.stop)
    return Authapp(server, database, env)


def start_baseline(
    opts: Options, exits: ExitStack, workdir: Path, nonce: str
) -> tuple[stack.Server, list[str]]:
    """The baseline with `opts.users` accounts (the same addresses as authapp's) on plain
    gunicorn; their access tokens."""
    database = exits.enter_context(
        stack.scratch_database(opts.postgres_url, f"bench_{nonce}_baseline")
    )
    jwt_secret = secrets.token_urlsafe(48)
    env = stack.base_env() | {
        "BASELINE_DATABASE_URL": database,
        "BASELINE_JWT_SECRET": jwt_secret,
        "BASELINE_THREADS": str(BASELINE_THREADS),
        "BCRYPT_ROUNDS": "12",
    }
    say(f"baseline: {opts.users} users, tokens signed by the bench")
    tokens = prepare.baseline_accounts(database, opts.users, nonce, jwt_secret)
    say(f"baseline: {baseline_note()}")
    server = stack.start_plain_gunicorn(
        "baseline",
        BASELINE_APP,
        env,
        workdir,
        workers=BASELINE_WORKERS,
        threads=BASELINE_THREADS,
    )
    exits.callback(server.stop)
    return server, tokens


@dataclass(frozen=True)
class Prepared:
    """authapp's accounts and keys, one per line in files for the Lua scripts."""

    emails: Path
    access_tokens: Path
    refresh_tokens: Path
    api_keys: Path


def prepare_authapp(opts: Options, server: stack.Server, workdir: Path, nonce: str) -> Prepared:
    say(f"authapp: {opts.users} sign-ups and {opts.api_keys} API keys through the API")
    accounts = prepare.sign_up_accounts(server.url, opts.users, nonce)
    keys = prepare.create_api_keys(server.url, opts.api_keys)
    return Prepared(
        emails=prepare.write_lines(workdir / "emails.txt", [a.email for a in accounts]),
        access_tokens=prepare.write_lines(
            workdir / "tokens.txt", [a.access_token for a in accounts]
        ),
        refresh_tokens=prepare.write_lines(
            workdir / "refresh.txt", [a.refresh_token for a in accounts]
        ),
        api_keys=prepare.write_lines(workdir / "api-keys.txt", keys),
    )


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=stack.ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    wrk = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True, check=False)
    return {
        "cores": calibrate.cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0],
        "commit": commit,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def gunicorn_note(**overrides: str) -> str:
    def setting(name: str, default: str) -> str:
        return overrides.get(name) or os.environ.get(name) or default

    return (
        "gunicorn -c gunicorn.conf.py: 2 gthread workers, "
        f"{setting('GUNICORN_THREADS', '48')} threads, "
        f"max_requests {setting('GUNICORN_MAX_REQUESTS', '100000')}"
    )


def baseline_note() -> str:
    command = stack.plain_gunicorn_command(
        BASELINE_APP, "127.0.0.1:PORT", workers=BASELINE_WORKERS, threads=BASELINE_THREADS
    )
    return " ".join([Path(command[0]).name, *command[1:]]) + (
        " (no configuration file, no access log, no hooks)"
    )


def overrides() -> dict[str, str]:
    """authapp and gunicorn settings this run inherited from the environment (secrets aside),
    so a result with PASSWORD_HASH_WAIT_SECONDS=0.05 or GUNICORN_THREADS=16 says so."""
    secret = {*SECRET_NAMES, "DATA_ENCRYPTION_KEY", "DATABASE_URL", "SEED_ADMIN_PASSWORD"}
    names = {name for name in SETTINGS if name not in secret}
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name in names or name.startswith("GUNICORN_")
    }


AUTHAPP_NOTE = (
    "AUTHAPP_ENV=production, BCRYPT_ROUNDS=12, PostgreSQL, secrets generated for the run, "
    "SMTP_URL unset (mail is logged), LOG_LEVEL=INFO (JSON access log to a file)"
)
