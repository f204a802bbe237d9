import pytest

from tests.conftest import PASSWORD, auth_header

SIGNUP = "/api/v1/auth/signup"


def test_signup_returns_token_pair_and_member_of_default_org(client):
    response = client.post(SIGNUP, json={"email": "new@example.com", "password": PASSWORD})

    assert response.status_code == 201
    body = response.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["user"]["roles"] == ["member"]
    assert body["user"]["permissions"] == []
    assert body["user"]["organization"]["name"] == "Default"
    assert body["user"]["email_verified"] is False
    me = client.get("/api/v1/auth/me", headers=auth_header(body["access_token"]))
    assert me.json["user"]["id"] == body["user"]["id"]


def test_signup_with_organization_name_makes_the_user_its_owner(client):
    response = client.post(
        SIGNUP,
        json={"email": "boss@example.com", "password": PASSWORD, "organization_name": "Acme"},
    )

    assert response.status_code == 201
    user = response.json["user"]
    assert user["organization"]["name"] == "Acme"
    assert user["roles"] == ["owner"]
    assert set(user["permissions"]) == {
        "users:read", "users:manage", "roles:manage", "org:manage", "api_keys:manage",
        "audit:read", "tokens:introspect",
    }  # fmt: skip


def test_email_is_trimmed_kept_as_typed_and_unique_case_insensitively(client):
    """IN-3."""
    first = client.post(SIGNUP, json={"email": "  Mixed.Case@Example.COM ", "password": PASSWORD})
    again = client.post(SIGNUP, json={"email": "mixed.case@example.com", "password": PASSWORD})

    assert first.status_code == 201
    assert first.json["user"]["email"] == "Mixed.Case@Example.COM"
    assert again.status_code == 409
    assert again.json["error"]["code"] == "email_taken"


def test_username_is_unique_case_insensitively(client):
    client.post(SIGNUP, json={"email": "a@example.com", "password": PASSWORD, "username": "Ada"})

    response = client.post(
        SIGNUP, json={"email": "b@example.com", "password": PASSWORD, "username": "ADA"}
    )

    assert response.status_code == 409
    assert response.json["error"]["code"] == "username_taken"


def test_unknown_field_is_422_and_creates_nothing(client):
    """AC-4: is_admin never creates an admin."""
    body = {"email": "sneaky@example.com", "password": PASSWORD, "is_admin": True}

    response = client.post(SIGNUP, json=body)

    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"is_admin": ["Unknown field."]}
    login = client.post(
        "/api/v1/auth/login", json={"login": "sneaky@example.com", "password": PASSWORD}
    )
    assert login.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": PASSWORD, "username": "a b"}, "username"),
        ({"email": "a@example.com", "password": PASSWORD, "username": "x@y"}, "username"),
        ({"email": "a@example.com", "password": PASSWORD, "full_name": "Ada\x00"}, "full_name"),
        ({"email": "a@exa\x00mple.com", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": PASSWORD, "full_name": "x" * 201}, "full_name"),
        ({"email": "a@example.com", "password": ["list"]}, "password"),
    ],
)
def test_invalid_signup_fields_are_422_with_field_messages(client, body, field):
    """IN-2: types, limits and NUL bytes; never a 500."""
    response = client.post(SIGNUP, json=body)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]


def test_a_json_array_body_is_422(client):
    response = client.post(SIGNUP, json=["email", "password"])

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def test_every_field_error_comes_in_one_answer(client):
    """A bad email and a weak password are both reported at once (the form shows both)."""
    response = client.post(SIGNUP, json={"email": "not-an-email", "password": "short"})

    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"email", "password"}
