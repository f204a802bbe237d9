"""/api/v1/settings: thin views that parse, call one service, and shape the answer."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask_smorest import Blueprint

from authapp.auth import limits
from authapp.auth.guards import (
    current_account,
    current_principal,
    current_user,
    require_login,
    require_permission,
)
from authapp.auth.principals import Account, OrganizationView
from authapp.auth.schemas import AcceptedOut, UserEnvelopeOut
from authapp.auth.services import email_change
from authapp.models import Role
from authapp.settings import schemas
from authapp.settings.pagination import Page
from authapp.settings.services import (
    account,
    api_keys,
    audit_log,
    members,
    mfa,
    organization,
    roles,
)

bp = Blueprint(
    "settings",
    __name__,
    url_prefix="/api/v1/settings",
    description="Self-service settings and organization administration",
)


# Self-service


@bp.route("/profile", methods=["GET"])
@require_login()
@bp.response(200, UserEnvelopeOut)
def get_profile() -> dict[str, Account]:
    """The caller's profile."""
    return {"user": current_account()}


@bp.route("/profile", methods=["PATCH"])
@require_login()  # above @arguments: no token is a 401, not a 422 showing the schema
@bp.arguments(schemas.ProfilePatchIn)
@bp.response(200, UserEnvelopeOut)
def update_profile(changes: dict[str, Any]) -> dict[str, Account]:
    """Change the caller's full name or username (null clears the username)."""
    user = account.update_profile(current_principal(), current_user(), changes)
    now = dataclasses.replace(current_account(), full_name=user.full_name, username=user.username)
    return {"user": now}


@bp.route("/password", methods=["POST"])
@limits.password_change
@require_login()
@bp.arguments(schemas.PasswordChangeIn)
@bp.response(204)
def change_password(body: dict[str, str]) -> None:
    """Change the password; every other session of the caller ends, this one stays."""
    account.change_password(current_principal(), current_user(), **body)


@bp.route("/email", methods=["POST"])
@limits.password_change  # it checks the password: the same per-account budget of guesses
@require_login()
@bp.arguments(schemas.EmailChangeIn)
@bp.response(202, AcceptedOut)
def change_email(body: dict[str, str]) -> dict[str, str]:
    """Mail a confirmation link to `new_email` and a notice to the current address; the address
    changes when the link is used. The answer is the same whether or not the address is taken."""
    email_change.request_change(current_principal(), current_user(), **body)
    return EMAIL_CHANGE_ANSWER


EMAIL_CHANGE_ANSWER = {
    "message": "A confirmation link is on its way to the new address; "
    "the address changes once it is opened."
}


@bp.route("/sessions", methods=["GET"])
@require_login()
@bp.response(200, schemas.SessionListOut)
def list_sessions() -> dict[str, Any]:
    """The caller's live sessions, the current one marked."""
    current = current_principal().session_id
    listed = account.live_sessions(current_account().id)
    return {"sessions": [_session_out(session, current) for session in listed]}


def _session_out(session: Any, current_id: str | None) -> dict[str, Any]:
    fields = ("id", "created_at", "last_seen_at", "ip", "user_agent")
    return {name: getattr(session, name) for name in fields} | {"current": session.id == current_id}


@bp.route("/sessions/<session_id>", methods=["DELETE"])
@require_login()
@bp.response(204)
def revoke_session(session_id: str) -> None:
    """End one of the caller's sessions (another user's is 404)."""
    account.revoke_session(current_principal(), current_user(), session_id)


@bp.route("/mfa/totp", methods=["POST"])
@limits.password_change  # it checks the password: the same per-account budget of guesses
@require_login()
@bp.arguments(schemas.MfaEnrolIn)
@bp.response(200, schemas.MfaEnrolOut)
def start_mfa(body: dict[str, str]) -> mfa.Enrolment:
    """Start TOTP set-up: a new secret and its otpauth:// URI, shown only in this answer."""
    return mfa.start_enrolment(current_principal(), current_user(), body["password"])


@bp.route("/mfa/totp/confirm", methods=["POST"])
@require_login()
@bp.arguments(schemas.MfaConfirmIn)
@bp.response(200, schemas.RecoveryCodesOut)
def confirm_mfa(body: dict[str, str]) -> dict[str, list[str]]:
    """Turn MFA on with a code from the authenticator; returns ten single-use recovery codes."""
    return {
        "recovery_codes": mfa.confirm_enrolment(current_principal(), current_user(), body["code"])
    }


@bp.route("/mfa/totp", methods=["DELETE"])
@limits.password_change
@require_login()
@bp.arguments(schemas.MfaDisableIn)
@bp.response(204)
def disable_mfa(body: dict[str, str]) -> None:
    """Turn MFA off with the password and a TOTP or recovery code."""
    mfa.disable(current_principal(), current_user(), **body)


# Organization administration


@bp.route("/organization", methods=["GET"])
@require_login(api_keys=True)
@bp.response(200, schemas.OrganizationOut)
def get_organization() -> OrganizationView:
    """The caller's organization."""
    return current_principal().organization


