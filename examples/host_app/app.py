"""A host Flask app with authapp mounted in it (docs/embedding.md).

The host keeps its own database models, routes, error pages and CSRF protection; authapp brings
sign-up, login, sessions, organizations and permissions under `/auth`, and its guards protect the
host's own routes. Run it from the checkout, on SQLite:

    export FLASK_APP=examples.host_app.app AUTHAPP_ENV=development
    flask authapp upgrade && flask authapp seed    # authapp's tables, beside the host's
    flask create-tables                            # the host's own (here: create_all)
    flask run
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import Mapped, mapped_column

from authapp import AuthApp, current_principal, require_login, require_permission

db = SQLAlchemy()
csrf = CSRFProtect()
auth = AuthApp()
READ_REPORTS = "reports:read"  # a permission of the host's: `flask authapp permissions add`


class Note(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "host_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///host_app.db",  # relative: the instance folder
        SECRET_KEY="dev-only-host-secret-key-change-me-0123456789",
    )
    app.config.update(config or {})
    db.init_app(app)  # first: authapp works on the host's database engines
    csrf.init_app(app)
    auth.init_app(app, db=db)
    _routes(app)
    return app


def _routes(app: Flask) -> None:
    @app.get("/")
    def home() -> str:
        return '<h1>The host</h1><p><a href="/auth/login">Log in</a></p>'

    @app.get("/notes")
    def notes() -> Any:  # public, the host's JSON
        return jsonify([n.text for n in db.session.scalars(db.select(Note).order_by(Note.id))])

    @app.post("/notes")
    def add_note() -> Any:  # a host form: the host's CSRFProtect checks it, not authapp
        db.session.add(Note(text=request.form["text"]))
        db.session.commit()
        return "", 201

    @app.get("/whoami")
    @require_login()
    def whoami() -> Any:  # any logged-in user (a bearer token or authapp's cookie)
        user = current_principal.user
        return jsonify(
            email=user.email if user else None, organization=current_principal.organization_id
        )

    @app.get("/reports")
    @require_permission(READ_REPORTS)
    def reports() -> Any:  # 401 without credentials, 403 without the permission
        return jsonify(reports=[])

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Any:  # the host's own shape, kept for its routes
        return jsonify(detail="not here"), 404

    @app.cli.command("create-tables")
    def create_tables() -> None:
        db.create_all()  # the host's metadata only: authapp's tables come from its migrations
