"""Browser pages for invitations: the organization's pending invitations, and accepting one
from its mailed link."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("invitation_pages", __name__)
