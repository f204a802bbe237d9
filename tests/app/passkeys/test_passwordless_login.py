"""POST /api/v1/auth/passkeys/options and /login: a login with a passkey and no password. Every
refusal is the same 401 invalid_passkey (EN-1), audited with why (AU-1); a challenge works once
(F10) and for WEBAUTHN_CHALLENGE_TTL; a clone whose counter fell behind is refused and
reported; hostile answers are refused, never a 500 (IN-2)."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from authapp.auth import passkey_checks
from authapp.models import Passkey, PasskeyChallenge, Session, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account
from tests.app.passkeys.conftest import (
    AUTH_PASSKEYS,
    Holder,
    assertion,
    events,
    login_options,
    misled,
    passkey_login,
    refused,
    request_options,
    set_clock,
)
from tests.conftest import PASSWORD, auth_header
from tests.passkey_authenticator import Authenticator, b64url, unb64url


def whys(app) -> list[str]:
    """The reasons of the passkey login failures audited so far, oldest first."""
    failed = events(app, "login.failed")
    assert all(e.data["reason"] == "invalid_passkey" for e in failed), [e.data for e in failed]
    return [e.data["why"] for e in failed]


def stored_count(app, user_id: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Passkey.sign_count).where(Passkey.user_id == user_id))


def test_options_ask_for_any_passkey_of_this_site_with_the_user_verified(client):
    """The options name no account (they are asked for before anyone is known)."""
    response = login_options(client)

    assert response.status_code == 200, response.json
    options = response.json["publicKey"]
    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == []
    assert len(unb64url(options["challenge"])) >= 16
    assert request_options(client)["challenge"] != options["challenge"]


def test_a_passkey_logs_in_like_a_password(app, client, holder: Holder):
    """A token pair for the passkey's account; the access token works; the passkey's last use
    is recorded; `login.succeeded` says method passkey (AU-1)."""
    passkey = holder.register()

    response = passkey_login(client, assertion(client, holder.authenticator))

    assert response.status_code == 200, response.json
    pair = response.json
    assert pair["token_type"] == "Bearer"
    assert pair["user"]["id"] == holder.user["id"]
    assert pair["refresh_token"]
    me = client.get("/api/v1/auth/me", headers=auth_header(pair["access_token"]))
    assert me.status_code == 200
    assert holder.user["email"] in me.get_data(as_text=True)
    [listed] = holder.listed()
    assert listed["id"] == passkey["id"]
    assert listed["last_used_at"] is not None
    succeeded = [e for e in events(app, "login.succeeded") if e.data["method"] == "passkey"]
    assert [e.user_id for e in succeeded] == [holder.user["id"]]
    assert stored_count(app, holder.user["id"]) == 1


def test_the_refresh_token_of_a_passkey_login_works(client, holder: Holder):
    holder.register()
    pair = passkey_login(client, assertion(client, holder.authenticator)).json

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 200, response.json


def test_a_passkey_login_asks_no_totp_code(app, client, holder: Holder):
    """A verified passkey is two factors: an account with MFA on logs in without a code."""
    account = Account(client, holder.user, {"access_token": holder.headers["Authorization"][7:]})
    account.enrol()
    assert account.log_in().json["error"]["code"] == "mfa_required"
    holder.register()

    response = passkey_login(client, assertion(client, holder.authenticator))

    assert response.status_code == 200, response.json
    assert response.json["user"]["mfa_enabled"] is True


def test_an_answer_is_used_once(app, client, holder: Holder):
    """F10: the challenge is spent by the first login; the same answer again is refused."""
    holder.register()
    answer = assertion(client, holder.authenticator)
    assert passkey_login(client, answer).status_code == 200

    refused(passkey_login(client, answer))
    assert whys(app) == ["challenge_not_live"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == 2


def test_twenty_concurrent_uses_of_one_answer_log_in_once(app, holder: Holder):
    """F10: of twenty concurrent requests carrying one answer exactly one gets a session."""
    holder.register()
    client = app.test_client()
    answer = assertion(client, holder.authenticator)

    def attempt(_: int) -> int:
        return passkey_login(app.test_client(), answer).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))

    assert sorted(statuses) == [200] + [401] * 19, statuses


def test_an_answer_after_the_challenge_ttl_is_refused(app, client, holder: Holder):
    """WEBAUTHN_CHALLENGE_TTL, 300 s by default."""
    holder.register()
    options = request_options(client)
    set_clock(client, 301)

    refused(passkey_login(client, holder.authenticator.get(options)))
    assert whys(app) == ["challenge_not_live"]


def test_an_answer_within_the_challenge_ttl_logs_in(client, holder: Holder):
    holder.register()
    options = request_options(client)
    set_clock(client, 290)

    assert passkey_login(client, holder.authenticator.get(options)).status_code == 200


def test_an_unknown_credential_is_refused(app, client, holder: Holder):
    """A passkey removed from the account (still in the authenticator) logs in no more."""
    passkey = holder.register()
    assert holder.remove(passkey["id"], PASSWORD).status_code == 204

    refused(passkey_login(client, assertion(client, holder.authenticator)))
    assert whys(app) == ["unknown_passkey"]


def test_a_made_up_credential_is_refused_like_a_known_one(app, client, holder: Holder):
    """EN-1: a credential the app never saw gets the same answer as a bad known one."""
    holder.register()
    stranger = Authenticator()
    stranger.create(
        {"rp": {"id": "localhost"}, "user": {"id": b64url(b"x" * 16)}, "challenge": "AA"}
    )
    holder.authenticator.user_verified = False

    unknown = passkey_login(client, assertion(client, stranger))
    known = passkey_login(client, assertion(client, holder.authenticator))

    refused(unknown)
    refused(known)
    assert unknown.json["error"]["message"] == known.json["error"]["message"]


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("origin", "wrong_origin"),
        ("rp_id", "wrong_rp_id"),
        ("user_not_verified", "user_not_verified"),
        ("signature", "bad_signature"),
        ("counter_in_data", "bad_signature"),
        ("other_challenge", "bad_signature"),
    ],
)
def test_a_bad_answer_is_refused(app, client, holder: Holder, tamper, why):
    """Another site's origin, another RP id's hash, no user verification, a signature that
    does not verify, authenticator data edited after signing, client data naming a
    different live challenge than the one signed: 401 invalid_passkey, no session, and the
    audit's why."""
    holder.register()
    authenticator = misled(holder.authenticator, tamper)
    answer = assertion(client, authenticator)
    response = answer["response"]
    if tamper == "signature":
        signature = bytearray(unb64url(response["signature"]))
        signature[-1] ^= 0x01
        response["signature"] = b64url(bytes(signature))
    elif tamper == "counter_in_data":
        data = bytearray(unb64url(response["authenticatorData"]))
        data[-1] = 0x7F
        response["authenticatorData"] = b64url(bytes(data))
    elif tamper == "other_challenge":
        client_data = json.loads(unb64url(response["clientDataJSON"]))
        client_data["challenge"] = request_options(client)["challenge"]
        response["clientDataJSON"] = b64url(json.dumps(client_data).encode())

    result = passkey_login(client, answer)

    refused(result)
    assert result.json["error"]["code"] == "invalid_passkey"
    assert whys(app) == [why]
    assert stored_count(app, holder.user["id"]) == 0  # the counter did not move
    assert [e for e in events(app, "login.succeeded") if e.data["method"] == "passkey"] == []


