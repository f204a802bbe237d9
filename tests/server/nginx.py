"""nginx in front of a test gunicorn, configured by deploy/nginx/ as shipped (docs/deployment.md
"nginx in front").

The main configuration here only says where nginx keeps its files (pid, logs and temporary
files in a directory of the test's own) and where it listens (a free high port); the http
zones (authapp-http.conf) and the server (authapp-server.conf) are included as they are, and
the `upstream authapp` block is authapp.conf's with only gunicorn's address changed. nginx never
needs root: run as root (CI), it is started as `nobody`, by bench/launch.py as gunicorn is.

Debian's nginx (`/usr/sbin/nginx`): `make test` and `make faults` install it when missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from bench import launch
from tests.server.conftest import ROOT, Server, healthy

NGINX = Path("/usr/sbin/nginx")
DEPLOY = ROOT / "deploy" / "nginx"
SHIPPED_UPSTREAM = "server 127.0.0.1:8000;"
UNPRIVILEGED = "nobody"
# Another client than the test's default 127.0.0.1: behind nginx, per-client limits and the
# client address authapp records tell them apart (Server.source).
OTHER_CLIENT = "127.0.0.2"

MAIN = """\
worker_processes 1;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log info;
events {{
    worker_connections 4096;
}}
http {{
    access_log {home}/access.log;
    client_body_temp_path {home}/client_body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    include {deploy}/authapp-http.conf;
{upstream}
    server {{
        listen 127.0.0.1:{port};
        include {deploy}/authapp-server.conf;
    }}
}}
"""


def shipped_upstream(gunicorn: Server) -> str:
    """authapp.conf's `upstream authapp` block, pointed at `gunicorn`."""
    found = re.search(
        r"^upstream authapp \{\n.*?^\}\n", (DEPLOY / "authapp.conf").read_text(), re.M | re.S
    )
    assert found, "deploy/nginx/authapp.conf has no `upstream authapp { ... }` block"
    block = found.group(0)
    assert block.count(SHIPPED_UPSTREAM) == 1, block
    return block.replace(SHIPPED_UPSTREAM, f"server {gunicorn.host}:{gunicorn.port};")


def _home() -> Path:
    """nginx's own directory: under /tmp (pytest's base directory is closed to `nobody`)."""
    home = Path(tempfile.mkdtemp(prefix="authapp-nginx-"))
    if os.geteuid() == 0:
        shutil.chown(home, UNPRIVILEGED)
    return home


@contextmanager
def nginx_in_front(gunicorn: Server) -> Iterator[Server]:
    """nginx on a free port, proxying to `gunicorn`; the Server to send requests to (its logs
    are nginx's error and access logs). Stopped (SIGTERM, then SIGKILL) afterwards."""
    if not NGINX.is_file():
        pytest.fail(
            f"{NGINX} is missing: `make test` installs Debian's nginx (apt-get install -y nginx)",
            pytrace=False,
        )
    home = _home()
    port = launch.free_port()
    # The shipped files, copied unchanged: nginx's workers run as `nobody`, who may not read a
    # checkout in a private directory (mktemp -d is 0700).
    shipped = home / "deploy"
    shutil.copytree(DEPLOY, shipped)
    config = home / "nginx.conf"
    config.write_text(
        MAIN.format(home=home, deploy=shipped, upstream=shipped_upstream(gunicorn), port=port)
    )
    front = Server("127.0.0.1", port, home / "error.log", home / "access.log", gunicorn.env)
    for log in (front.log_path, front.stdout_path):
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(log, UNPRIVILEGED)
    nginx = launch.spawn(
        "nginx",
        [str(NGINX), "-p", str(home), "-c", str(config), "-e", str(front.log_path)],
        os.environ,
        port,
        home / "stderr.log",
        extra_logs=(front.log_path,),
        user=UNPRIVILEGED if os.geteuid() == 0 else None,
    )
    try:
        healthy(nginx)
        yield front
    finally:
        nginx.stop()
        shutil.rmtree(home, ignore_errors=True)


def another_client(front: Server) -> Server:
    return replace(front, source=OTHER_CLIENT)


def hung_up(sock: socket.socket) -> bool:
    """True once the server is done with `sock`: it closed it, or answered (an error)."""
    sock.setblocking(False)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
    return True
