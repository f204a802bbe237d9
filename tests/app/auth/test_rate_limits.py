"""Rate limits on a real Redis: RL-1, RL-3, RL-4, F12 (a database number per xdist worker)."""

from __future__ import annotations

import os
import time

import pytest
import redis
import sqlalchemy as sa

from authapp.models import Organization
from authapp.platform import network
from authapp.platform.extensions import db, limiter
from authapp.security import budgets
from tests.app.settings import conftest as settings_fixtures
from tests.app.web import conftest as web
from tests.conftest import PASSWORD, auth_header, build_app, seeded_app
from tests.servers import Tarpit, free_port

REDIS_DB = 1 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 14
REDIS_URI = f"redis://127.0.0.1:6379/{REDIS_DB}"
LIMITED = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": REDIS_URI}
LOGIN = "/api/v1/auth/login"
tenants = settings_fixtures.tenants  # the two-tenant fixture, for the API-key limits
WRONG = {"login": "nobody@example.com", "password": "not the password at all"}


@pytest.fixture(autouse=True)
def empty_redis() -> None:
    redis.Redis.from_url(REDIS_URI).flushdb()


def statuses(client, times, path=LOGIN, body=None, **kwargs):
    return [client.post(path, json=body or WRONG, **kwargs).status_code for _ in range(times)]


@pytest.mark.config(**LIMITED)
def test_the_eleventh_login_in_a_minute_is_429_with_retry_after(client):
    """RL-1: 10/minute per address, then the envelope's rate_limited with the headers."""
    answers = [client.post(LOGIN, json=WRONG) for _ in range(10)]
    assert [a.status_code for a in answers] == [401] * 10
    # Headers on refusals only: on the others they cost a Redis round trip each
    # (docs/api.md "Rate limits").
    assert not [a for a in answers if "RateLimit-Limit" in a.headers]

    refused = client.post(LOGIN, json=WRONG)

    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "10"
    assert refused.headers["RateLimit-Remaining"] == "0"


def test_two_app_instances_share_the_count_through_redis(database_url):
    """F13: limits are shared by workers and hosts, not multiplied by them."""
    with seeded_app(database_url, **LIMITED) as first:
        second = build_app(database_url, **LIMITED)
        assert statuses(first.test_client(), 6) == [401] * 6
        assert statuses(second.test_client(), 5) == [401] * 4 + [429]


@pytest.mark.config(**LIMITED)
def test_the_login_page_and_the_api_share_one_limit(client):
    assert statuses(client, 10) == [401] * 10
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]

    answer = client.post("/login", data={"csrf_token": token, **WRONG})

    assert answer.status_code == 429


@pytest.mark.config(**LIMITED, RATELIMIT_SIGNUP="2/minute")
def test_sign_up_is_limited_per_address(client):
    """RL-4, EN-5: sign-up's 409 is throttled too."""
    bodies = [{"email": f"u{i}@example.com", "password": PASSWORD} for i in range(3)]
    answers = [client.post("/api/v1/auth/signup", json=body).status_code for body in bodies]
    assert answers == [201, 201, 429]


@pytest.mark.config(**LIMITED)
def test_forgot_password_is_limited_per_email_and_per_address(client):
    """RL-4: 3/hour per email, 10/hour per address."""
    forgot = "/api/v1/auth/password/forgot"
    same = [client.post(forgot, json={"email": "a@example.com"}).status_code for _ in range(4)]
    assert same == [202, 202, 202, 429]
    others = [
        client.post(forgot, json={"email": f"other{i}@example.com"}).status_code for i in range(8)
    ]
    assert others == [202] * 7 + [429]  # 10 accepted from the address in all


@pytest.mark.config(**LIMITED, RATELIMIT_PASSWORD_CHANGE="2/minute")
def test_password_change_is_limited_per_account(client, make_user, login):
    """RL-4: guessing the current password is throttled per account, not per address."""
    first, second = make_user(), make_user(email="grace@example.com")
    body = {"current_password": "a wrong current password", "new_password": PASSWORD + " 2"}
    headers = auth_header(login(first)["access_token"])
    assert statuses(client, 3, "/api/v1/settings/password", body, headers=headers) == [
        422,
        422,
        429,
    ]
    other = auth_header(login(second)["access_token"])
    assert statuses(client, 1, "/api/v1/settings/password", body, headers=other) == [422]


@pytest.mark.config(**LIMITED)
def test_email_resend_is_five_an_hour_per_account(client, make_user, login):
    """RL-4: the default 5/hour per account; another account keeps its own allowance."""
    first, second = make_user(), make_user(email="grace@example.com")
    headers = auth_header(login(first)["access_token"])
    answers = [client.post("/api/v1/auth/email/resend", headers=headers) for _ in range(6)]
    assert [answer.status_code for answer in answers] == [202] * 5 + [429]
    assert 3000 < int(answers[-1].headers["Retry-After"]) <= 3600
    other = auth_header(login(second)["access_token"])
    assert client.post("/api/v1/auth/email/resend", headers=other).status_code == 202


