"""What the audit log tests (test_audit_log_*.py) share."""

from tests.app.settings.conftest import SETTINGS
from tests.conftest import PASSWORD

EVENTS = f"{SETTINGS}/audit-events"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "an entirely different passphrase"
WRONG_PASSWORD = "not the passphrase at all, sorry"
TOKEN_NAMES = ("access_token", "refresh_token")


def agent(test_name):
    return {"User-Agent": f"audit-probe/{test_name}"}


def whole_log(client, reader):
    """Every event the reader's organization holds, and the raw JSON it came in."""
    response = client.get(f"{EVENTS}?limit=100", headers=reader.headers)
    assert response.status_code == 200, response.json
    assert response.json["next_cursor"] is None  # one page holds the whole log
    return response.json["audit_events"], response.get_data(as_text=True)


def the_event(client, reader, headers, name):
    """The one event recorded by the request that carried `headers`' User-Agent."""
    events, _raw = whole_log(client, reader)
    mine = [event for event in events if event["user_agent"] == headers["User-Agent"]]
    assert [event["event"] for event in mine] == [name], mine
    assert mine[0]["ip"] == "127.0.0.1"
    return mine[0]


def assert_secret_free(client, reader, *secrets):
    """AU-2: none of the secrets, nor a token's signature, is anywhere in the log."""
    _events, raw = whole_log(client, reader)
    for secret in secrets:
        assert secret not in raw
        if secret.count(".") == 2:  # a JWT: its signature alone would be a leak too
            assert secret.rsplit(".", 1)[1] not in raw


def log_in(client, email, headers=None, password=PASSWORD):
    response = client.post(LOGIN, json={"login": email, "password": password}, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def rename(client, tenant, name, headers=None):
    response = client.patch(
        f"{SETTINGS}/organization",
        json={"name": name},
        headers=tenant["owner"].headers | (headers or {}),
    )
    assert response.status_code == 200, response.json
