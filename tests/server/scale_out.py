"""Scale-out (F13, docs/architecture.md "Rules", rule 4): two gunicorn masters, 2 gthread workers
each, on two ports, one PostgreSQL database, one Redis database and the same secrets, behind
nothing but their ports. What one master issues, the other accepts; what one revokes, the other
refuses on the very next request; a rate limit or an API key's budget is one count for both; and
a signing-key rotation half done (one host switched) verifies every token on every host.

Both masters run as production does (`AUTHAPP_ENV=production`, secrets generated for the
module, `BCRYPT_ROUNDS=10`, Redis limits), with `TRUSTED_PROXIES=127.0.0.1`: the test plays the
load balancer and names each request's client in `X-Forwarded-For`. Every request gets an
address of its own unless a test names one, so no test spends another's per-address budget and
two runs sharing the Redis database never meet. Every request opens a fresh connection, so
both workers of a master answer.

What the scale-out tests (test_scale_out_*.py) share: masters started together on one
deployment, requests from clients of their own, answers compared across masters."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from bench import launch
from tests.conftest import PASSWORD
from tests.server.conftest import Response, Server, healthy, request_json, served_by, unique

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ATTEMPTS = 6  # fresh connections per master and check, so both of its workers answer


def client_address() -> str:
    """A client of its own: a random /64 of the documentation prefix 2001:db8::/32 (the rate
    limits count an IPv6 client by its /64)."""
    return str(ipaddress.IPv6Address(0x20010DB8 << 96 | random.getrandbits(32) << 64 | 1))


def call(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    client: str | None = None,
) -> Response:
    """One request over a fresh connection, forwarded for `client` (a new one by default)."""
    sent = {"X-Forwarded-For": client or client_address(), **(headers or {})}
    return request_json(server, method, path, body, sent)


def code_of(answer: Response) -> tuple[int, str | None]:
    status, _, body = answer
    error = body.get("error") if isinstance(body, dict) else None
    return status, error["code"] if error else None


def answers(servers: tuple[Server, ...], method: str, path: str, **kwargs: Any) -> list[Any]:
    """(status, error code) of ATTEMPTS requests on each server in turn."""
    return [
        code_of(call(server, method, path, **kwargs)) for server in servers for _ in range(ATTEMPTS)
    ]


def every(servers: tuple[Server, ...], status: int, code: str | None = None) -> list[Any]:
    return [(status, code)] * ATTEMPTS * len(servers)


def sign_up(server: Server) -> dict[str, Any]:
    """A new account, owner of a new organization; the 201 body (token pair + user)."""
    body = {
        "email": f"{unique('scale.')}@example.com",
        "password": PASSWORD,
        "organization_name": unique("Org "),
    }
    status, _, payload = call(server, "POST", "/api/v1/auth/signup", body)
    assert status == 201, payload
    return payload


def log_in(
    server: Server, login: str, password: str = PASSWORD, *, client: str | None = None
) -> dict[str, Any]:
    status, _, payload = call(
        server, "POST", LOGIN, {"login": login, "password": password}, client=client
    )
    assert status == 200, payload
    return payload


def refresh(server: Server, pair: Mapping[str, Any]) -> Response:
    return call(server, "POST", REFRESH, {"refresh_token": pair["refresh_token"]})


# --- two masters on one database -------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: Server
    b: Server

    @property
    def both(self) -> tuple[Server, Server]:
        return self.a, self.b


def stop_all(masters: list[launch.Launched]) -> None:
    """Every master at once: a gthread master takes a few seconds to stop, even idle."""
    with ThreadPoolExecutor(max_workers=max(len(masters), 1)) as pool:
        list(pool.map(launch.Launched.stop, masters))


@contextmanager
def masters(
    envs: list[Mapping[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    """A gunicorn master (2 workers) per environment, each on its own port with its own
    PROMETHEUS_MULTIPROC_DIR; all started before any is waited for, all stopped afterwards."""
    started: list[launch.Launched] = []
    with ExitStack() as stack:
        stack.callback(stop_all, started)
        for env in envs:
            logs = tmp_path_factory.mktemp("master")
            (logs / "metrics").mkdir()
            master_env = {
                **env,
                "GUNICORN_GRACEFUL_TIMEOUT": "5",
                "PROMETHEUS_MULTIPROC_DIR": str(logs / "metrics"),
            }
            started.append(launch.start_gunicorn(master_env, logs, workers=2, wait=False))
        for master in started:
            healthy(master)
        yield [served_by(master, env) for master, env in zip(started, envs, strict=True)]