@pytest.mark.config(**LIMITED)
def test_the_resend_page_and_the_api_share_one_limit(client, make_user, login):
    """RL-4, EV-1: the page queued every resend (30 of 30) while the API refused the 6th."""
    user = make_user()
    headers = auth_header(login(user)["access_token"])
    api = [client.post("/api/v1/auth/email/resend", headers=headers) for _ in range(3)]
    assert [answer.status_code for answer in api] == [202] * 3
    assert web.form_login(client, user["email"]).status_code == 303

    pages = [
        web.submit(client, "/settings/email/resend", page="/settings/profile").status_code
        for _ in range(3)
    ]

    assert pages == [303, 303, 429]


@pytest.mark.config(**LIMITED, RATELIMIT_REFRESH="2/minute")
def test_refresh_is_limited_per_address(client):
    body = {"refresh_token": "not.a.token"}
    assert statuses(client, 3, "/api/v1/auth/refresh", body) == [401, 401, 429]


@pytest.mark.config(**LIMITED)
def test_a_spoofed_forwarded_for_does_not_reset_the_count(client):
    """RL-3: without TRUSTED_PROXIES the socket peer is the client."""
    answers = [
        client.post(LOGIN, json=WRONG, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(11)
    ]
    assert answers == [401] * 10 + [429]


@pytest.mark.config(**LIMITED, TRUSTED_PROXIES=["127.0.0.1"])
def test_a_trusted_proxy_s_forwarded_for_names_the_client(client):
    for number in (1, 2):
        # A login per address: the per-login back-off (test_backoff.py) must not interfere.
        body = {**WRONG, "login": f"nobody{number}@example.com"}
        headers = {"X-Forwarded-For": f"203.0.113.{number}"}
        assert statuses(client, 10, body=body, headers=headers) == [401] * 10
    third = {**WRONG, "login": "nobody3@example.com"}
    assert statuses(client, 1, body=third, headers={"X-Forwarded-For": "203.0.113.1"}) == [429]


def shared_counts(scope: str) -> list[int]:
    """The counts Redis holds for a limit's scope (the per-worker fallback holds none)."""
    store = redis.Redis.from_url(REDIS_URI)
    return [int(store.get(key) or 0) for key in store.keys(f"*/{scope}/*")]


@pytest.mark.config(**LIMITED, RATELIMIT_FORGOT_IP="2/hour")
def test_a_lone_surrogate_is_counted_in_the_shared_store_like_any_request(client):
    """F12, RL-4: a lone surrogate in the email made the per-email key raise; Flask-Limiter
    took that for a Redis outage, moved the worker to in-memory counts and let the request
    through uncounted."""
    forgot = "/api/v1/auth/password/forgot"
    poison = client.post(forgot, data='{"email": "\\ud800@x"}', content_type="application/json")
    assert poison.status_code == 422  # an invalid address, not a 500

    after = [client.post(forgot, json={"email": f"{n}@example.com"}).status_code for n in range(2)]

    assert after == [202, 429]  # the poisoning request was the first of the two allowed
    assert shared_counts("forgot_ip") == [3]
    assert shared_counts("forgot_email") != []


@pytest.mark.config(**LIMITED)
def test_only_a_storage_failure_moves_the_limits_to_the_process(app, client):
    """F12: any other error while a limit is checked is a bug; it must not turn the shared
    limits into per-worker ones."""

    def broken_key() -> str:
        raise RuntimeError("a key function with a bug")

    app.add_url_rule(
        "/api/_broken_limit",
        "broken_limit",
        limiter.limit("5/minute", key_func=broken_key)(lambda: "never"),
        methods=["POST"],
    )
    assert client.post("/api/_broken_limit").status_code == 500  # loud, not swallowed

    assert statuses(client, 1) == [401]
    assert shared_counts("login") == [1]


@pytest.mark.config(**LIMITED)
def test_only_a_storage_failure_moves_a_budget_to_the_process(app, monkeypatch):
    """The hand-spent budgets (API keys, TOTP attempts) fall back as the limiter does: on the
    store's failure only."""

    def broken_hit(*_args: object) -> tuple[bool, float]:
        raise RuntimeError("a bug while counting")

    monkeypatch.setattr(budgets, "_hit", broken_hit)
    with app.test_request_context():
        with pytest.raises(RuntimeError):
            budgets.spend(budgets.configured("RATELIMIT_TOTP"), "totp", "someone", "wait")
        assert budgets._fallback().storage_down_until == 0.0


@pytest.mark.config(**LIMITED)
def test_ipv6_clients_are_counted_by_their_64(client):
    """An IPv6 host picks any of its 2**64 addresses: each must not bring a new allowance."""
    same_64 = [f"2001:db8:1:2::{n:x}" for n in range(1, 12)]
    answers = [
        client.post(
            LOGIN, json={**WRONG, "login": f"n{n}@example.com"}, environ_base={"REMOTE_ADDR": ip}
        ).status_code
        for n, ip in enumerate(same_64)
    ]
    assert answers == [401] * 10 + [429]
    other_64 = client.post(LOGIN, json=WRONG, environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"})
    assert other_64.status_code == 401


@pytest.mark.parametrize(
    ("peer", "bucket"),
    [
        ("203.0.113.7", "ip:203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "ip:2001:db8:1:2::/64"),
        ("fe80::1%eth0", "ip:fe80::/64"),
        ("::ffff:203.0.113.7", "ip:203.0.113.7"),  # a dual-stack socket's IPv4 client
    ],
)
def test_the_address_bucket(app, peer, bucket):
    with app.test_request_context(environ_base={"REMOTE_ADDR": peer}):
        assert network.client_bucket() == bucket


@pytest.mark.config(
    RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0"
)
def test_redis_down_fails_open_to_limits_per_process(client):
    """F12: never a 500; the limits still hold, per process."""
    assert statuses(client, 11) == [401] * 10 + [429]


def test_a_hung_redis_costs_no_hang(database_url):
    """F12: a Redis that accepts and never answers: short socket timeouts, then per process."""
    tarpit = Tarpit()
    try:
        settings = {
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{tarpit.port}/0",
        }
        with seeded_app(database_url, **settings) as app:
            client = app.test_client()
            started = time.monotonic()
            answers = statuses(client, 11)
            elapsed = time.monotonic() - started
    finally:
        tarpit.close()
    assert answers == [401] * 10 + [429]
    assert elapsed < 5, elapsed  # a hang would be gunicorn's 30 s timeout per request


def _key_for(client, tenant, per_minute, app):
    with app.app_context():
        db.session.execute(
            sa.update(Organization)
            .where(Organization.id == tenant.id)
            .values(rate_limit_per_minute=per_minute)
        )
        db.session.commit()
    created = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "ci", "scopes": ["users:read"]},
        headers=tenant["owner"].headers,
    )
    return created.json["key"]


@pytest.mark.config(**LIMITED)
def test_an_api_key_is_limited_at_its_organizations_rate(app, client, tenants):
    """RL-5: per key, at the organization's rate_limit_per_minute."""
    acme = tenants["acme"]
    key, other = _key_for(client, acme, 3, app), _key_for(client, acme, 3, app)
    members = "/api/v1/settings/members"

    answers = [client.get(members, headers={"X-API-Key": key}) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json["error"]["code"] == "rate_limited"
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert client.get(members, headers={"X-API-Key": other}).status_code == 200


@pytest.mark.config(
    RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0"
)
def test_an_api_key_works_while_the_limit_store_is_down(app, client, tenants):
    """F12: fail open, never a 500."""
    key = _key_for(client, tenants["acme"], 1, app)
    answers = [
        client.get("/api/v1/settings/members", headers={"X-API-Key": key}).status_code
        for _ in range(3)
    ]
    assert answers == [200, 429, 429]  # counted in this process meanwhile, never a 500


@pytest.mark.config(**LIMITED)
def test_only_a_request_that_met_a_limit_builds_the_limiters_state(
    client, make_user, login, monkeypatch
):
    """extensions.RefusalHeadersLimiter: Flask-Limiter's after- and teardown-request hooks skip
    a request no limit saw (they built its state only to find nothing); a limited request
    still has them (its 429 carries the headers: test_the_eleventh_login_...)."""
    access = login(make_user())["access_token"]
    built: list[object] = []
    original = type(limiter).context

    def counting(self):  # noqa: ANN001
        built.append(self)
        return original.fget(self)

    monkeypatch.setattr(type(limiter), "context", property(counting))

    me = client.get("/api/v1/auth/me", headers=auth_header(access))
    assert me.status_code == 200
    assert built == []
    client.post(LOGIN, json=WRONG)
    assert built  # the login's limit and the hooks after it


@pytest.mark.config(TRUSTED_PROXIES=["127.0.0.1", "10.0.0.0/8"])
def test_forwarded_hops_too_long_to_be_addresses_are_not_kept_in_the_address_cache(app):
    """network._trusted remembers which addresses are trusted proxies; a hop a client wrote
    that is too long to be an address is never remembered, so huge hops cannot fill memory."""
    from authapp.platform import network

    huge = "1" * 5000
    with app.test_request_context(
        "/",
        headers={"X-Forwarded-For": f"{huge}, 10.1.2.3"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    ):
        network._in_networks.cache_clear()
        assert network.client_ip() == "127.0.0.1"  # the hop is no address: the peer is the client
        remembered = network._in_networks.cache_info().currsize
    assert remembered == 2  # the peer and 10.1.2.3, not the 5,000 characters
