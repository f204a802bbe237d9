"""PW-1..PW-5 and CS-1, through sign-up and login."""

import pytest

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"


def signup(client, password, email="pw@example.com", **extra):
    return client.post(SIGNUP, json={"email": email, "password": password, **extra})


def login(client, password, login="pw@example.com"):
    return client.post(LOGIN, json={"login": login, "password": password})


def test_fourteen_characters_are_refused_fifteen_accepted(client):
    short = signup(client, "vq8 mz2 kd7 xw4"[:14])

    assert short.status_code == 422
    assert short.json["error"]["fields"]["password"] == ["Must be at least 15 characters."]
    assert signup(client, "vq8 mz2 kd7 xw4").status_code == 201


@pytest.mark.config(PASSWORD_MIN_LENGTH=8)
def test_minimum_length_is_configurable(client):
    assert signup(client, "vq8 mz2k").status_code == 201


def test_256_characters_accepted_257_refused(client):
    base = "thirty-one characters of text! "
    too_long = (base * 9)[:257]

    refused = signup(client, too_long)
    accepted = signup(client, too_long[:256])

    assert refused.status_code == 422
    assert "Must be at most 256 characters." in refused.json["error"]["fields"]["password"]
    assert accepted.status_code == 201


def test_length_is_counted_after_nfkc(client):
    ligatures = "\ufb01" * 8  # "ﬁ" x 8: 8 code points, 16 after NFKC ("fi" x 8)

    assert signup(client, ligatures).status_code == 201
    assert login(client, "fi" * 8).status_code == 200  # canonically equivalent: PW-5


def test_every_character_counts_past_72_bytes(client):
    """PW-4: two passwords that differ only after their 72nd byte are different."""
    prefix = "long shared prefix " * 5  # 95 bytes
    assert signup(client, prefix + "one").status_code == 201

    assert login(client, prefix + "two").status_code == 401
    assert login(client, prefix + "one").status_code == 200


def test_a_256_character_emoji_password_works(client):
    password = "🔐🦄🚀🌍" * 64  # 256 code points, 1,024 UTF-8 bytes

    assert signup(client, password).status_code == 201
    assert login(client, password).status_code == 200
    assert login(client, password[:-1] + "🌎").status_code == 401


def test_common_password_is_refused_with_the_reason(client):
    """PW-3, with a 20-character entry of the shipped list."""
    response = signup(client, "1q2w3e4r5t6y7u8i9o0p")

    assert response.status_code == 422
    assert response.json["error"]["fields"]["password"] == [
        "Is one of the most commonly used passwords; choose another."
    ]


@pytest.mark.config(PASSWORD_MIN_LENGTH=8)
def test_common_password_is_refused_case_insensitively(client):
    response = signup(client, "PassWord1")

    assert response.status_code == 422
    assert "commonly used" in response.json["error"]["fields"]["password"][0]


@pytest.mark.parametrize(
    "password",
    ["lovelace and friends", "my ada.lovelace@example.com pw", "countess of LOVELACE 1815"],
)
def test_password_built_from_email_or_name_is_refused(client, password):
    response = signup(client, password, email="ada.lovelace@example.com", full_name="Ada Lovelace")

    assert response.status_code == 422
    assert response.json["error"]["fields"]["password"] == [
        "Must not contain your email address, username or name."
    ]


def test_no_trimming_and_no_case_folding(client):
    """PW-5: spaces at either end and letter case are part of the password."""
    password = "  Spaces At Both Ends  "
    assert signup(client, password).status_code == 201

    assert login(client, password.strip()).status_code == 401
    assert login(client, password.lower()).status_code == 401
    assert login(client, password).status_code == 200


def test_no_composition_rules(client):
    """PW-2: lowercase-only passphrases, spaces and any script are fine."""
    assert signup(client, "just lowercase words here").status_code == 201
    assert signup(client, "пароль из кириллицы", email="ru@example.com").status_code == 201


def test_unpaired_surrogate_is_422_not_500(client):
    response = client.post(
        SIGNUP,
        data='{"email": "s@example.com", "password": "abcdefghijklmnop\\ud800"}',
        content_type="application/json",
    )

    assert response.status_code == 422
    assert "password" in response.json["error"]["fields"]
