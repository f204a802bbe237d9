"""The organizations page (/settings/organizations) and the member "Remove" form, driven like
a browser: switching moves the session and its cookies like the API (docs/api.md
"Organizations", "Browser pages")."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from authapp.models import Organization
from authapp.platform.extensions import db
from tests.app.settings import conftest as settings_fixtures
from tests.app.settings.organizations import ME, add_membership, member_ids
from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    claims,
    cookie,
    field_error,
    notice,
    open_browser,
    submit,
)
from tests.conftest import PASSWORD, auth_header

tenants = settings_fixtures.tenants
join = settings_fixtures.join
PAGE = "/settings/organizations"


def _organization_of(app, name):
    with app.app_context():
        return db.session.scalars(sa.select(Organization.id).where(Organization.name == name)).one()


@pytest.fixture
def ada(app, tenants):
    """Acme's member, also a member of Globex, in a browser acting in Acme."""
    account = tenants["acme"]["member"]
    add_membership(app, account.id, tenants["globex"].id)
    return open_browser(app, account.email)


def test_the_page_lists_the_memberships_with_the_current_one(ada, tenants):
    body = assert_page(ada.get(PAGE))

    assert "Acme <strong>(current)</strong>" in body
    assert f'action="/settings/organizations/{tenants["globex"].id}/switch"' in body
    assert 'action="/settings/organization/leave"' in body
    assert 'href="/settings/organizations" aria-current="page"' in body
    assert "transfer-form" not in body  # a member owns nothing here
    assert "delete-organization-form" not in body


def test_switching_on_the_page_moves_the_session_and_renews_the_cookies(ada, client, tenants):
    globex = tenants["globex"].id
    old_access, old_refresh = cookie(ada, "access_token"), cookie(ada, "refresh_token")

    response = submit(ada, f"{PAGE}/{globex}/switch", page=PAGE)

    assert_redirect(response, PAGE)
    assert claims(cookie(ada, "access_token"))["org"] == globex
    assert cookie(ada, "refresh_token") != old_refresh
    assert client.get(ME, headers=auth_header(old_access)).status_code == 401
    body = assert_page(ada.get(PAGE))
    assert "Globex <strong>(current)</strong>" in body
    assert "You now work in Globex." in notice(body)


@pytest.mark.parametrize("target", ["strangers", "00000000-0000-4000-8000-000000000000"])
def test_switching_to_an_organization_one_cannot_act_in_changes_nothing(
    app, ada, tenants, make_user, target
):
    if target == "strangers":
        make_user(organization="Hooli")  # an organization ada does not belong to
        target = _organization_of(app, "Hooli")
    response = submit(ada, f"{PAGE}/{target}/switch", page=PAGE)

    assert_redirect(response, PAGE)
    body = assert_page(ada.get(PAGE))
    assert alert(body) == "No such organization."
    assert "Acme <strong>(current)</strong>" in body


def test_creating_through_the_form(ada):
    response = submit(ada, PAGE, {"name": "Initech"})

    assert_redirect(response, PAGE)
    body = assert_page(ada.get(PAGE))
    assert "Initech" in body
    assert "Initech created." in notice(body)


def test_a_bad_name_comes_back_next_to_its_field(ada):
    response = submit(ada, PAGE, {"name": "a\x07b"})

    body = assert_page(response, 422)
    assert field_error(body, "name")


def test_leaving_through_the_page(ada, client, tenants):
    response = submit(ada, "/settings/organization/leave", page=PAGE)

    assert_redirect(response, PAGE)
    assert claims(cookie(ada, "access_token"))["org"] == tenants["globex"].id
    body = assert_page(ada.get(PAGE))
    assert "You left Acme" in notice(body)
    assert "Acme" not in body.split("<table", 1)[1].split("</table>", 1)[0]


def test_an_owner_transfers_and_deletes_through_the_page(app, client, tenants):
    acme = tenants["acme"]
    owner = open_browser(app, acme["owner"].email)
    body = assert_page(owner.get(PAGE))
    assert "transfer-form" in body

    moved = submit(
        owner, "/settings/organization/transfer", {"user_id": acme["admin"].id}, page=PAGE
    )

    assert_redirect(moved, PAGE)
    promoted = open_browser(app, acme["admin"].email)
    unticked = submit(
        promoted, "/settings/organization/delete", {"delete_password": PASSWORD}, page=PAGE
    )
    assert field_error(assert_page(unticked, 422), "delete_confirm")
    wrong = submit(
        promoted,
        "/settings/organization/delete",
        {"delete_password": "not the password", "delete_confirm": "yes"},
        page=PAGE,
    )
    assert field_error(assert_page(wrong, 422), "delete_password")
    deleted = submit(
        promoted,
        "/settings/organization/delete",
        {"delete_password": PASSWORD, "delete_confirm": "yes"},
        page=PAGE,
    )
    assert_redirect(deleted, "/login")
    assert client.get(ME, headers=acme["member"].headers).status_code == 401


def test_the_members_page_removes_a_member(app, client, tenants):
    acme = tenants["acme"]
    owner = open_browser(app, acme["owner"].email)
    body = assert_page(owner.get("/settings/members"))
    assert f'action="/settings/members/{acme["member"].id}/remove"' in body
    assert f'action="/settings/members/{acme["owner"].id}/remove"' not in body

    response = submit(
        owner, f"/settings/members/{acme['member'].id}/remove", page="/settings/members"
    )

    assert_redirect(response, "/settings/members")
    assert "Member removed." in notice(assert_page(owner.get("/settings/members")))
    assert acme["member"].id not in member_ids(client, acme["owner"].access_token)


def test_a_refused_removal_shows_why(app, client, tenants):
    acme = tenants["acme"]
    admin = open_browser(app, acme["admin"].email)

    response = submit(
        admin, f"/settings/members/{acme['owner'].id}/remove", page="/settings/members"
    )

    assert_redirect(response, "/settings/members")
    assert (
        alert(assert_page(admin.get("/settings/members"))) == "Only an owner can remove an owner."
    )
    assert acme["owner"].id in member_ids(client, acme["owner"].access_token)


def test_forms_without_the_csrf_token_change_nothing(ada, client, tenants):
    response = ada.post(f"{PAGE}/{tenants['globex'].id}/switch")

    assert response.status_code == 400
    assert claims(cookie(ada, "access_token"))["org"] == tenants["acme"].id


def test_a_cookie_client_switches_through_the_api_with_its_csrf_echo(ada, tenants):
    globex = tenants["globex"].id
    body = {"organization_id": globex}
    refused = ada.post("/api/v1/auth/switch-organization", json=body)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "csrf_failed"
    old_refresh = cookie(ada, "refresh_token")

    response = ada.post(
        "/api/v1/auth/switch-organization",
        json=body,
        headers={"X-CSRF-TOKEN": cookie(ada, "csrf_access_token")},
    )

    assert response.status_code == 200, response.json
    assert claims(cookie(ada, "access_token"))["org"] == globex
    assert cookie(ada, "refresh_token") == response.json["refresh_token"] != old_refresh
    assert "Globex <strong>(current)</strong>" in assert_page(ada.get(PAGE))
