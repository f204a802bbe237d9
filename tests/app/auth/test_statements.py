"""platform/statements.py: the hot statements run on the driver return SQLAlchemy's rows, raise
SQLAlchemy's errors, and step aside for listeners. (SQLite: tests/app/auth/test_sqlite.py.)"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from flask import Flask

from authapp.auth.key_principals import API_KEY_STATEMENT
from authapp.auth.principals import PRINCIPAL_STATEMENT
from authapp.models.base import new_id
from authapp.platform import statements
from authapp.platform.errors import is_database_outage
from authapp.platform.extensions import db
from authapp.security import api_keys
from tests.conftest import auth_header


def through_sqlalchemy(statement: Any, parameters: dict[str, Any]) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(statement, parameters).first()


def same_rows(statement: Any, parameters: dict[str, Any]) -> tuple[Any, Any]:
    row = statements.first_row(db.engine, statement, parameters)
    assert not db.engine.dispatch.before_cursor_execute  # the driver's path was taken
    return row, through_sqlalchemy(statement, parameters)


def test_a_principals_row_is_what_sqlalchemy_returns(app: Flask, make_user, login):
    access = login(make_user(role_names=("owner",)))["access_token"]
    claims = jwt.decode(access, options={"verify_signature": False})

    with app.app_context():
        row, expected = same_rows(PRINCIPAL_STATEMENT, {"sub": claims["sub"], "sid": claims["sid"]})
        missing, nothing = same_rows(
            PRINCIPAL_STATEMENT, {"sub": claims["sid"], "sid": claims["sub"]}
        )

    assert expected is not None
    assert tuple(row) == tuple(expected)
    assert [type(value) for value in row] == [type(value) for value in expected]
    assert row.expires_at.tzinfo is not None
    assert isinstance(row.id, str)
    assert missing is None
    assert nothing is None


def test_an_api_keys_row_is_what_sqlalchemy_returns(app: Flask, client, make_user, login):
    token = login(make_user(email="root@example.com", role_names=("owner",)))["access_token"]
    key = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "reader", "scopes": ["users:read"]},
        headers=auth_header(token),
    ).json["key"]

    with app.app_context():
        parameters = {"prefix": api_keys.prefix_of(key)}
        row, expected = same_rows(API_KEY_STATEMENT, parameters)

    assert tuple(row) == tuple(expected)
    for name in ("id", "key_hash", "revoked_at", "acts_for", "member_active", "effective_scopes"):
        assert getattr(row, name) == getattr(expected, name), name


def test_a_drivers_error_is_raised_as_sqlalchemys(app: Flask):
    with app.app_context(), pytest.raises(sa.exc.DataError):  # not psycopg2's DataError
        statements.first_row(db.engine, PRINCIPAL_STATEMENT, {"sub": "nope", "sid": "nope"})


def test_with_a_cursor_listener_the_statement_goes_through_sqlalchemy(app: Flask, make_user):
    user = make_user()
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_args):  # noqa: ANN001
        seen.append(statement)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            row = statements.first_row(
                db.engine, PRINCIPAL_STATEMENT, {"sub": user["id"], "sid": user["id"]}
            )
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)

    assert row is None
    assert len(seen) == 1
    assert "sessions.revoked_at" in seen[0]


def test_a_required_parameter_left_out_is_refused_not_sent_as_null(app: Flask):
    with app.app_context(), pytest.raises(KeyError):
        statements.first_row(db.engine, PRINCIPAL_STATEMENT, {"sub": new_id()})


def test_a_server_that_refuses_connections_is_an_outage_not_a_bug():
    """F1: a new connection refused (the server down, or shutting down) reaches the error
    handlers as SQLAlchemy's OperationalError, the 503 of an outage, never as the driver's."""
    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(sa.exc.OperationalError) as refused:
            statements.first_row(engine, PRINCIPAL_STATEMENT, {"sub": new_id(), "sid": new_id()})
    finally:
        engine.dispose()

    assert is_database_outage(refused.value)
