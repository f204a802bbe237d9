"""The baseline, the bench's floor: a bare Flask app doing only the work no auth service can
avoid, on plain gunicorn.

    GET  /ping                constant JSON: the server and framework alone (validates the floor)
    GET  /api/v1/auth/me      one JWT decode (PyJWT, HS256) + one primary-key SELECT
    POST /api/v1/auth/login   one SELECT + one bcrypt check + one JWT encode
    POST /api/v1/auth/signup  one bcrypt hash + one INSERT

Served by `gunicorn -k gthread -w 2 --threads 8 ...` with no configuration file (bench/launch.py,
`plain_gunicorn_command`): no access log, no logging setup, no hooks, nothing from authapp. It
must not import authapp nor read its settings, or it stops being a floor (bench/README.md).
Connections come from a psycopg2 pool per worker, one per gunicorn thread, in autocommit: one
statement, one round trip. Configured by BASELINE_DATABASE_URL, BASELINE_JWT_SECRET,
BASELINE_THREADS (the pool size: gunicorn's --threads, 8) and BCRYPT_ROUNDS.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import bcrypt
import jwt
import psycopg2
from flask import Flask, jsonify, request
from psycopg2 import errors
from psycopg2.extensions import connection
from psycopg2.pool import ThreadedConnectionPool

SCHEMA = """
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email varchar(254) NOT NULL UNIQUE,
    full_name varchar(200) NOT NULL DEFAULT '',
    password_hash varchar(100) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
TOKEN_SECONDS = 900

app = Flask(__name__)

_pool: ThreadedConnectionPool | None = None
_pool_lock = threading.Lock()


@cache
def _jwt_secret() -> str:
    return os.environ["BASELINE_JWT_SECRET"]


@cache
def _rounds() -> int:
    return int(os.environ.get("BCRYPT_ROUNDS", "12"))


@contextmanager
def _connection() -> Iterator[connection]:
    """A pooled connection, made in this worker after the fork (one per gunicorn thread)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                threads = int(os.environ.get("BASELINE_THREADS", "8"))
                # minconn = maxconn: psycopg2's pool closes a returned connection when it
                # already holds minconn idle ones, so a smaller minconn would reconnect (a new
                # PostgreSQL backend) on most requests under load.
                _pool = ThreadedConnectionPool(
                    threads, threads, os.environ["BASELINE_DATABASE_URL"]
                )
    conn = _pool.getconn()
    conn.autocommit = True
    try:
        yield conn
    finally:
        _pool.putconn(conn)


def _error(status: int, code: str) -> tuple[Any, int]:
    return jsonify(error={"code": code}), status


@app.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@app.get("/ping")
def ping() -> Any:
    return jsonify(status="ok")


@app.get("/api/v1/auth/me")
def me() -> Any:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not token:
        return _error(401, "missing_token")
    try:
        claims = jwt.decode(token, _jwt_secret(), algorithms=["HS256"])
    except jwt.PyJWTError:
        return _error(401, "invalid_token")
    with _connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, email, full_name, created_at FROM users WHERE id = %s", (claims["sub"],)
        )
        row = cur.fetchone()
    if row is None:
        return _error(401, "token_revoked")
    user_id, email, full_name, created_at = row
    return jsonify(
        user={
            "id": str(user_id),
            "email": email,
            "full_name": full_name,
            "created_at": created_at.isoformat(),
        }
    )


@app.post("/api/v1/auth/login")
def login() -> Any:
    body = request.get_json(silent=True) or {}
    email, password = str(body.get("login", "")), str(body.get("password", ""))
    with _connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, password_hash FROM users WHERE email = %s", (email,))
        row = cur.fetchone()
    # An unknown address is checked against a dummy hash: any login must take the same time.
    stored = row[1].encode() if row else _dummy()
    if not bcrypt.checkpw(password.encode(), stored) or row is None:
        return _error(401, "invalid_credentials")
    now = int(time.time())
    token = jwt.encode(
        {"sub": str(row[0]), "iat": now, "exp": now + TOKEN_SECONDS}, _jwt_secret(), "HS256"
    )
    return jsonify(access_token=token, token_type="Bearer", expires_in=TOKEN_SECONDS)


@app.post("/api/v1/auth/signup")
def signup() -> Any:
    body = request.get_json(silent=True) or {}
    email, password = str(body.get("email", "")), str(body.get("password", ""))
    if not email or not password:
        return _error(422, "validation_failed")
    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(_rounds())).decode()
    user_id = str(uuid.uuid4())
    try:
        with _connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, %s)",
                (user_id, email, password_hash),
            )
    except errors.UniqueViolation:
        return _error(409, "email_taken")
    return jsonify(user={"id": user_id, "email": email}), 201


@cache
def _dummy() -> bytes:
    return bcrypt.hashpw(b"no such account", bcrypt.gensalt(_rounds()))


def create_schema(database_url: str) -> None:
    """The baseline's one table, in its own scratch database (called by the bench)."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    conn.close()
