"""Users for tests: made the way an operator makes them (`flask create-user`), given
permissions through a role of their organization, and logged in through the real login
endpoint, wherever the app mounts authapp."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth.services import accounts
from authapp.cli.seed import add_permission
from authapp.models import Organization, Permission, Role
from authapp.platform import territory
from authapp.platform.errors import AppError
from authapp.platform.extensions import db

PASSWORD = "a long passphrase nobody guesses"
MAX_ROLE_NAME = 64


class MadeUser(dict[str, Any]):
    """What `make_user` returns: `user["email"]` or `user.email` (also `id`, `password`)."""

    @property
    def id(self) -> str:
        return str(self["id"])

    @property
    def email(self) -> str:
        return str(self["email"])

    @property
    def password(self) -> str:
        return str(self["password"])


def create_user(
    app: Flask,
    *,
    email: str = "ada@example.com",
    password: str = PASSWORD,
    permissions: Iterable[str] = (),
    organization: str | None = None,
    **fields: Any,
) -> MadeUser:
    """An account (address confirmed) in `organization` (an id or a name, created when no
    organization has it; default: the default organization), with `role_names` (default
    `member`) and, for `permissions`, a role of its organization holding them: codes nobody
    registered yet are added as `flask authapp permissions add` would. `fields`: `username`,
    `full_name`, `role_names`."""
    with app.app_context():
        try:
            org_id = _organization_id(organization)
            roles = tuple(fields.pop("role_names", ("member",)))
            codes = sorted(set(permissions))
            if codes:
                roles += (_role_holding(org_id, codes),)
            user = accounts.create_user(
                email=email, password=password, organization=org_id, role_names=roles, **fields
            )
            return MadeUser(id=user.id, email=email, password=password)
        finally:
            db.session.remove()


def _organization_id(id_or_name: str | None) -> str:
    if id_or_name is None:
        criterion = Organization.is_default
        found = db.session.scalars(sa.select(Organization.id).where(criterion)).one_or_none()
        if found is None:
            raise AppError("No default organization: is the database seeded?", code="not_found")
        return found
    try:
        return accounts.find_organization(id_or_name).id
    except AppError:
        organization = Organization(name=id_or_name)
        db.session.add(organization)
        db.session.commit()
        return organization.id


def _role_holding(organization_id: str, codes: list[str]) -> str:
    """The name of the organization's role holding exactly `codes` (made when missing)."""
    known = set(db.session.scalars(sa.select(Permission.code).where(Permission.code.in_(codes))))
    for code in codes:
        if code not in known:
            add_permission(code, f"{code} (added by a test)")
    name = "+".join(codes)
    if len(name) > MAX_ROLE_NAME:
        name = "test-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    exists = sa.select(Role.id).where(Role.organization_id == organization_id, Role.name == name)
    if db.session.scalars(exists).first() is None:
        granted = db.session.scalars(sa.select(Permission).where(Permission.code.in_(codes)))
        db.session.add(Role(organization_id=organization_id, name=name, permissions=list(granted)))
        db.session.commit()
    return name


def login_path(app: Flask) -> str:
    """The login endpoint, under the prefix where the app mounts authapp."""
    return territory.current_of(app).prefix + "/api/v1/auth/login"


def log_in(client: FlaskClient, user: Mapping[str, Any]) -> dict[str, Any]:
    """Log `user` (`email` and `password`) in through the real endpoint; its JSON answer."""
    response = client.post(
        login_path(client.application), json={"login": user["email"], "password": user["password"]}
    )
    answer = response.get_json(silent=True)
    assert response.status_code == 200, answer
    assert isinstance(answer, dict)
    return answer


def bearer(token: str | Mapping[str, Any]) -> dict[str, str]:
    """`{"Authorization": "Bearer …"}` for an access token, or a login's or sign-up's answer."""
    access = token if isinstance(token, str) else token["access_token"]
    return {"Authorization": f"Bearer {access}"}
