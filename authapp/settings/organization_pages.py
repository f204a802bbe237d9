"""Browser pages for organizations: switching, creating, leaving, transferring ownership,
deleting one, and removing a member."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("organization_pages", __name__, url_prefix="/settings")
