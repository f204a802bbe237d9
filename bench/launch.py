"""The one launcher of server processes, for the benchmark and the tests alike: gunicorn as
operators start it (`gunicorn -c gunicorn.conf.py wsgi:app`), gunicorn with nothing but its
defaults (the bench's baseline), and any other server in front of them (the tests' nginx).

Every process starts in a session of its own, so a stop reaches the master and its workers;
its output goes to files (`Launched.logs()`), and a start waits for /healthz. It needs the
standard library only and knows nothing of pytest: a failed start raises LaunchError with the
process's output, which a test shows as its error and the bench as its exit message.

It lives in bench/ because the dependency then runs one way: the tests already stand on bench
(bench.wire, bench.stack), bench never imports tests, and `python -m bench.run` needs no test
code on its path.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START_SECONDS = 30.0
STOP_SECONDS = 15.0
KILL_SECONDS = 10.0
HOST = "127.0.0.1"


class LaunchError(RuntimeError):
    """A server exited during its start, or did not answer /healthz in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def gunicorn_command(app: str = "wsgi:app", *options: str) -> list[str]:
    """gunicorn as docs/deployment.md deploys it: the repository's gunicorn.conf.py, which reads its
    settings (GUNICORN_BIND, GUNICORN_WORKERS, ...) from the environment."""
    return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", *options, app]


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
        # Run from elsewhere (start_plain_gunicorn's `cwd`): gunicorn reads ./gunicorn.conf.py
        # when no -c is given, and the repository's would bring authapp's logging and hooks.
        # --chdir then lets the workers import APP from the repository.
        "--chdir",
        str(ROOT),
        app,
    ]


@dataclass
class Launched:
    """A server process listening on `host`:`port`. Its stderr goes to `log_path`, its stdout
    to `stdout_path` (the same file when they are one); `extra_logs` are files the server
    writes itself (nginx's error log), shown with them."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    stdout_path: Path
    extra_logs: tuple[Path, ...] = ()
    stop_seconds: float = STOP_SECONDS  # how long a stop waits after SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def logs(self) -> str:
        paths = dict.fromkeys((self.log_path, self.stdout_path, *self.extra_logs))
        return "".join(path.read_text(errors="replace") for path in paths if path.is_file())

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children (its workers), read from /proc."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return sorted(int(pid) for pid in children.read_text().split())
        except OSError:  # the master is gone
            return []

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

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL to its session (a master and its workers) after `timeout`
        (`stop_seconds` by default); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_seconds if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=KILL_SECONDS)
        return self.process.returncode


def spawn(
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    port: int,
    log_path: Path,
    *,
    stdout_path: Path | None = None,
    extra_logs: Sequence[Path] = (),
    cwd: Path = ROOT,
    user: str | None = None,
) -> Launched:
    """`command` (a server that will listen on 127.0.0.1:`port`) in a session of its own; its
    stderr to `log_path`, its stdout to `stdout_path` (or to `log_path` too). Does not wait."""
    stdout_path = stdout_path or log_path
    with log_path.open("wb") as stderr:
        if stdout_path == log_path:
            process = _popen(command, env, cwd, stderr, subprocess.STDOUT, user)
        else:
            with stdout_path.open("wb") as stdout:
                process = _popen(command, env, cwd, stdout, stderr, user)
    return Launched(name, HOST, port, process, log_path, stdout_path, tuple(extra_logs))


def _popen(
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    stdout: object,
    stderr: object,
    user: str | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdout=stdout,  # type: ignore[arg-type]
        stderr=stderr,  # type: ignore[arg-type]
        start_new_session=True,
        user=user,
    )


def wait_until_healthy(launched: Launched, timeout: float = START_SECONDS) -> Launched:
    """Until `launched` answers GET /healthz with 200; LaunchError (with its output) when it
    exits first or takes over `timeout` seconds, after stopping it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if launched.process.poll() is not None:
            raise LaunchError(
                f"{launched.name} exited with {launched.process.returncode}:\n{launched.logs()}"
            )
        if _healthz(launched) == 200:
            return launched
        time.sleep(0.1)
    launched.stop()
    raise LaunchError(
        f"{launched.name} did not answer /healthz within {timeout} s:\n{launched.logs()}"
    )


def _healthz(launched: Launched) -> int:
    conn = http.client.HTTPConnection(launched.host, launched.port, timeout=5)
    try:
        conn.request("GET", "/healthz", headers={"Connection": "close"})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def start_gunicorn(
    env: Mapping[str, str],
    logdir: Path,
    *,
    name: str = "gunicorn",
    app: str = "wsgi:app",
    port: int | None = None,
    workers: int | None = None,
    split_logs: bool = True,
    wait: bool = True,
) -> Launched:
    """`gunicorn -c gunicorn.conf.py APP` bound to 127.0.0.1:`port` (a free one by default),
    with `workers` workers (else GUNICORN_WORKERS of `env`). Logs: `logdir`/gunicorn.log
    (stderr: gunicorn's and the app's JSON log) and `logdir`/stdout.log, or with `split_logs`
    false both in `logdir`/NAME.log. `wait`: until /healthz answers."""
    port = port or free_port()
    full_env = {**env, "GUNICORN_BIND": f"{HOST}:{port}"}
    if workers is not None:
        full_env["GUNICORN_WORKERS"] = str(workers)
    if split_logs:
        logs = {"log_path": logdir / "gunicorn.log", "stdout_path": logdir / "stdout.log"}
    else:
        logs = {"log_path": logdir / f"{name}.log"}
    launched = spawn(name, gunicorn_command(app), full_env, port, **logs)
    return wait_until_healthy(launched) if wait else launched


def start_plain_gunicorn(
    env: Mapping[str, str],
    logdir: Path,
    *,
    name: str,
    app: str,
    workers: int,
    threads: int,
) -> Launched:
    """APP on plain gunicorn (`plain_gunicorn_command`), run from `logdir`, its output in
    `logdir`/NAME.log; waits for /healthz. GUNICORN_CMD_ARGS would add settings of its own."""
    port = free_port()
    command = plain_gunicorn_command(app, f"{HOST}:{port}", workers=workers, threads=threads)
    plain_env = {k: v for k, v in env.items() if k != "GUNICORN_CMD_ARGS"}
    launched = spawn(name, command, plain_env, port, logdir / f"{name}.log", cwd=logdir)
    return wait_until_healthy(launched)
