"""`?limit=` and `?cursor=` on every paginated list: bad values are 422, never a 500 (IN-2)."""

from __future__ import annotations

import base64

import pytest

from tests.app.settings.conftest import SETTINGS

PAGED = [f"{SETTINGS}/members", f"{SETTINGS}/audit-events"]
SOME_ID = "0b3c5a52-1a0e-4cf4-9a6b-9f1f7c3d2e10"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_CURSORS = [
    "",
    "not-a-cursor",
    "%%%",
    "!!!",
    "A" * 201,
    _b64("[]"),
    _b64('{"a": 1}'),
    _b64("[1, 2]"),
    _b64('["2026-01-01T00:00:00+00:00"]'),
    _b64(f'["2026-01-01T00:00:00", "{SOME_ID}"]'),  # a naive time
    _b64('["2026-01-01T00:00:00+00:00", "1 OR 1=1"]'),
    _b64(f'["yesterday", "{SOME_ID}"]'),
    # Any JSON fits in a cursor: each part must be checked for its type before it is used.
    _b64('["2024-01-01T00:00:00+00:00", {}]'),
    _b64('["2024-01-01T00:00:00+00:00", ["x"]]'),
    _b64('["2024-01-01T00:00:00+00:00", null]'),
    _b64(f'[{{}}, "{SOME_ID}"]'),
    _b64(f'[20240101, "{SOME_ID}"]'),
    _b64(f'["2024-01-01T00:00:00+00:00", "urn:uuid:{SOME_ID}"]'),  # not the canonical form
    _b64(f'["2024-01-01T00:00:00+00:00", "{{{SOME_ID}}}"]'),
    _b64(f'["0001-01-01T00:00:00+14:00", "{SOME_ID}"]'),  # before datetime.min in UTC
    _b64(f'["9999-12-31T23:59:59-14:00", "{SOME_ID}"]'),  # after datetime.max in UTC
    _b64("[" * 70 + "]" * 70),  # nested deep, within the 200 characters
    _b64('["\\ud800", "\\u0000"]'),  # a lone surrogate and a NUL in the JSON
]


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_cursor_the_service_did_not_give_out_is_422(client, tenants, path, cursor):
    response = client.get(
        path, query_string={"cursor": cursor}, headers=tenants["acme"]["owner"].headers
    )

    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "validation_error"
    assert "cursor" in response.json["error"]["fields"]


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5"])
def test_a_limit_outside_1_to_100_is_422(client, tenants, path, limit):
    response = client.get(
        path, query_string={"limit": limit}, headers=tenants["acme"]["owner"].headers
    )

    assert response.status_code == 422
    assert "limit" in response.json["error"]["fields"]
