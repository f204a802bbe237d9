"""Passkeys add nothing to the hot path (F11, DESIGN rule 5): a token-checked read costs the
same one statement for an account with passkeys, and after a passkey login, as before."""

from __future__ import annotations

from tests.app.passkeys.conftest import Holder, assertion, passkey_login
from tests.conftest import auth_header

# Under AUTHAPP_ENV=testing the testing clock reads its offset once per request
# (authapp/platform/clock.py): not a statement of the app's own.
TESTING_CLOCK = "FROM testing_clock"


def own(statements: list[str]) -> list[str]:
    return [statement for statement in statements if TESTING_CLOCK not in statement]


def test_me_is_one_statement_for_an_account_with_passkeys(client, holder: Holder, count_sql):
    holder.register()
    holder.register()

    with count_sql() as statements:
        response = client.get("/api/v1/auth/me", headers=holder.headers)

    assert response.status_code == 200
    assert len(own(statements)) == 1, "\n".join(statements)
    assert "passkey" not in statements[-1]


def test_me_is_one_statement_in_a_session_a_passkey_started(client, holder: Holder, count_sql):
    holder.register()
    pair = passkey_login(client, assertion(client, holder.authenticator)).json

    with count_sql() as statements:
        response = client.get("/api/v1/auth/me", headers=auth_header(pair["access_token"]))

    assert response.status_code == 200
    assert len(own(statements)) == 1, "\n".join(statements)
