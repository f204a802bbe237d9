"""authapp mounted in a host's Flask app (examples/host_app, docs/embedding.md): its routes under
/auth on the host's database, its guards on the host's routes, and the host's own routes, errors,
forms and commands untouched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from authapp import AuthApp
from authapp.delivery import events, offload
from authapp.platform.extensions import db as authapp_db
from examples.host_app import app as host_app
from tests.conftest import PASSWORD, TEST_SECRETS, scratch_database, worker_name

AUTHAPP_SETTINGS = {
    "AUTHAPP_ENV": "testing",
    "BCRYPT_ROUNDS": 4,
    "RATELIMIT_ENABLED": False,
    **{name: value for name, value in TEST_SECRETS.items() if name != "SECRET_KEY"},
}


def make_host(url: str, **config: Any) -> Flask:
    return host_app.create_app({"SQLALCHEMY_DATABASE_URI": url, **AUTHAPP_SETTINGS, **config})


@pytest.fixture(scope="module")
def host_database() -> Iterator[str]:
    """A database holding only what the host's commands made: authapp's migrations through
    `flask authapp upgrade`, the host's table through its own `create-tables`."""
    with scratch_database(worker_name("authapp_host")) as url:
        app = make_host(url)
        runner = app.test_cli_runner()
        for args in (["authapp", "upgrade"], ["create-tables"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, result.output
        with app.app_context():
            authapp_db.engine.dispose()
        yield url


@pytest.fixture
def host(host_database: str) -> Iterator[Flask]:
    app = make_host(host_database)
    result = app.test_cli_runner().invoke(args=["authapp", "seed"])
    assert result.exit_code == 0, result.output
    yield app
    emptied(app)


def emptied(app: Flask) -> None:
    """Every table of the module's database emptied, the app's connections closed."""
    offload.shutdown(app)
    with app.app_context():
        tables = [*authapp_db.metadata.tables, "host_notes"]
        with authapp_db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE " + ", ".join(tables) + " CASCADE"))
        authapp_db.engine.dispose()


def sign_up(client: Any, email: str, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/auth/api/v1/auth/signup", json={"email": email, "password": PASSWORD, **fields}
    )
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}


def test_the_migrations_keep_a_version_table_of_their_own(host_database):
    engine = sa.create_engine(host_database)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()

    assert {"authapp_alembic_version", "users", "sessions", "host_notes"} <= tables
    assert "alembic_version" not in tables  # the host's `flask db` would own that one


def test_authapp_answers_under_its_prefix_with_its_policies(host):
    client = host.test_client()
    bearer = sign_up(client, "ada@example.com")

    me = client.get("/auth/api/v1/auth/me", headers=bearer)
    page = client.get("/auth/login")

    assert me.status_code == 200
    assert me.json["user"]["email"] == "ada@example.com"
    assert me.headers["Cache-Control"] == "no-store"
    assert "X-Request-ID" in me.headers
    assert page.status_code == 200
    assert "Content-Security-Policy" in page.headers
    assert b"/auth/static/" in page.data  # its stylesheet, under the prefix
    assert client.get("/api/v1/auth/me", headers=bearer).status_code == 404  # not at the root


def test_the_host_routes_keep_their_own_behaviour(host):
    client = host.test_client()

    home = client.get("/")
    missing = client.get("/no-such-page")

    assert home.status_code == 200
    for header in ("Content-Security-Policy", "X-Request-ID", "X-Frame-Options"):
        assert header not in home.headers
    assert home.headers.get("Cache-Control") != "no-store"
    assert missing.status_code == 404
    assert missing.json == {"detail": "not here"}  # the host's handler, not the envelope


def test_authapp_errors_keep_the_envelope_inside_the_host(host):
    response = host.test_client().post("/auth/api/v1/auth/login", json={"login": "x"})

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert response.json["request_id"] == response.headers["X-Request-ID"]


def test_the_host_csrf_protection_still_guards_its_forms_but_not_authapp_api(host):
    client = host.test_client()

    host_form = client.post("/notes", data={"text": "hello"})
    login_api = client.post("/auth/api/v1/auth/login", json={"login": "x", "password": "y"})

    assert host_form.status_code == 400  # the host's CSRFProtect: no token
    assert login_api.status_code == 401  # authapp's JSON API: no form token asked for


def test_a_host_without_csrf_protection_gets_none_from_authapp(host_database):
    bare = Flask("bare_host")
    bare.config.update(
        SQLALCHEMY_DATABASE_URI=host_database, SECRET_KEY="bare-host-secret-0123456789abcdef"
    )
    bare.config.update(AUTHAPP_SETTINGS)
    bare_db = SQLAlchemy()
    bare_db.init_app(bare)
    AuthApp(bare, db=bare_db)

    @bare.post("/echo")
    def echo() -> str:
        return "ok"

    client = bare.test_client()
    assert client.post("/echo", data={"a": "b"}).data == b"ok"
    assert client.post("/auth/login", data={"login": "x", "password": "y"}).status_code == 400
    with bare.app_context():
        authapp_db.engine.dispose()


def test_guards_protect_the_host_routes(host):
    client = host.test_client()
    owner = sign_up(client, "owner@example.com", organization_name="Acme")
    member = sign_up(client, "member@example.com")
    added = host.test_cli_runner().invoke(
        args=["authapp", "permissions", "add", host_app.READ_REPORTS, "Read the host's reports"]
    )

    anonymous = client.get("/whoami")
    whoami = client.get("/whoami", headers=owner)

    assert added.exit_code == 0, added.output
    assert anonymous.status_code == 401
    assert anonymous.json["error"]["code"] == "missing_token"
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert whoami.status_code == 200
    assert whoami.json["email"] == "owner@example.com"
    assert client.get("/reports", headers=owner).status_code == 200
    refused = client.get("/reports", headers=member)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"


def test_mailed_links_point_under_the_prefix(host):
    with host.test_request_context():
        assert events.link("/verify-email") == "http://127.0.0.1:8000/auth/verify-email"


def test_an_empty_prefix_is_refused_when_mounted(host_database):
    from authapp.platform.config import ConfigError

    with pytest.raises(ConfigError, match="AUTHAPP_URL_PREFIX"):
        make_host(host_database, AUTHAPP_URL_PREFIX="")


def test_the_host_config_names_authapp_settings_as_the_environment_would(host_database):
    app = make_host(host_database, BCRYPT_ROUNDS="5", PASSWORD_MIN_LENGTH=10)

    assert app.config["BCRYPT_ROUNDS"] == 5  # parsed, as BCRYPT_ROUNDS=5 in the environment
    assert app.config["PASSWORD_MIN_LENGTH"] == 10
    assert app.config["SQLALCHEMY_DATABASE_URI"] == host_database  # the host's, untouched
    assert app.config["MAX_CONTENT_LENGTH"] is None  # Flask's, the host's choice
    with app.app_context():
        authapp_db.engine.dispose()


def test_authapp_limits_its_own_bodies_in_a_host_without_a_limit(host):
    big = {"login": "x" * 200_000, "password": "y"}

    response = host.test_client().post("/auth/api/v1/auth/login", json=big)

    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_the_login_page_works_under_the_prefix_and_its_cookie_opens_host_routes(host):
    client = host.test_client()
    sign_up(client, "page@example.com")
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None

    logged_in = client.post(
        "/auth/login",
        data={"login": "page@example.com", "password": PASSWORD, "csrf_token": token.group(1)},
    )
    settings = client.get(logged_in.headers["Location"])

    assert logged_in.status_code in (302, 303)
    assert logged_in.headers["Location"].startswith("/auth/")  # authapp's pages, not the host's
    assert settings.status_code == 200
    assert client.get("/whoami").json["email"] == "page@example.com"  # authapp's cookie


@pytest.mark.parametrize(
    "prefix", ["auth", "/a b", "/..", "/x/./y", "//evil.example", "/ü", "/a\x00", "/a\ud800"]
)
def test_a_prefix_that_is_not_a_plain_path_is_refused(host_database, prefix):
    from authapp.platform.config import ConfigError

    with pytest.raises(ConfigError, match="AUTHAPP_URL_PREFIX"):
        make_host(host_database, AUTHAPP_URL_PREFIX=prefix)


@pytest.mark.parametrize(("prefix", "kept"), [("/accounts/", "/accounts"), (" /id.v2 ", "/id.v2")])
def test_a_prefix_is_kept_without_its_trailing_slash(host_database, prefix, kept):
    app = make_host(host_database, AUTHAPP_URL_PREFIX=prefix)

    assert app.config["AUTHAPP_URL_PREFIX"] == kept
    assert app.test_client().get(f"{kept}/login").status_code == 200
    with app.app_context():
        authapp_db.engine.dispose()


def test_the_host_starts_and_stops_the_outbox_sweeper(host_database):
    """docs/embedding.md "Mail, webhooks and the outbox": the host's server hooks call these."""
    app = make_host(host_database, OUTBOX_SWEEP_SECONDS=1)

    host_app.auth.start_sweeper(app)
    sweeper = app.extensions["authapp.sweeper"]
    alive = sweeper.thread.is_alive()
    host_app.auth.shutdown(app)
    sweeper.thread.join(timeout=10)

    assert alive
    assert not sweeper.thread.is_alive()
    assert "authapp.sweeper" not in app.extensions
    with app.app_context():
        authapp_db.engine.dispose()


def test_the_unverified_login_refusal_names_the_resend_path_under_the_prefix(host_database):
    app = make_host(host_database, REQUIRE_VERIFIED_EMAIL=True)
    client = app.test_client()
    app.test_cli_runner().invoke(args=["authapp", "seed"])
    body = {"email": "late@example.com", "password": PASSWORD}

    signed_up = client.post("/auth/api/v1/auth/signup", json=body)
    refused = client.post(
        "/auth/api/v1/auth/login", json={"login": body["email"], "password": PASSWORD}
    )

    assert signed_up.status_code == 202
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "email_unverified"
    assert "POST /auth/api/v1/auth/email/resend" in refused.json["error"]["message"]
    emptied(app)
