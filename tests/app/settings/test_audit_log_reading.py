"""The audit trail: each security event is recorded with who, where and what (AU-1), never a
secret (AU-2), and read newest first, page by page, by holders of audit:read only (AC-1, AC-2).

This part: reading the log.
"""

import pytest

from tests.app.settings.audit_log import EVENTS, rename, whole_log


def walk(client, reader, limit):
    """Every page at `limit`, as a list of pages of event ids."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = client.get(EVENTS, query_string=query, headers=reader.headers)
        assert response.status_code == 200, response.json
        pages.append([event["id"] for event in response.json["audit_events"]])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages


# Reading the log


def test_events_come_newest_first(client, tenants):
    acme = tenants["acme"]
    for name in ("First", "Second", "Third"):
        rename(client, acme, name)

    events, _raw = whole_log(client, acme["owner"])

    assert [event["created_at"] for event in events] == sorted(
        (event["created_at"] for event in events), reverse=True
    )
    renames = [
        event["data"]["name"]["to"] for event in events if event["event"] == "organization.updated"
    ]
    assert renames == ["Third", "Second", "First"]


def test_pages_of_two_walk_every_event_exactly_once(client, tenants):
    acme = tenants["acme"]
    for name in ("One", "Two", "Three"):
        rename(client, acme, name)
    everything = [event["id"] for event in whole_log(client, acme["owner"])[0]]

    pages = walk(client, acme["owner"], limit=2)

    assert len(everything) >= 10
    assert [event_id for page in pages for event_id in page] == everything
    assert all(len(page) == 2 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 2


def test_paging_is_stable_while_events_are_recorded(client, tenants):
    """Events recorded between pages neither repeat nor push out older ones."""
    acme = tenants["acme"]
    owner = acme["owner"]
    before = [event["id"] for event in whole_log(client, owner)[0]]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(EVENTS, query_string=query, headers=owner.headers)
        assert response.status_code == 200
        seen += [event["id"] for event in response.json["audit_events"]]
        cursor, pages = response.json["next_cursor"], pages + 1
        if cursor is None:
            break
        rename(client, acme, f"Acme {pages}")  # a newer event lands at the head of the log

    assert seen == before
    assert len(whole_log(client, owner)[0]) == len(before) + pages - 1


def test_another_organizations_events_never_appear(client, tenants):
    """AC-2: not in the log, and not through a cursor taken from the other log either."""
    acme, globex = tenants["acme"], tenants["globex"]
    rename(client, acme, "Acme Secret Project")
    acme_ids = {account.id for account in acme.accounts.values()} | {acme.id}
    acme_events = {event["id"] for event in whole_log(client, acme["owner"])[0]}
    acme_cursor = client.get(EVENTS, query_string={"limit": 1}, headers=acme["owner"].headers)

    globex_events, raw = whole_log(client, globex["owner"])
    through_cursor = client.get(
        EVENTS,
        query_string={"cursor": acme_cursor.json["next_cursor"]},
        headers=globex["owner"].headers,
    )

    assert globex_events
    assert not acme_events & {event["id"] for event in globex_events}
    assert not acme_events & {event["id"] for event in through_cursor.json["audit_events"]}
    for leaked in [*acme_ids, "Acme Secret Project", "acme.example"]:
        assert leaked not in raw
        assert leaked not in through_cursor.get_data(as_text=True)


@pytest.mark.parametrize(("role", "status"), [("member", 403), ("auditor", 200), ("admin", 200)])
def test_reading_the_log_needs_audit_read(client, tenants, role, status):
    """AC-1."""
    response = client.get(EVENTS, headers=tenants["acme"][role].headers)

    assert response.status_code == status
    if status == 403:
        assert response.json["error"]["code"] == "forbidden"
        assert "audit_events" not in response.json


def test_reading_the_log_without_credentials_is_401(client):
    response = client.get(EVENTS)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
