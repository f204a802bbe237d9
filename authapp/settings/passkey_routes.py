"""/api/v1/settings/passkeys: the caller's passkeys (docs/api.md "Passkeys"). Logging in with
one is /api/v1/auth/passkeys (auth/passkey_routes.py)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from authapp.auth import limits, relying_party
from authapp.auth.guards import current_principal, current_user, require_login
from authapp.auth.schemas import PasskeyOptionsOut
from authapp.models import Passkey
from authapp.settings import passkey_schemas as schemas
from authapp.settings.services import passkeys

bp = Blueprint(
    "settings_passkeys",
    __name__,
    url_prefix="/api/v1/settings/passkeys",
    description="The caller's passkeys",
)


@bp.route("", methods=["GET"])
@require_login()
@bp.response(200, schemas.PasskeyListOut)
def list_passkeys() -> dict[str, list[Passkey]]:
    """The caller's passkeys, oldest first."""
    return {"passkeys": passkeys.listed(current_user())}


@bp.route("/options", methods=["POST"])
@limits.password_change  # it checks the password: the same per-account budget of guesses
@require_login()
@bp.arguments(schemas.PasskeyOptionsIn)
@bp.response(200, PasskeyOptionsOut)
def registration_options(body: dict[str, str]) -> dict[str, Any]:
    """Creation options for navigator.credentials.create(), after the password, with a
    challenge for this session only (WEBAUTHN_CHALLENGE_TTL): a discoverable passkey, the user
    verified, attestation none. A confirmed email address is needed first."""
    party = relying_party.current()
    options = passkeys.registration_options(
        current_principal(), current_user(), party, body["password"]
    )
    return {"publicKey": options}


@bp.route("", methods=["POST"])
@require_login()
@bp.arguments(schemas.PasskeyRegisterIn)
@bp.response(201, schemas.PasskeyEnvelopeOut)
def register(body: dict[str, Any]) -> dict[str, Passkey]:
    """Keep the passkey navigator.credentials.create() made for those options."""
    party = relying_party.current()
    created = passkeys.register(current_principal(), current_user(), party, **body)
    return {"passkey": created}


@bp.route("/<passkey_id>", methods=["PATCH"])
@require_login()
@bp.arguments(schemas.PasskeyRenameIn)
@bp.response(200, schemas.PasskeyEnvelopeOut)
def rename(body: dict[str, str], passkey_id: str) -> dict[str, Passkey]:
    """Rename one of the caller's passkeys (another account's is 404)."""
    return {"passkey": passkeys.rename(current_principal(), current_user(), passkey_id, **body)}


@bp.route("/<passkey_id>", methods=["DELETE"])
@limits.password_change  # it may check the password: the same per-account budget of guesses
@require_login()
@bp.arguments(schemas.PasskeyRemoveIn, required=False)
@bp.response(204)
def remove(body: dict[str, Any], passkey_id: str) -> None:
    """Remove one of the caller's passkeys; the last one takes `password` too."""
    passkeys.remove(current_principal(), current_user(), passkey_id, body.get("password"))
