"""`authapp_logins_total` by method: a passkey login and a refused one are counted as `passkey`,
apart from password logins (docs/operations.md "Metrics")."""

from __future__ import annotations

from tests.app.ops.metrics import scrape, value
from tests.app.passkeys.conftest import Holder, assertion, passkey_login, refused


def logins(samples, outcome: str, reason: str, method: str) -> float | None:  # noqa: ANN001
    return value(samples, "authapp_logins_total", outcome=outcome, reason=reason, method=method)


def test_passkey_logins_are_counted_by_their_method(client, holder: Holder):
    holder.register()
    good = assertion(client, holder.authenticator)
    before = scrape(client)

    assert passkey_login(client, good).status_code == 200
    refused(passkey_login(client, good))  # the same answer again: its challenge is spent

    after = scrape(client)
    succeeded = ("succeeded", "", "passkey")
    failed = ("failed", "invalid_passkey", "passkey")
    assert (logins(before, *succeeded), logins(after, *succeeded)) == (0, 1)
    assert (logins(before, *failed), logins(after, *failed)) == (0, 1)
    # The password login that opened the holder's session is a password login.
    assert logins(after, "succeeded", "", "password") == logins(before, "succeeded", "", "password")
