"""What a run stands on: scratch PostgreSQL databases and gunicorn masters, each in its own
process group: authapp's started as operators start it (`gunicorn -c gunicorn.conf.py ...`), the
baseline's on plain gunicorn (its command-line defaults, no configuration file)."""

from __future__ import annotations

import http.client
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START_SECONDS = 30.0
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@dataclass
class Server:
    """A gunicorn master on 127.0.0.1:`port`; its output in `log_path` (for authapp the JSON
    log, gunicorn's and the app's; for plain gunicorn only gunicorn's own lines)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children (its workers), read from /proc."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the workers alive now, read from /proc."""
        ticks = 0
        for pid in self.worker_pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # After "pid (comm)": state is field 3, utime field 14 and stime field 15.
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group: master and workers
            self.process.wait(timeout=10)


def start_gunicorn(
    name: str, app: str, env: Mapping[str, str], logdir: Path, *, workers: int = 2
) -> Server:
    """`gunicorn -c gunicorn.conf.py APP` with `workers` gthread workers; waits for /healthz."""
    port = free_port()
    full_env = {**env, "GUNICORN_WORKERS": str(workers), "GUNICORN_BIND": f"127.0.0.1:{port}"}
    command = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", app]
    return start_server(name, command, full_env, logdir, port)


def plain_gunicorn_command(app: str, bind: str, *, workers: int, threads: int) -> list[str]:
    """gunicorn with nothing but its defaults and these flags: no configuration file, no hooks,
    no access log (gunicorn's own lines go to stderr), no control socket."""
    return [
        str(BIN / "gunicorn"),
        "-k",
        "gthread",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        bind,
        "--no-control-socket",
        # Run from `logdir` (below): gunicorn reads ./gunicorn.conf.py when no -c is given, and
        # the repository's would bring authapp's logging and hooks. --chdir then lets the
        # workers import APP from the repository.
        "--chdir",
        str(ROOT),
        app,
    ]


def start_plain_gunicorn(
    name: str,
    app: str,
    env: Mapping[str, str],
    logdir: Path,
    *,
    workers: int = 2,
    threads: int = 8,
) -> Server:
    """APP on plain gunicorn (`plain_gunicorn_command`); waits for /healthz."""
    port = free_port()
    command = plain_gunicorn_command(app, f"127.0.0.1:{port}", workers=workers, threads=threads)
    # GUNICORN_CMD_ARGS in the environment would add settings of its own.
    plain_env = {k: v for k, v in env.items() if k != "GUNICORN_CMD_ARGS"}
    return start_server(name, command, plain_env, logdir, port, cwd=logdir)


def start_server(
    name: str,
    command: list[str],
    env: Mapping[str, str],
    logdir: Path,
    port: int,
    *,
    cwd: Path = ROOT,
) -> Server:
    """`command` (a gunicorn master listening on 127.0.0.1:`port`) in its own process group,
    its output in `logdir`/NAME.log; waits for /healthz."""
    log_path = logdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, process, log_path)
    _wait_for_health(server)
    return server


def _wait_for_health(server: Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"{server.name}: gunicorn exited with {server.process.returncode}:\n"
                + server.log_since(0)[-4000:]
            )
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"{server.name} did not answer /healthz in {START_SECONDS} s")