def test_a_user_handle_of_another_account_is_refused(app, client, holder: Holder, make_holder):
    holder.register()
    other = make_holder(email="eve@example.com")
    answer = assertion(client, holder.authenticator)
    answer["response"]["userHandle"] = b64url(uuid.UUID(other.user["id"]).bytes)

    refused(passkey_login(client, answer))
    assert whys(app) == ["user_handle_mismatch"]


def test_a_registration_challenge_does_not_log_in(app, client, holder: Holder):
    """Challenges are bound to their purpose: a registration's is no login's."""
    holder.register()
    options = request_options(client)
    options["challenge"] = holder.creation_options().json["publicKey"]["challenge"]

    refused(passkey_login(client, holder.authenticator.get(options)))


def test_a_clone_whose_counter_fell_behind_is_refused_and_reported(app, client, holder: Holder):
    """WebAuthn §6.1.1: the original moved the counter on; its copy, behind, is refused and
    `passkey.clone_suspected` is written; the passkey is kept for its owner to judge."""
    holder.register()
    clone = holder.authenticator.clone()
    assert passkey_login(client, assertion(client, holder.authenticator)).status_code == 200
    assert passkey_login(client, assertion(client, holder.authenticator)).status_code == 200

    response = passkey_login(client, assertion(client, clone))  # count 1, stored 2

    refused(response)
    assert whys(app) == ["sign_count"]
    suspected = events(app, "passkey.clone_suspected")
    assert [e.user_id for e in suspected] == [holder.user["id"]]
    assert len(holder.listed()) == 1
    assert stored_count(app, holder.user["id"]) == 2


