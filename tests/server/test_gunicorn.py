"""End to end: `flask db upgrade`, `flask seed`, then real gunicorn (2 gthread workers) on
PostgreSQL, driven over HTTP with the standard library only.

ER-1 (one error envelope), IN-4 (request ids: echoed when sane, replaced when not,
and carried into the JSON access log), F2 (the deployment commands of docs/deployment.md work as
written).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import launch
from tests.conftest import PASSWORD, TEST_SECRETS
from tests.server.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ROOT,
    request_json,
    sign_up,
    unique,
)

SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def test_sign_up_then_log_in_by_username_in_any_case(server):
    """ER-1: JSON in, JSON out, through gunicorn; usernames match case-insensitively."""
    username = unique("Live_")
    signed_up = sign_up(server, username=username)

    for login in (username, username.lower(), username.upper()):
        status, headers, body = request_json(
            server, "POST", "/api/v1/auth/login", {"login": login, "password": PASSWORD}
        )
        assert status == 200, (login, body)
        assert headers["Content-Type"].startswith("application/json")
        assert body["token_type"] == "Bearer"
        assert body["user"]["id"] == signed_up["user"]["id"]
        assert body["user"]["username"] == username


def test_a_token_from_one_worker_is_accepted_by_every_worker(server):
    """Every worker shares the JWT key: twelve fresh connections, every one 200, same user."""
    signed_up = sign_up(server)
    token = signed_up["access_token"]

    answers = [
        request_json(server, "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        for _ in range(12)
    ]

    assert [status for status, _, _ in answers] == [200] * 12, [body for _, _, body in answers]
    assert {body["user"]["id"] for _, _, body in answers} == {signed_up["user"]["id"]}


def test_the_seeded_admin_can_log_in(server):
    """`flask seed` and the server agree on the pepper: the admin's password works."""
    status, _, body = request_json(
        server, "POST", "/api/v1/auth/login", {"login": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )

    assert status == 200, body
    assert body["user"]["email"] == ADMIN_EMAIL
    assert "owner" in body["user"]["roles"]


def test_unknown_account_is_401_invalid_credentials_with_a_bearer_challenge(server):
    """ER-1: the error envelope and the WWW-Authenticate challenge survive gunicorn."""
    status, headers, body = request_json(
        server,
        "POST",
        "/api/v1/auth/login",
        {"login": f"{unique('nobody.')}@example.com", "password": PASSWORD},
    )

    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert body["error"]["code"] == "invalid_credentials"
    assert body["request_id"] == headers["X-Request-ID"]


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def test_request_id_is_echoed_and_written_to_the_json_access_log(server):
    """IN-4: a sane X-Request-ID is echoed and lands on gunicorn's access log line."""
    status, headers, _ = request_json(
        server, "GET", "/healthz", headers={"X-Request-ID": "live-check-123"}
    )

    assert status == 200
    assert headers["X-Request-ID"] == "live-check-123"

    def access_lines() -> list[dict[str, Any]]:
        return [
            record
            for record in _json_lines(server.log_path)
            if record.get("request_id") == "live-check-123"
            and record.get("logger") == "gunicorn.access"
        ]

    deadline = time.monotonic() + 5  # the access line is written after the response is sent
    while not access_lines() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = access_lines()
    assert lines, f"no gunicorn.access JSON line with the request id:\n{server.logs()}"
    assert lines[-1]["status"] in (200, "200")


def test_unsafe_request_id_is_replaced_by_a_fresh_one(server):
    """IN-4: a request id with spaces or markup is never echoed (log and header injection)."""
    sent = "bad id<script>"

    status, headers, _ = request_json(server, "GET", "/healthz", headers={"X-Request-ID": sent})

    assert status == 200
    echoed = headers["X-Request-ID"]
    assert echoed != sent
    assert SANE_REQUEST_ID.fullmatch(echoed), echoed


def test_chunked_body_over_the_limit_is_413_through_gunicorn(server):
    """IN-1, F17: a body without Content-Length cannot slip past MAX_CONTENT_LENGTH."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/auth/login")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Connection", "close")
        conn.endheaders()
        chunk = b"x" * 8192
        for _ in range(10):  # 80 KiB > 64 KiB
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()

    assert response.status == 413
    assert body["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("storage", "workers", "refused"),
    [("memory://", "2", True), ("redis://127.0.0.1:6379/0", "2", False), ("memory://", "1", False)],
)
def test_production_refuses_per_process_rate_limits_with_several_workers(storage, workers, refused):
    """Limits counted per worker would be multiplied by the worker count (RL-1, F13)."""
    env = {
        **os.environ,
        **TEST_SECRETS,  # strong enough for production, so only the storage can be refused
        "AUTHAPP_ENV": "production",
        "BCRYPT_ROUNDS": "12",
        "DATABASE_URL": "sqlite://",
        "RATELIMIT_STORAGE_URI": storage,
        "GUNICORN_WORKERS": workers,
    }

    result = subprocess.run(
        launch.gunicorn_command("wsgi:app", "--check-config"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert (result.returncode != 0) == refused, result.stderr
    assert ("RATELIMIT_STORAGE_URI" in result.stderr + result.stdout) == refused


def test_an_unset_environment_is_production_and_gunicorn_refuses_in_one_line():
    """Fail closed: without AUTHAPP_ENV and without secrets the master stops before any worker
    boots, with the reason in one line (no worker traceback)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHAPP")}
    for name in (*TEST_SECRETS, "GUNICORN_BIND"):
        env.pop(name, None)
    env |= {"DATABASE_URL": "sqlite://", "GUNICORN_WORKERS": "1"}

    result = subprocess.run(
        launch.gunicorn_command("wsgi:app", "--check-config"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    output = result.stderr + result.stdout
    assert result.returncode != 0, output
    assert "authapp refuses to start: SECRET_KEY must be set in production" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/no/such/page"), ("GET", "/api/v1/nothing"), ("TRACE", "/")],
)
def test_no_answer_discloses_a_version(server, method, path):
    """ER-1: neither gunicorn's Server header nor any other header or JSON body names a version."""
    status, headers, body = request_json(server, method, path)
    assert status in (200, 404, 405)
    assert headers.get("Server", "") in ("", "gunicorn")
    assert "X-Powered-By" not in headers
    for name, value in headers.items():
        assert not re.search(r"(?i)(gunicorn|werkzeug|python|flask)/\d", value), (name, value)
    assert not re.search(r"(?i)(gunicorn|werkzeug|python|flask)/\d", json.dumps(body))
