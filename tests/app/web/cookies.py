"""What the cookie tests (test_cookies_*.py) share: the Set-Cookie headers of answers, read
as a browser reads them, and logins through the forms."""

from __future__ import annotations

from typing import Any

from tests.app.web.conftest import set_cookies

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
AUTH_COOKIES = ("access_token", "refresh_token", "csrf_access_token", "csrf_refresh_token")


def assert_cleared(response: Any, names: tuple[str, ...] = AUTH_COOKIES) -> None:
    cleared = set_cookies(response)
    for name in names:
        assert name in cleared, name
        assert cleared[name]["value"] == "", name
        expires, max_age = cleared[name].get("expires") or "", cleared[name].get("max-age")
        assert "1970" in expires or max_age == "0", (name, cleared[name])