@bp.route("/organization", methods=["PATCH"])
@require_permission("org:manage")
@bp.arguments(schemas.OrganizationPatchIn)
@bp.response(200, schemas.OrganizationUpdatedOut)
def update_organization(changes: dict[str, Any]) -> dict[str, Any]:
    """Rename the organization or set its webhook_url (the first one returns webhook_secret)."""
    update = organization.update_organization(current_principal(), changes)
    shown = {name: getattr(update.organization, name) for name in _ORGANIZATION_FIELDS}
    return shown | ({"webhook_secret": update.webhook_secret} if update.webhook_secret else {})


_ORGANIZATION_FIELDS = tuple(schemas.OrganizationOut._declared_fields)


@bp.route("/webhooks/test", methods=["POST"])
@require_permission("org:manage")
@limits.webhook_test  # under the guard: per organization, and only for those who may ping
@bp.response(202, schemas.WebhookTestOut)
def test_webhook() -> dict[str, str]:
    """Send a signed `ping` event to the webhook_url (through the outbox)."""
    return {"delivery_id": organization.send_test_webhook(current_principal())}


@bp.route("/webhooks/secret", methods=["POST"])
@require_permission("org:manage")
@bp.response(200, schemas.WebhookSecretOut)
def rotate_webhook_secret() -> dict[str, str]:
    """A new signing secret, shown once; the old one stops signing at once."""
    return {"webhook_secret": organization.rotate_webhook_secret(current_principal())}


@bp.route("/members", methods=["GET"])
@require_permission("users:read")
@bp.arguments(schemas.PageArgs, location="query")
@bp.response(200, schemas.MemberPageOut)
def list_members(args: dict[str, Any]) -> Page:
    """The organization's members, oldest first: `?limit=` (1-100) and `?cursor=`."""
    return members.list_members(current_principal().organization_id, **args)


@bp.route("/members/<user_id>", methods=["PATCH"])
@require_permission("users:manage")
@bp.arguments(schemas.MemberPatchIn)
@bp.response(200, schemas.MemberOut)
def update_member(changes: dict[str, Any], user_id: str) -> members.Member:
    """Set a member's roles (by name) or disable them (every session ends at once)."""
    return members.update_member(current_principal(), user_id, changes)


@bp.route("/permissions", methods=["GET"])
@require_permission("users:read")
@bp.response(200, schemas.PermissionListOut)
def list_permissions() -> dict[str, Any]:
    """Every permission code roles and keys may use, built-in and the operator's."""
    return {"permissions": roles.list_permissions()}


@bp.route("/roles", methods=["GET"])
@require_permission("users:read")
@bp.response(200, schemas.RoleListOut)
def list_roles() -> dict[str, Any]:
    """Built-in roles, then the organization's own, with their permission codes."""
    return {"roles": roles.list_roles(current_principal().organization_id)}


@bp.route("/roles", methods=["POST"])
@require_permission("roles:manage")
@bp.arguments(schemas.RoleIn)
@bp.response(201, schemas.RoleOut)
def create_role(body: dict[str, Any]) -> Role:
    """A custom role; its permissions must exist and be the caller's own."""
    return roles.create_role(current_principal(), **body)


@bp.route("/roles/<role_id>", methods=["PATCH"])
@require_permission("roles:manage")
@bp.arguments(schemas.RolePatchIn)
@bp.response(200, schemas.RoleOut)
def update_role(changes: dict[str, Any], role_id: str) -> Role:
    """Rename a custom role or replace its permissions (built-ins are 403)."""
    return roles.update_role(current_principal(), role_id, changes)


@bp.route("/roles/<role_id>", methods=["DELETE"])
@require_permission("roles:manage")
@bp.response(204)
def delete_role(role_id: str) -> None:
    """Delete a custom role; its members lose it at once (built-ins are 403)."""
    roles.delete_role(current_principal(), role_id)


@bp.route("/api-keys", methods=["GET"])
@require_permission("api_keys:manage")
@bp.response(200, schemas.ApiKeyListOut)
def list_api_keys() -> dict[str, list[api_keys.KeyView]]:
    """The organization's keys, newest first, revoked ones included; never a secret. `status`
    and `effective_scopes` say what each key may do now: never more than its member."""
    return {"api_keys": api_keys.list_keys(current_principal().organization_id)}


@bp.route("/api-keys", methods=["POST"])
@require_permission("api_keys:manage")
@bp.arguments(schemas.ApiKeyIn)
@bp.response(201, schemas.NewApiKeyOut)
def create_api_key(body: dict[str, Any]) -> api_keys.CreatedKey:
    """A new key with scopes the caller holds; `key` appears in this answer only."""
    return api_keys.create_key(current_principal(), **body)


@bp.route("/api-keys/<key_id>", methods=["DELETE"])
@require_permission("api_keys:manage")
@bp.response(204)
def revoke_api_key(key_id: str) -> None:
    """Revoke a key; it stops working on the next request."""
    api_keys.revoke_key(current_principal(), key_id)


@bp.route("/audit-events", methods=["GET"])
@require_permission("audit:read")
@bp.arguments(schemas.PageArgs, location="query")
@bp.response(200, schemas.AuditEventPageOut)
def list_audit_events(args: dict[str, Any]) -> Page:
    """The organization's audit trail, newest first: `?limit=` (1-100) and `?cursor=`."""
    return audit_log.list_events(current_principal().organization_id, **args)
