"""A person in several organizations: where a login lands, whose roles a token carries, and
that a token acts only in the organization its session acts in (docs/api.md "Organizations")."""

import jwt
import sqlalchemy as sa

from authapp.auth.services import memberships
from authapp.delivery import events
from authapp.models import Membership, Organization, OutboxMessage, Session, User
from authapp.platform.extensions import db
from tests.conftest import auth_header

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"


def join(app, user_id, name, role="member"):
    """The person joins a new organization `name` with a built-in role; its id."""
    with app.app_context():
        organization = Organization(name=name)
        memberships.join(
            db.session.get(User, user_id), organization, [memberships.builtin_role(role)]
        )
        db.session.commit()
        return organization.id


def suspend(app, user_id, organization_id):
    with app.app_context():
        db.session.execute(
            sa.update(Membership)
            .where(Membership.user_id == user_id, Membership.organization_id == organization_id)
            .values(is_active=False)
        )
        db.session.commit()


def log_in(client, user):
    return client.post(LOGIN, json={"login": user["email"], "password": user["password"]})


def test_a_login_lands_in_the_home_organization_else_the_oldest_active_one(app, client, make_user):
    ada = make_user(organization="Acme")
    home = log_in(client, ada).json["user"]["organization"]["id"]
    globex = join(app, ada["id"], "Globex")

    assert log_in(client, ada).json["user"]["organization"]["name"] == "Acme"
    suspend(app, ada["id"], home)
    landed = log_in(client, ada)
    assert landed.status_code == 200
    assert landed.json["user"]["organization"]["id"] == globex


def test_a_person_suspended_everywhere_is_refused_after_the_password(app, client, make_user):
    ada = make_user(organization="Acme")
    acme = log_in(client, ada).json["user"]["organization"]["id"]
    suspend(app, ada["id"], acme)

    response = log_in(client, ada)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "account_disabled"


def test_a_person_in_no_organization_lands_in_a_personal_one_as_its_owner(app, client, make_user):
    ada = make_user(organization="Acme")
    with app.app_context():
        db.session.execute(sa.delete(Membership).where(Membership.user_id == ada["id"]))
        db.session.commit()

    answer = log_in(client, ada).json["user"]

    assert answer["organization"]["name"] == memberships.PERSONAL_ORGANIZATION
    assert answer["roles"] == ["owner"]
    assert (
        client.get(ME, headers=auth_header(log_in(client, ada).json["access_token"])).status_code
        == 200
    )


def test_a_token_carries_the_roles_of_its_sessions_membership_only(app, client, make_user):
    ada = make_user(organization="Acme", role_names=("owner",))
    join(app, ada["id"], "Globex", role="member")

    answer = log_in(client, ada).json
    me = client.get(ME, headers=auth_header(answer["access_token"])).json["user"]

    assert (me["organization"]["name"], me["roles"]) == ("Acme", ["owner"])
    assert "org:manage" in me["permissions"]


def test_a_token_stops_when_its_session_acts_in_another_organization(app, client, make_user):
    """The `org` claim must be the session's: a token from before a switch is refused."""
    ada = make_user(organization="Acme")
    globex = join(app, ada["id"], "Globex")
    answer = log_in(client, ada).json
    with app.app_context():
        db.session.execute(
            sa.update(Session).where(Session.id == _sid(answer)).values(organization_id=globex)
        )
        db.session.commit()

    response = client.get(ME, headers=auth_header(answer["access_token"]))

    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_revoked"


def test_a_token_stops_when_its_membership_ends(app, client, make_user):
    ada = make_user(organization="Acme")
    answer = log_in(client, ada).json
    with app.app_context():
        db.session.execute(sa.delete(Membership).where(Membership.user_id == ada["id"]))
        db.session.commit()

    response = client.get(ME, headers=auth_header(answer["access_token"]))

    assert (response.status_code, response.json["error"]["code"]) == (401, "token_revoked")


def test_news_about_a_person_reaches_every_organization_they_belong_to(app, make_user):
    ada = make_user(organization="Acme")
    globex = join(app, ada["id"], "Globex")
    join(app, make_user(email="bob@example.com")["id"], "Initech")  # not Ada's
    with app.app_context():
        db.session.execute(sa.update(Organization).values(webhook_url="https://hooks.example/in"))
        acme = db.session.scalar(sa.select(Organization.id).where(Organization.name == "Acme"))
        ids = events.about_person(ada["id"], "user.password_changed", {"user_id": ada["id"]})
        db.session.commit()
        told = {
            message.payload["organization_id"]
            for message in db.session.scalars(
                sa.select(OutboxMessage).where(OutboxMessage.id.in_(ids))
            )
        }

    assert told == {acme, globex}


def _sid(answer):
    return jwt.decode(answer["access_token"], options={"verify_signature": False})["sid"]


def test_a_session_begun_by_the_release_before_acts_in_the_home_organization(
    app, client, make_user
):
    """During a rolling deploy of migration 0009, the older code starts sessions without an
    organization: their tokens keep working, in the user's home organization."""
    ada = make_user(organization="Acme")
    join(app, ada["id"], "Globex")
    answer = log_in(client, ada).json
    with app.app_context():
        db.session.execute(
            sa.update(Session).where(Session.id == _sid(answer)).values(organization_id=None)
        )
        db.session.commit()

    response = client.get(ME, headers=auth_header(answer["access_token"]))

    assert response.status_code == 200
    assert response.json["user"]["organization"]["name"] == "Acme"


def test_an_owner_of_another_organization_cannot_delete_the_account(app, client, make_user):
    """Acting in Acme as a member does not hide that Ada owns Globex (where someone else
    belongs too: an organization she owned alone would go with the account)."""
    ada = make_user(organization="Acme")
    globex = join(app, ada["id"], "Globex", role="owner")
    make_user(email="bob@example.com", organization=globex)
    answer = log_in(client, ada).json
    assert answer["user"]["organization"]["name"] == "Acme"

    response = client.delete(
        "/api/v1/settings/account",
        json={"password": ada["password"]},
        headers=auth_header(answer["access_token"]),
    )

    assert (response.status_code, response.json["error"]["code"]) == (409, "owner_must_transfer")
