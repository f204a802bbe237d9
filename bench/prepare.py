"""Accounts, tokens and API keys made before the load starts, written one per line for the Lua
scripts. authapp's go through its API (as clients make them); the baseline's straight into its
table, with tokens signed by the bench (the baseline has no API for it beyond login)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import jwt
import psycopg2

from bench.baseline_app import create_schema
from bench.stack import ADMIN_EMAIL, PASSWORD

ATTEMPTS = 20  # a busy hashing semaphore answers 503: try again
# A cost-12 hash takes ~0.25 s per core: more in flight only queues on the semaphore.
PARALLEL = 4


@dataclass(frozen=True)
class Account:
    email: str
    access_token: str
    refresh_token: str


def call(base_url: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """One JSON request; the decoded answer, retried while the service says it is busy."""
    parts = urlsplit(base_url)
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    for _ in range(ATTEMPTS):
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        if response.status in (429, 503):
            time.sleep(float(response.getheader("Retry-After") or 1))
            continue
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {raw[:500]!r}")
        return json.loads(raw) if raw else None
    raise SystemExit(f"{method} {path}: still busy after {ATTEMPTS} attempts")


def sign_up_accounts(base_url: str, count: int, nonce: str) -> list[Account]:
    def one(index: int) -> Account:
        email = f"bench-{nonce}-{index}@example.com"
        pair = call(base_url, "POST", "/api/v1/auth/signup", {"email": email, "password": PASSWORD})
        return Account(email, pair["access_token"], pair["refresh_token"])

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(count)))


def create_api_keys(base_url: str, count: int) -> list[str]:
    """Keys of the seeded organization (tier enterprise), made by its owner."""
    pair = call(
        base_url, "POST", "/api/v1/auth/login", {"login": ADMIN_EMAIL, "password": PASSWORD}
    )
    bearer = f"Bearer {pair['access_token']}"
    keys = []
    for index in range(count):
        created = call(
            base_url,
            "POST",
            "/api/v1/settings/api-keys",
            {"name": f"bench {index}", "scopes": ["users:read"]},
            Authorization=bearer,
        )
        keys.append(created["key"])
    return keys


def baseline_accounts(database_url: str, count: int, nonce: str, jwt_secret: str) -> list[str]:
    """The baseline's table and `count` users sharing one cost-12 hash; their access tokens."""
    create_schema(database_url)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    rows = [
        (str(uuid.uuid4()), f"bench-{nonce}-{index}@example.com", password_hash)
        for index in range(count)
    ]
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO users (id, email, password_hash) VALUES (%s, %s, %s)", rows)
    conn.close()
    expires = int(time.time()) + 4 * 3600
    return [jwt.encode({"sub": row[0], "exp": expires}, jwt_secret, "HS256") for row in rows]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