def test_a_counter_that_stands_still_is_refused(app, client, holder: Holder):
    """A clone at the same count as the stored one (it did not grow) is refused too."""
    holder.register()
    clone = holder.authenticator.clone()
    assert passkey_login(client, assertion(client, holder.authenticator)).status_code == 200

    refused(passkey_login(client, assertion(client, clone)))  # count 1 again
    assert len(events(app, "passkey.clone_suspected")) == 1


def test_a_forged_answer_raises_no_clone_alarm(app, client, holder: Holder):
    """A counter that went back, in an answer whose signature is bad, is a bad signature: no
    clone alarm (a forger must not be able to raise one), no counter change."""
    holder.register()
    assert passkey_login(client, assertion(client, holder.authenticator)).status_code == 200
    stale = holder.authenticator.clone()
    stale.credentials[next(iter(stale.credentials))].sign_count = -1  # it will say 0
    answer = assertion(client, stale)
    answer["response"]["signature"] = answer["response"]["signature"][:-4] + "AAAA"

    refused(passkey_login(client, answer))
    assert events(app, "passkey.clone_suspected") == []
    assert stored_count(app, holder.user["id"]) == 1


def test_an_authenticator_without_a_counter_keeps_working(app, client, holder: Holder):
    """Synced passkeys always say 0: that is no clone."""
    holder.authenticator.counter_step = 0
    holder.register()

    for _ in range(3):
        assert passkey_login(client, assertion(client, holder.authenticator)).status_code == 200
    assert events(app, "passkey.clone_suspected") == []
    assert stored_count(app, holder.user["id"]) == 0


def test_a_disabled_account_is_told_only_after_a_good_passkey(app, client, holder: Holder):
    """SE-4: account_disabled (403) only once the passkey checked out; a bad passkey for the
    disabled account gets the same 401 as any other."""
    holder.register()
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == holder.user["id"]).values(is_active=False)
        )
        db.session.commit()

    refused(passkey_login(client, assertion(client, holder.authenticator)), 403, "account_disabled")
    holder.authenticator.user_verified = False
    refused(passkey_login(client, assertion(client, holder.authenticator)))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == 1


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _deep(levels: int) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for _ in range(levels):
        nested = {"a": nested}
    return nested


