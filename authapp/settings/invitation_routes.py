"""/api/v1/settings/invitations and /api/v1/invitations/accept: inviting people into the
caller's organization, and accepting an invitation (docs/api.md "Invitations")."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from authapp.auth import limits
from authapp.auth.guards import (
    current_principal,
    current_user,
    require_login_unless,
    require_permission,
)
from authapp.auth.schemas import TokenPairOut
from authapp.models import Invitation
from authapp.platform.network import request_client
from authapp.settings import invitation_schemas as schemas
from authapp.settings.services import invitation_accept, invitations

bp = Blueprint(
    "invitations",
    __name__,
    url_prefix="/api/v1",
    description="Invitations to join an organization",
)
REFRESHED = "The address had a pending invitation: it is renewed (new link, roles and expiry)."
SIGNED_UP = "A new account for the invited address, in the organization: a token pair."


@bp.route("/settings/invitations", methods=["POST"])
@require_permission("users:manage")
@bp.arguments(schemas.InvitationIn)
@bp.response(201, schemas.InvitationOut)
@bp.alt_response(200, schema=schemas.InvitationOut, success=True, description=REFRESHED)
def invite(body: dict[str, Any]) -> tuple[Invitation, int]:
    """Invite an address with roles (names, default `member`) the caller may grant; the link is
    mailed. Inviting an address with a pending invitation renews it: 200 instead of 201."""
    invited = invitations.invite(current_principal(), **body)
    return invited.invitation, 201 if invited.created else 200


@bp.route("/settings/invitations", methods=["GET"])
@require_permission("users:read")
@bp.response(200, schemas.InvitationListOut)
def list_invitations() -> dict[str, list[Invitation]]:
    """The organization's pending invitations (not accepted, revoked or expired), newest first."""
    return {"invitations": invitations.list_pending(current_principal().organization_id)}


@bp.route("/settings/invitations/<invitation_id>", methods=["DELETE"])
@require_permission("users:manage")
@bp.response(204)
def revoke_invitation(invitation_id: str) -> None:
    """Revoke an invitation: its link stops working at once."""
    invitations.revoke(current_principal(), invitation_id)


@bp.route("/invitations/accept", methods=["POST"])
@limits.invitation_accept
@bp.arguments(schemas.AcceptInvitationIn)
@require_login_unless("password")
@bp.response(200, schemas.AcceptedInvitationOut)
@bp.alt_response(201, schema=TokenPairOut, success=True, description=SIGNED_UP)
def accept_invitation(body: dict[str, Any]) -> invitation_accept.Joined | tuple[Response, int]:
    """Accept a mailed invitation. Logged in (no `password`): join the organization, when the
    account's confirmed address is the invited one. With `password` and no login needed: a new
    account for the invited address (confirmed), member of that organization only."""
    if body["password"] is not None:
        pair = invitation_accept.accept_with_signup(**body, client=request_client())
        return jsonify(TokenPairOut().dump(pair)), 201
    return invitation_accept.accept_as_member(current_user(), body["token"], request_client())
