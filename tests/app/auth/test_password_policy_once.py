"""The password policy has one home (accounts.check_password_policy, on security/passwords.py's
rules) and judges a password once per request: the sign-up schema's verdict reaches the service."""

import pytest

from authapp.auth.services import accounts
from authapp.platform.errors import ValidationFailed
from authapp.security import passwords
from tests.app.web.conftest import submit

SIGNUP = "/api/v1/auth/signup"


@pytest.fixture
def judgements(monkeypatch):
    calls = []
    rule = passwords.policy_errors

    def counted(password, **words):
        calls.append(password)
        return rule(password, **words)

    monkeypatch.setattr(passwords, "policy_errors", counted)
    return calls


@pytest.mark.parametrize("path", [SIGNUP, "/signup"])
def test_a_sign_up_judges_the_password_once(client, judgements, path):
    body = {"email": "once@example.com", "password": "a long passphrase nobody guesses"}
    answer = client.post(path, json=body) if path == SIGNUP else submit(client, path, body)

    assert answer.status_code in (201, 303)
    assert judgements == [body["password"]]


def test_the_service_still_judges_a_password_no_schema_saw(app, judgements):
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        accounts.check_password_policy("password", email="plain@example.com")

    assert judgements == ["password"]
    assert "password" in refused.value.fields


def test_an_accepted_password_is_judged_again_beside_other_words(app, judgements):
    with app.app_context():
        _, marked = passwords.judge("a long lovelace passphrase", email="ada@example.com")
    with app.app_context(), pytest.raises(ValidationFailed):
        # accepted beside ada@example.com, refused beside the name it contains
        accounts.check_password_policy(marked, email="ada@example.com", full_name="Ada Lovelace")