HOSTILE: dict[str, Any] = {
    "huge-string": "x" * 60_000,
    "string": "credential",
    "list": [1, 2, 3],
    "number": 12,
    "null": None,
    "bool": True,
    "empty": {},
    "nested-deep": _deep(400),
    "nested-response": {"id": "AA", "rawId": "AA", "type": "public-key", "response": _deep(50)},
    "surrogate-id": {"id": "\ud800", "rawId": "\ud800", "type": "public-key", "response": {}},
    "surrogate-everywhere": {
        "id": "\ud800",
        "rawId": "\udfff",
        "type": "\ud800",
        "response": {
            "clientDataJSON": "\ud800",
            "authenticatorData": "\ud800",
            "signature": "\ud800",
            "userHandle": "\ud800",
        },
    },
    "bad-base64": {
        "id": "***",
        "rawId": "***",
        "type": "public-key",
        "response": {"clientDataJSON": "%%%", "authenticatorData": "$$", "signature": "@@"},
    },
    "wrong-types": {
        "id": 1,
        "rawId": [],
        "type": {},
        "response": {"clientDataJSON": 5, "authenticatorData": None, "signature": True},
    },
    "client-data-not-json": {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {
            "clientDataJSON": _b64("not json"),
            "authenticatorData": "AAAA",
            "signature": "AAAA",
        },
    },
    "client-data-list": {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {
            "clientDataJSON": _b64("[1, 2]"),
            "authenticatorData": "AAAA",
            "signature": "AAAA",
        },
    },
    "challenge-not-base64": {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {
            "clientDataJSON": _b64(
                json.dumps({"type": "webauthn.get", "challenge": "\u00e9\u00e9"})
            ),
            "authenticatorData": "AAAA",
            "signature": "AAAA",
        },
    },
    "huge-dict": {"id": "A" * 40_000, "rawId": "A" * 10},
    "nul-bytes": {"id": "\x00", "rawId": "\x00", "type": "public-key", "response": {}},
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_answer_is_refused_never_a_500(app, client, holder: Holder, name):
    """IN-2, JW-8 in spirit: whatever the shape, 401 or 422 with the error envelope, and no
    session."""
    holder.register()
    request_options(client)

    response = passkey_login(client, HOSTILE[name])

    assert response.status_code in (401, 422), response.get_data(as_text=True)
    assert response.json["error"]["code"] in ("invalid_passkey", "validation_error")
    assert response.json["request_id"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == 1


@pytest.mark.parametrize(
    "field", ["clientDataJSON", "authenticatorData", "signature", "userHandle"]
)
@pytest.mark.parametrize("value", ["\ud800", "!!!", "", 7, None, {"x": 1}])
def test_a_hostile_field_in_a_genuine_answer_is_refused(client, holder: Holder, field, value):
    """One field of an otherwise good answer replaced: never a 500, never a login (a
    userHandle left out is allowed by WebAuthn, and one that decodes to nothing is taken as
    left out, so those may still log in: the handle is not signed)."""
    holder.register()
    answer = assertion(client, holder.authenticator)
    answer["response"][field] = value

    response = passkey_login(client, answer)

    if field == "userHandle" and value in ("", None, "!!!"):
        assert response.status_code in (200, 401), response.get_data(as_text=True)
    else:
        refused(response)


def test_a_body_without_a_credential_is_422(client):
    response = client.post(f"{AUTH_PASSKEYS}/login", json={})

    assert response.status_code == 422
    assert "credential" in response.json["error"]["fields"]


@pytest.mark.config(LOGIN_BACKOFF_AFTER=3)
def test_failed_passkey_logins_count_on_the_accounts_back_off(app, client, holder: Holder):
    """RL-2: refused answers for an account's passkey hold that account, as wrong passwords
    do: past LOGIN_BACKOFF_AFTER even a good passkey, and the password, wait (429)."""
    holder.register()
    holder.authenticator.user_verified = False
    for _ in range(3):
        refused(passkey_login(client, assertion(client, holder.authenticator)))
    holder.authenticator.user_verified = True

    good = passkey_login(client, assertion(client, holder.authenticator))
    password = client.post(
        "/api/v1/auth/login", json={"login": holder.user["email"], "password": PASSWORD}
    )

    refused(good, 429, "rate_limited")
    refused(password, 429, "rate_limited")
    assert "Retry-After" in good.headers
    assert events(app, "login.locked")


@pytest.mark.config(LOGIN_BACKOFF_AFTER=3)
def test_a_success_starts_the_passkey_count_again(client, holder: Holder):
    """RL-2: a success resets the count: two failures, a success, two failures: no wait."""
    holder.register()
    for round_ in range(2):
        holder.authenticator.user_verified = False
        for _ in range(2):
            refused(passkey_login(client, assertion(client, holder.authenticator)))
        holder.authenticator.user_verified = True
        good = passkey_login(client, assertion(client, holder.authenticator))
        assert good.status_code == 200, (round_, good.json)


@pytest.mark.config(LOGIN_BACKOFF_AFTER=3)
def test_an_unknown_credential_is_held_by_its_own_count(client, holder: Holder):
    """EN-4: failures with a credential id no account has are counted like a known one's,
    on that id: they hold neither the account nor another credential."""
    holder.register()
    stranger = Authenticator()
    stranger.create(
        {"rp": {"id": "localhost"}, "user": {"id": b64url(b"x" * 16)}, "challenge": "AA"}
    )
    for _ in range(3):
        refused(passkey_login(client, assertion(client, stranger)))

    refused(passkey_login(client, assertion(client, stranger)), 429, "rate_limited")
    assert passkey_login(client, assertion(client, holder.authenticator)).status_code == 200


@pytest.mark.config(REQUIRE_VERIFIED_EMAIL=True)
def test_an_unconfirmed_account_is_told_only_after_a_good_passkey(app, client, holder: Holder):
    """Under REQUIRE_VERIFIED_EMAIL: 403 email_unverified once the passkey checked out (a bad
    one is the usual 401); no session, and the answer stays spent."""
    holder.register()
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == holder.user["id"]).values(email_verified_at=None)
        )
        db.session.commit()
    answer = assertion(client, holder.authenticator)

    refused(passkey_login(client, answer), 403, "email_unverified")
    refused(passkey_login(client, answer))
    holder.authenticator.user_verified = False
    refused(passkey_login(client, assertion(client, holder.authenticator)))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == 1


