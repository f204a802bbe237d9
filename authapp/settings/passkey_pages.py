"""The security page's passkeys (docs/api.md "Passkeys"): add one (the page's script asks for
options, the browser creates the passkey, the form posts its answer), rename, remove."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from authapp.auth import limits, relying_party
from authapp.auth.guards import current_principal, current_user, page_login_required
from authapp.platform.errors import AppError
from authapp.settings import passkey_schemas as schemas
from authapp.settings import security_page
from authapp.settings.services import passkeys
from authapp.web.forms import json_refusal, load, load_form

bp = Blueprint("settings_passkey_pages", __name__, url_prefix="/settings/security/passkeys")


@bp.post("/options")
@limits.password_change
@page_login_required()
def registration_options() -> Response:
    """JSON for the page's script: the options, or the refusal in the error envelope."""
    try:
        # The security page's other forms have a `password` field too: this one is named apart.
        fields = {"password": request.form.get("passkey_password", "")}
        password = load(schemas.PasskeyOptionsIn(), fields)["password"]
        party = relying_party.current()
        options = passkeys.registration_options(
            current_principal(), current_user(), party, password
        )
    except AppError as exc:
        return json_refusal(exc)
    return jsonify(publicKey=options)


@bp.post("")
@page_login_required()
def register() -> Response | tuple[str, int]:
    def add() -> str:
        form = load_form(schemas.PasskeyRegisterForm())
        party = relying_party.current()
        added = passkeys.register(current_principal(), current_user(), party, **form)
        return f"Passkey “{added.name}” added: you can log in with it now."

    return security_page.after(add)


@bp.post("/<passkey_id>/rename")
@page_login_required()
def rename(passkey_id: str) -> Response | tuple[str, int]:
    def change() -> str:
        name = load_form(schemas.PasskeyRenameIn())["name"]
        passkeys.rename(current_principal(), current_user(), passkey_id, name)
        return "Passkey renamed."

    return security_page.after(change)


@bp.post("/<passkey_id>/remove")
@limits.password_change
@page_login_required()
def remove(passkey_id: str) -> Response | tuple[str, int]:
    def change() -> str:
        password = load_form(schemas.PasskeyRemoveIn())["password"]
        passkeys.remove(current_principal(), current_user(), passkey_id, password)
        return "Passkey removed."

    return security_page.after(change)
