"""`/api/docs`: Swagger UI, served from the package (docs/security.md "API docs").

The page is on the origin that holds the auth cookies, so it runs no code from elsewhere and no
inline code: Swagger UI's files come pinned from the flask-swagger-ui wheel (Swagger UI 5.34.0,
Apache-2.0, its LICENSE served beside them), and the page starts it from `static/docs.js`.
platform/hooks.py gives the page a CSP without `unsafe-inline` and without any other host.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, abort, render_template, send_from_directory

SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
# What the page loads, and the licence: nothing else of the wheel is served.
ASSETS = frozenset(
    {"swagger-ui-bundle.js", "swagger-ui.css", "index.css", "favicon-32x32.png", "LICENSE"}
)

bp = Blueprint("docs", __name__)


@bp.get("/api/docs")
def page() -> str:
    return render_template("authapp/docs.html")


@bp.get("/static/swagger-ui/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    mimetype = "text/plain" if name == "LICENSE" else None
    return send_from_directory(SWAGGER_UI, name, mimetype=mimetype)
