"""Every expiry boundary, crossed with the testing clock (no sleeps): RT-4, JW-5."""

import jwt
import pytest

from tests.conftest import auth_header

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
DAY = 86400


def set_clock(client, seconds):
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200
    assert response.json == {"offset_seconds": seconds}


def test_access_token_lives_fifteen_minutes(client, make_user, login):
    pair = login(make_user())

    set_clock(client, 899)
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 200

    set_clock(client, 900 + 30)  # JWT_LEEWAY_SECONDS (30) tolerates skew between hosts
    response = client.get(ME, headers=auth_header(pair["access_token"]))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_expired"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.config(ACCESS_TOKEN_TTL=60, JWT_LEEWAY_SECONDS=0)
def test_access_lifetime_follows_the_setting(client, make_user, login):
    pair = login(make_user())
    assert pair["expires_in"] == 60

    # 50, not 59: `iat` is whole seconds and the real clock keeps running during the test.
    set_clock(client, 50)
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 200
    set_clock(client, 60)
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 401


def test_refresh_token_expires_after_fourteen_idle_days(client, make_user, login):
    pair = login(make_user())

    set_clock(client, 14 * DAY + 1)
    response = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_expired"


def test_refreshing_slides_the_idle_window(client, make_user, login):
    token = login(make_user())["refresh_token"]

    for day in (13, 26):
        set_clock(client, day * DAY)
        response = client.post(REFRESH, json={"refresh_token": token})
        assert response.status_code == 200, day
        token = response.json["refresh_token"]


def test_session_ends_after_thirty_days_even_while_sliding(client, make_user, login):
    """RT-4: the absolute cap beats activity."""
    token = login(make_user())["refresh_token"]
    for day in (10, 20, 29):  # each within 14 days of the last
        set_clock(client, day * DAY)
        response = client.post(REFRESH, json={"refresh_token": token})
        assert response.status_code == 200
        token = response.json["refresh_token"]
    access = response.json["access_token"]

    set_clock(client, 30 * DAY + 1)

    refreshed = client.post(REFRESH, json={"refresh_token": token})
    assert refreshed.status_code == 401
    assert refreshed.json["error"]["code"] == "token_expired"
    assert client.get(ME, headers=auth_header(access)).status_code == 401


def test_last_refresh_token_never_outlives_the_session_cap(client, make_user, login):
    token = login(make_user())["refresh_token"]
    for day in (13, 26, 29):
        set_clock(client, day * DAY)
        token = client.post(REFRESH, json={"refresh_token": token}).json["refresh_token"]

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= DAY


def test_the_clock_route_validates_its_input(client):
    for body in ({}, {"offset_seconds": "10"}, {"offset_seconds": 10**12}, {"x": 1}):
        response = client.post("/_testing/clock", json=body)
        assert response.status_code == 422, body
        assert response.json["error"]["code"] == "validation_error"


@pytest.mark.config(AUTHAPP_ENV="development")
def test_the_clock_route_does_not_exist_outside_testing(client):
    response = client.post("/_testing/clock", json={"offset_seconds": 3600})

    assert response.status_code == 404


@pytest.mark.config(AUTHAPP_ENV="production", BCRYPT_ROUNDS=10)
def test_the_clock_route_does_not_exist_in_production(client):
    response = client.post("/_testing/clock", json={"offset_seconds": 3600})

    assert response.status_code == 404
