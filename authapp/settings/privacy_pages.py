"""Browser pages for a person's own data: the export as a download, and deleting the account.

Their forms sit on the security page (settings/security_page.py renders it)."""

from __future__ import annotations

import json

from flask import Blueprint, flash, request
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits
from authapp.auth.guards import current_principal, current_user, page_login_required
from authapp.platform.errors import AppError, ValidationFailed
from authapp.settings import export_schemas, schemas, security_page
from authapp.settings.services import privacy
from authapp.web.forms import load, see_other

bp = Blueprint("privacy_pages", __name__, url_prefix="/settings")
CONFIRM = "Tick the box to confirm that the account and its data go for good."


@bp.get("/account/export")
@limits.export  # the API's count: a page must not double the allowance
@page_login_required()
def export_account() -> Response:
    document = privacy.export(current_principal(), current_user())
    body = json.dumps(export_schemas.render(document), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json", headers=export_schemas.download_headers())


@bp.post("/account/delete")
@limits.password_change  # the API's count (RL-4): it checks the password
@page_login_required()
def delete_account() -> Response | tuple[str, int]:
    user = current_user()
    try:
        if request.form.get("delete_confirm") != "yes":
            raise ValidationFailed({"confirm": [CONFIRM]}, CONFIRM)
        body = load(schemas.AccountDeleteIn(), {"password": request.form.get("delete_password")})
        privacy.delete_account(current_principal(), user, **body)
    except AppError as exc:
        # The security page's other forms have a `password` field too: this form's are prefixed.
        exc.fields = {f"delete_{name}": why for name, why in (exc.fields or {}).items()}
        return security_page.render(exc)
    cookies.clear()
    flash("Your account and its data were deleted.")
    return see_other("auth_pages.login")
