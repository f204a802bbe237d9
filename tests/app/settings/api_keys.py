"""What the API key tests (test_api_keys_*.py) share."""

import re

from tests.app.settings.conftest import BUILTIN_PERMISSIONS, SETTINGS

KEYS = f"{SETTINGS}/api-keys"
ORGANIZATION = f"{SETTINGS}/organization"
MEMBERS = f"{SETTINGS}/members"
KEY_FORMAT = re.compile(r"\Aak_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")
BUILTIN_SCOPES = list(BUILTIN_PERMISSIONS)


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"]["code"] == code
