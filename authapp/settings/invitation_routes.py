"""/api/v1/settings/invitations and /api/v1/invitations/accept: inviting people into the
caller's organization, and accepting an invitation (docs/api.md "Invitations")."""

from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint(
    "invitations",
    __name__,
    url_prefix="/api/v1",
    description="Invitations to join an organization",
)