def test_a_challenge_issued_to_another_account_does_not_log_in(app, client, holder, make_holder):
    """The login page's second step binds its challenge to the waiting account: another
    account's passkey cannot answer it; the waiting account's can."""
    other = make_holder(email="eve@example.com")
    holder.register()
    other.register()
    with app.app_context():
        challenge = passkey_checks.issue_challenge("login", user_id=other.user["id"])
        db.session.commit()
    options = request_options(client) | {"challenge": b64url(challenge)}

    refused(passkey_login(client, holder.authenticator.get(options)))
    assert whys(app) == ["challenge_not_live"]
    assert passkey_login(client, other.authenticator.get(options)).status_code == 200


@pytest.mark.parametrize("depth", [2_000, 5_000])
def test_a_deeply_nested_body_is_refused_not_a_500(client, depth):
    """IN-1, IN-2: a body nested thousands deep (12 to 30 KB, under MAX_CONTENT_LENGTH) is
    refused like broken JSON (400 invalid_json), never a 500 from a RecursionError."""
    body = '{"credential": ' + '{"a":' * depth + "1" + "}" * depth + "}"

    response = client.post(f"{AUTH_PASSKEYS}/login", data=body, content_type="application/json")

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "invalid_json"


@pytest.mark.config(
    RATELIMIT_ENABLED=True,
    RATELIMIT_STORAGE_URI="memory://",
    RATELIMIT_PASSKEY_OPTIONS="2/minute",
)
def test_login_options_are_limited_per_address(app, client):
    """RL-4: each options answer stores a challenge row, so they are throttled per client
    address (RATELIMIT_PASSKEY_OPTIONS): past it, 429 and no new row."""
    assert login_options(client).status_code == 200
    assert login_options(client).status_code == 200

    response = login_options(client)

    refused(response, 429, "rate_limited")
    assert "Retry-After" in response.headers
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PasskeyChallenge)) == 2
