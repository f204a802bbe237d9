"""/api/v1/organizations and the membership changes around them: the caller's organizations,
creating one, leaving, removing a member, transferring ownership and deleting an organization
(docs/api.md "Organizations")."""

from __future__ import annotations

from flask_smorest import Blueprint

bp = Blueprint(
    "organizations",
    __name__,
    url_prefix="/api/v1",
    description="The caller's organizations and their memberships",
)
