"""/api/v1/organizations and the membership changes around them: the caller's organizations,
creating one, leaving, removing a member, transferring ownership and deleting an organization
(docs/api.md "Organizations"). Switching is `POST /api/v1/auth/switch-organization`."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from authapp.auth import cookies, limits
from authapp.auth.guards import current_principal, current_user, require_login, require_permission
from authapp.auth.schemas import TokenPairOut
from authapp.auth.services.sessions import TokenPair
from authapp.settings import organization_schemas as schemas
from authapp.settings.services import organization_deletion, organizations

bp = Blueprint(
    "organizations",
    __name__,
    url_prefix="/api/v1",
    description="The caller's organizations and their memberships",
)


@bp.route("/organizations", methods=["GET"])
@require_login()
@bp.response(200, schemas.MyOrganizationListOut)
def list_organizations() -> dict[str, Any]:
    """The caller's memberships in the order they joined; `current` marks the organization
    this session acts in."""
    return {"organizations": organizations.list_mine(current_principal())}


@bp.route("/organizations", methods=["POST"])
@require_login()
@bp.arguments(schemas.OrganizationIn)
@bp.response(201, schemas.CreatedOrganizationOut)
def create_organization(body: dict[str, str]) -> dict[str, Any]:
    """A new organization owned by the caller (at most ORGANIZATIONS_PER_USER owned). The
    session stays where it is: switch to act in the new one."""
    created = organizations.create(current_principal(), **body)
    shown = {name: getattr(created, name) for name in _ORGANIZATION_FIELDS}
    return shown | {"roles": ["owner"]}


_ORGANIZATION_FIELDS = tuple(schemas.OrganizationOut._declared_fields)


@bp.route("/settings/members/<user_id>", methods=["DELETE"])
@require_permission("users:manage")
@bp.response(204)
def remove_member(user_id: str) -> None:
    """Remove a member from the organization: their sessions acting here end at once, and
    keys acting for them here stop. Yourself: leave instead."""
    organizations.remove_member(current_principal(), user_id)


@bp.route("/settings/organization/leave", methods=["POST"])
@require_login()
@bp.response(200, TokenPairOut)
def leave_organization() -> TokenPair:
    """Leave the organization this session acts in; the session moves to another of the
    caller's organizations and the answer is its new token pair (like a switch)."""
    pair = organizations.leave(current_principal())
    _renew_cookies(pair)
    return pair


@bp.route("/settings/organization/transfer", methods=["POST"])
@require_login()
@bp.arguments(schemas.TransferIn)
@bp.response(204)
def transfer_ownership(body: dict[str, str]) -> None:
    """Make another active member an owner; the caller stops being one and is an admin."""
    organizations.transfer_ownership(current_principal(), body["user_id"])


@bp.route("/settings/organization", methods=["DELETE"])
@limits.password_change  # it checks the password: the same per-account budget of guesses
@require_login()
@bp.arguments(schemas.OrganizationDeleteIn)
@bp.response(204)
def delete_organization(body: dict[str, str]) -> None:
    """Delete the organization (an owner, with the password again): its memberships, roles,
    keys, invitations and the sessions acting in it, this one included."""
    organization_deletion.delete_organization(current_principal(), current_user(), **body)
    cookies.clear()


def _renew_cookies(pair: TokenPair) -> None:
    """A browser's refresh cookie was spent by the move: it gets the new pair, or its next
    refresh would present a used token and end the session (RT-2)."""
    if cookies.refresh_token() is not None:
        cookies.issue(pair)
