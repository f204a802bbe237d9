"""/api/v1/settings/passkeys: registering a passkey (options, then the authenticator's answer),
listing, renaming and removing one; the limits, another account's passkeys (AC-2), the
password the last passkey takes, challenges bound to the session and the user, and the audit
trail and mail each change leaves (AU-1)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from flask import Flask

from authapp.models import AuditEvent, OutboxMessage, Passkey, User
from authapp.platform.extensions import db
from tests.app.passkeys.conftest import (
    SETTINGS_PASSKEYS,
    Holder,
    challenges,
    events,
    misled,
    passkeys_of,
    refused,
    request_options,
    set_clock,
)
from tests.conftest import PASSWORD, auth_header
from tests.passkey_authenticator import Authenticator, b64url


def mails(app: Flask, template: str) -> list[dict]:
    with app.app_context():
        payloads = db.session.scalars(sa.select(OutboxMessage.payload)).all()
    return [payload for payload in payloads if payload.get("template") == template]


def create_with_id(
    authenticator: Authenticator, options: dict, credential_id: bytes, monkeypatch
) -> dict:
    """The authenticator's registration answer, its new credential's id forced to
    `credential_id` (only os.urandom during create() is replaced)."""
    with monkeypatch.context() as patched:
        patched.setattr("tests.passkey_authenticator.os.urandom", lambda n: credential_id)
        return authenticator.create(options)


def test_a_registered_passkey_is_listed_without_its_key_material(app, holder: Holder):
    """The answer and the list hold the passkey's id, name, times and backed_up only: never
    its credential id, public key or counter (AC-5); options name this site and ask for the
    user to be verified, with no attestation."""
    options = holder.creation_options()
    assert options.status_code == 200, options.json
    public_key = options.json["publicKey"]
    assert public_key["rp"]["id"] == "localhost"
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert public_key["attestation"] == "none"
    assert public_key["excludeCredentials"] == []

    created = holder.submit(holder.authenticator.create(public_key), "Laptop")

    assert created.status_code == 201, created.json
    passkey = created.json["passkey"]
    assert set(passkey) == {"id", "name", "created_at", "last_used_at", "backed_up"}
    assert passkey["name"] == "Laptop"
    assert passkey["last_used_at"] is None
    assert passkey["backed_up"] is False
    assert holder.listed() == [passkey]
    credential_id = next(iter(holder.authenticator.credentials))
    assert credential_id not in created.get_data(as_text=True)
    assert passkeys_of(app, holder.user["id"]) == 1


def test_registration_is_audited_and_mailed_to_the_owner(app, holder: Holder):
    """AU-1: `passkey.registered` names the passkey; the owner is told by mail (a stolen
    session could add a passkey of its own)."""
    passkey = holder.register("Phone")

    registered = events(app, "passkey.registered")
    assert [(e.user_id, e.data["passkey_id"]) for e in registered] == [
        (holder.user["id"], passkey["id"])
    ]
    changed = mails(app, "passkeys_changed")
    assert len(changed) == 1
    assert changed[0]["to"] == holder.user["email"]
    assert changed[0]["context"]["added"] is True
    assert changed[0]["context"]["passkey_name"] == "Phone"


def test_a_passkey_without_a_name_is_numbered(holder: Holder):
    first = holder.register()
    second = holder.register("")

    assert (first["name"], second["name"]) == ("Passkey 1", "Passkey 2")


def test_the_options_exclude_the_accounts_passkeys(holder: Holder):
    holder.register()

    excluded = holder.creation_options().json["publicKey"]["excludeCredentials"]

    assert [descriptor["id"] for descriptor in excluded] == list(holder.authenticator.credentials)


def test_a_passkey_is_renamed(app, holder: Holder):
    passkey = holder.register("Old")

    response = holder.client.patch(
        f"{SETTINGS_PASSKEYS}/{passkey['id']}", json={"name": "New"}, headers=holder.headers
    )

    assert response.status_code == 200, response.json
    assert response.json["passkey"]["name"] == "New"
    assert [p["name"] for p in holder.listed()] == ["New"]
    assert [e.data["passkey_id"] for e in events(app, "passkey.renamed")] == [passkey["id"]]


@pytest.mark.parametrize("name", ["", "x" * 101, "nul\x00byte", "\ud800", 5, None])
def test_a_bad_name_is_refused_and_changes_nothing(holder: Holder, name):
    """IN-2: empty, too long, NUL, a lone surrogate or not a string: 422, never 500."""
    passkey = holder.register("Kept")

    response = holder.client.patch(
        f"{SETTINGS_PASSKEYS}/{passkey['id']}", json={"name": name}, headers=holder.headers
    )

    assert response.status_code == 422, response.get_data(as_text=True)
    assert "name" in response.json["error"]["fields"], response.json
    assert [p["name"] for p in holder.listed()] == ["Kept"]


@pytest.mark.parametrize("name", ["x" * 101, "nul\x00byte", "\ud800", ["a"]])
def test_a_registration_with_a_bad_name_is_refused_not_a_500(app, holder: Holder, name):
    """IN-2: the name is checked like any text field; nothing is kept."""
    options = holder.creation_options().json["publicKey"]

    response = holder.submit(holder.authenticator.create(options), name)

    assert response.status_code == 422, response.get_data(as_text=True)
    assert passkeys_of(app, holder.user["id"]) == 0


def test_a_passkey_that_is_not_the_last_is_removed_without_the_password(app, holder: Holder):
    first = holder.register("One")
    second = holder.register("Two")

    response = holder.remove(first["id"])

    assert response.status_code == 204, response.get_data(as_text=True)
    assert [p["id"] for p in holder.listed()] == [second["id"]]
    assert [e.data["passkey_id"] for e in events(app, "passkey.removed")] == [first["id"]]
    removed = [m for m in mails(app, "passkeys_changed") if m["context"]["added"] is False]
    assert [m["context"]["passkey_name"] for m in removed] == ["One"]


def test_the_last_passkey_takes_the_password(app, holder: Holder):
    """A stolen session cannot quietly take away the account's phishing-resistant way in: the
    last passkey goes only with the password (missing or wrong: 422 on `password`)."""
    passkey = holder.register()

    missing = holder.remove(passkey["id"])
    wrong = holder.remove(passkey["id"], "not the password at all")

    for response in (missing, wrong):
        assert response.status_code == 422, response.json
        assert "password" in response.json["error"]["fields"], response.json
    assert len(holder.listed()) == 1
    failed = events(app, "passkey.remove_failed")
    assert [e.data["reason"] for e in failed] == ["bad_password"]
    assert PASSWORD not in str([e.data for e in failed])

    assert holder.remove(passkey["id"], PASSWORD).status_code == 204
    assert holder.listed() == []


def test_another_accounts_passkey_is_answered_like_none(app, holder: Holder, make_holder):
    """AC-2: renaming or removing another account's passkey is 404, as for an id that names
    nothing, and leaves it alone."""
    other = make_holder(email="eve@example.com")
    theirs = holder.register("Ada's")
    other.register("Eve's")

    rename = other.client.patch(
        f"{SETTINGS_PASSKEYS}/{theirs['id']}", json={"name": "Mine"}, headers=other.headers
    )
    remove = other.remove(theirs["id"], PASSWORD)
    unknown = other.remove("00000000-0000-0000-0000-000000000000", PASSWORD)
    garbage = other.remove("not-an-id", PASSWORD)

    for response in (rename, remove, unknown, garbage):
        refused(response, 404, "not_found")
    assert rename.json["error"]["message"] == unknown.json["error"]["message"]
    assert [p["name"] for p in holder.listed()] == ["Ada's"]
    assert [p["name"] for p in other.listed()] == ["Eve's"]


@pytest.mark.config(PASSKEYS_PER_USER=2)
def test_the_number_of_passkeys_is_limited(app, holder: Holder):
    holder.register()
    holder.register()

    refused(holder.creation_options(), 409, "too_many_passkeys")
    assert passkeys_of(app, holder.user["id"]) == 2


@pytest.mark.config(PASSKEYS_PER_USER=1)
def test_options_taken_before_the_limit_do_not_pass_it(app, holder: Holder):
    """Two set-ups started while there was room: the second to finish is refused."""
    first = holder.creation_options().json["publicKey"]
    second = holder.creation_options().json["publicKey"]
    assert holder.submit(holder.authenticator.create(first)).status_code == 201

    refused(holder.submit(holder.authenticator.create(second)), 409, "too_many_passkeys")
    assert passkeys_of(app, holder.user["id"]) == 1


def test_the_same_credential_is_not_registered_twice(app, holder: Holder, monkeypatch):
    """An authenticator that ignores excludeCredentials and answers with a credential id the
    account holds already: 409 passkey_exists, and the passkey kept is the first."""
    options = holder.creation_options().json["publicKey"]
    answer = create_with_id(holder.authenticator, options, b"\x01" * 16, monkeypatch)
    first = holder.submit(answer, "First").json["passkey"]

    options = holder.creation_options().json["publicKey"]
    again = create_with_id(Authenticator(), options, b"\x01" * 16, monkeypatch)
    response = holder.submit(again, "Second")

    refused(response, 409, "passkey_exists")
    assert [p["id"] for p in holder.listed()] == [first["id"]]


def test_another_account_cannot_register_a_credential_id_in_use(
    app, holder: Holder, make_holder, monkeypatch
):
    """The credential id is unique across accounts: a second account presenting it gets 409
    and does not take it over."""
    other = make_holder(email="eve@example.com")
    options = holder.creation_options().json["publicKey"]
    answer = create_with_id(holder.authenticator, options, b"\x02" * 16, monkeypatch)
    assert holder.submit(answer).status_code == 201

    options = other.creation_options().json["publicKey"]
    again = create_with_id(other.authenticator, options, b"\x02" * 16, monkeypatch)
    refused(other.submit(again), 409, "passkey_exists")

    assert passkeys_of(app, other.user["id"]) == 0
    with app.app_context():
        owner = db.session.scalar(sa.select(Passkey.user_id))
    assert owner == holder.user["id"]


def test_a_registration_answer_is_used_once(app, holder: Holder):
    """F10: the challenge is spent by the first answer; the same answer again is refused."""
    options = holder.creation_options().json["publicKey"]
    answer = holder.authenticator.create(options)
    assert holder.submit(answer).status_code == 201

    refused(holder.submit(answer), 422, "invalid_passkey")
    assert passkeys_of(app, holder.user["id"]) == 1


def test_a_refused_answer_spends_its_challenge_and_is_audited(app, holder: Holder):
    """An answer that fails verification (made by an authenticator that did not verify the
    user) uses up its challenge: a good answer to the same options is then refused too."""
    options = holder.creation_options().json["publicKey"]
    holder.authenticator.user_verified = False
    refused(holder.submit(holder.authenticator.create(options)), 422, "invalid_passkey")

    holder.authenticator.user_verified = True
    refused(holder.submit(holder.authenticator.create(options)), 422, "invalid_passkey")

    assert passkeys_of(app, holder.user["id"]) == 0
    reasons = [e.data["why"] for e in events(app, "passkey.register_failed")]
    assert reasons == ["user_not_verified", "challenge_not_live"]


@pytest.mark.parametrize(
    "tamper",
    ["origin", "rp_id", "user_not_verified", "user_not_present", "type", "attestation"],
)
def test_a_bad_registration_answer_is_422_invalid_passkey(app, holder: Holder, tamper):
    options = holder.creation_options().json["publicKey"]
    answer = misled(holder.authenticator, tamper).create(options)
    if tamper == "type":
        answer["type"] = "password"
    elif tamper == "attestation":
        answer["response"]["attestationObject"] = b64url(b"\xa0")  # an empty CBOR map

    response = holder.submit(answer)

    refused(response, 422, "invalid_passkey")
    assert "credential" in response.json["error"]["fields"]
    assert passkeys_of(app, holder.user["id"]) == 0


def test_a_login_challenge_does_not_register_a_passkey(app, client, holder: Holder):
    """Challenges are bound to their purpose: one handed out for a login is no registration's."""
    options = holder.creation_options().json["publicKey"]
    options["challenge"] = request_options(client)["challenge"]

    refused(holder.submit(holder.authenticator.create(options)), 422, "invalid_passkey")
    assert passkeys_of(app, holder.user["id"]) == 0


def test_a_challenge_is_bound_to_the_session_that_asked(app, client, holder: Holder, login):
    """Options fetched by one session of the account cannot be finished by another session of
    the same account; the session that asked still can."""
    other_session = auth_header(login(holder.user)["access_token"])
    options = holder.creation_options().json["publicKey"]
    answer = holder.authenticator.create(options)

    response = client.post(SETTINGS_PASSKEYS, json={"credential": answer}, headers=other_session)

    refused(response, 422, "invalid_passkey")
    assert passkeys_of(app, holder.user["id"]) == 0
    assert holder.submit(answer).status_code == 201


def test_a_challenge_is_bound_to_the_account_that_asked(app, holder: Holder, make_holder):
    other = make_holder(email="eve@example.com")
    options = holder.creation_options().json["publicKey"]

    refused(other.submit(other.authenticator.create(options)), 422, "invalid_passkey")
    assert passkeys_of(app, other.user["id"]) == 0
    assert passkeys_of(app, holder.user["id"]) == 0


def test_a_registration_challenge_expires_after_the_ttl(app, client, holder: Holder):
    """WEBAUTHN_CHALLENGE_TTL (300 s by default): an answer after it is refused."""
    options = holder.creation_options().json["publicKey"]
    set_clock(client, 301)

    refused(holder.submit(holder.authenticator.create(options)), 422, "invalid_passkey")
    assert passkeys_of(app, holder.user["id"]) == 0
    assert [e.data["why"] for e in events(app, "passkey.register_failed")] == ["challenge_not_live"]


def test_a_registration_challenge_is_live_until_the_ttl(client, holder: Holder):
    options = holder.creation_options().json["publicKey"]
    set_clock(client, 290)

    assert holder.submit(holder.authenticator.create(options)).status_code == 201


@pytest.mark.config(WEBAUTHN_CHALLENGE_TTL=60)
def test_the_challenge_ttl_is_configured(client, holder: Holder):
    options = holder.creation_options().json["publicKey"]
    set_clock(client, 61)

    refused(holder.submit(holder.authenticator.create(options)), 422, "invalid_passkey")


@pytest.mark.parametrize(
    "credential",
    [
        "x" * 20_000,
        ["not", "an", "object"],
        7,
        {},
        {"id": "\ud800", "rawId": "\ud800", "type": "public-key", "response": {}},
        {"id": "!!", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": "%%"}},
        {"response": {"clientDataJSON": {"nested": {"deeper": [1, 2, {"x": None}]}}}},
        {"a": "b" * 30_000},
    ],
    ids=["huge-string", "list", "int", "empty", "surrogate", "bad-base64", "nested", "huge"],
)
def test_a_hostile_registration_answer_is_refused_not_a_500(app, holder: Holder, credential):
    """IN-2: whatever the answer's shape, 422 and nothing kept."""
    holder.creation_options()

    response = holder.submit(credential)

    assert response.status_code == 422, response.get_data(as_text=True)
    assert passkeys_of(app, holder.user["id"]) == 0


def test_passkey_settings_need_a_login(client, holder: Holder):
    passkey = holder.register()
    for method, path in (
        ("GET", SETTINGS_PASSKEYS),
        ("POST", f"{SETTINGS_PASSKEYS}/options"),
        ("POST", SETTINGS_PASSKEYS),
        ("PATCH", f"{SETTINGS_PASSKEYS}/{passkey['id']}"),
        ("DELETE", f"{SETTINGS_PASSKEYS}/{passkey['id']}"),
    ):
        response = client.open(path, method=method, json={"name": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json["error"]["code"] == "missing_token"
    assert len(holder.listed()) == 1


def test_options_take_the_password_again(app, holder: Holder):
    """As for TOTP set-up (MF-1): a stolen session must not plant a passkey. Missing or wrong
    is 422 on `password`, audited, and no challenge is handed out."""
    missing = holder.creation_options(password=None)
    wrong = holder.creation_options(password="not the password at all")

    for response in (missing, wrong):
        assert response.status_code == 422, response.json
        assert "password" in response.json["error"]["fields"], response.json
        assert "publicKey" not in response.json
    assert challenges(app) == 0
    assert [e.data["reason"] for e in events(app, "passkey.register_failed")] == ["bad_password"]


def test_an_unconfirmed_address_cannot_register_a_passkey(app, holder: Holder):
    """Pre-account hijacking (docs/security.md "Unconfirmed accounts"): a passkey made before
    the address is confirmed would be the squatter's; 403 email_not_verified."""
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.id == holder.user["id"]).values(email_verified_at=None)
        )
        db.session.commit()

    refused(holder.creation_options(), 403, "email_not_verified")
    assert challenges(app) == 0


def test_two_concurrent_removals_never_remove_the_last_passkey_without_the_password(
    app, holder: Holder
):
    """With two passkeys, two removals without the password at once: each alone would not be
    the last, but one of them is, so exactly one succeeds and one passkey remains."""
    first, second = holder.register(), holder.register()

    def remove(passkey_id: str) -> int:
        client = app.test_client()
        path = f"{SETTINGS_PASSKEYS}/{passkey_id}"
        return client.delete(path, headers=holder.headers).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(remove, [first["id"], second["id"]]))

    assert statuses == [204, 422]
    assert passkeys_of(app, holder.user["id"]) == 1


@pytest.mark.config(PASSKEYS_PER_USER=1)
def test_concurrent_registrations_do_not_pass_the_limit(app, holder: Holder):
    """Two answers to two live option sets, sent at once, with room for one: one is kept."""
    answers = [
        holder.authenticator.create(holder.creation_options().json["publicKey"]) for _ in range(2)
    ]

    def submit(answer: dict) -> int:
        client = app.test_client()
        body = {"credential": answer}
        return client.post(SETTINGS_PASSKEYS, json=body, headers=holder.headers).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(submit, answers))

    assert statuses == [201, 409]
    assert passkeys_of(app, holder.user["id"]) == 1


@pytest.mark.parametrize("length", [16, 1023])
def test_a_credential_id_up_to_1023_bytes_is_kept(app, holder: Holder, monkeypatch, length):
    options = holder.creation_options().json["publicKey"]
    answer = create_with_id(holder.authenticator, options, b"\x03" * length, monkeypatch)

    assert holder.submit(answer).status_code == 201
    assert passkeys_of(app, holder.user["id"]) == 1


@pytest.mark.parametrize("length", [1024, 1100, 4000])
def test_a_credential_id_longer_than_1023_bytes_is_refused_not_a_500(
    app, holder: Holder, monkeypatch, length
):
    """WebAuthn Level 3 §7.1 (registration, "credentialId is less than 1024 bytes"): a longer
    id is an invalid answer, 422 invalid_passkey (IN-2: never a 500, as the 1,400-character
    column would otherwise give)."""
    options = holder.creation_options().json["publicKey"]
    answer = create_with_id(holder.authenticator, options, b"\x04" * length, monkeypatch)

    response = holder.submit(answer)

    refused(response, 422, "invalid_passkey")
    assert passkeys_of(app, holder.user["id"]) == 0


def test_the_audit_trail_holds_no_part_of_the_answers(app, client, holder: Holder):
    """AU-2: registration and login events keep ids and reasons, never the answer (client
    data, signature, attestation) nor the challenge."""
    options = holder.creation_options().json["publicKey"]
    answer = holder.authenticator.create(options)
    holder.submit(answer)
    login = holder.authenticator.get(request_options(client))
    holder.authenticator.user_verified = False
    bad = holder.authenticator.get(request_options(client))
    client.post("/api/v1/auth/passkeys/login", json={"credential": login})
    client.post("/api/v1/auth/passkeys/login", json={"credential": bad})

    with app.app_context():
        rows = db.session.execute(sa.select(AuditEvent.data)).scalars().all()
    text = str(rows)
    assert len(rows) >= 4
    for secret in (
        options["challenge"],
        answer["response"]["clientDataJSON"],
        answer["response"]["attestationObject"],
        login["response"]["signature"],
        bad["response"]["clientDataJSON"],
        next(iter(holder.authenticator.credentials)),
    ):
        assert secret[:40] not in text


@pytest.mark.config(PASSKEYS_PER_USER=1)
def test_an_answer_refused_for_the_limit_has_spent_its_challenge(app, holder: Holder):
    """docs/api.md "Challenges": the answer that reaches the challenge check first spends it,
    whatever comes after. An answer refused at the limit cannot be sent again once there is
    room: its set-up starts again."""
    first = holder.creation_options().json["publicKey"]
    second = holder.creation_options().json["publicKey"]
    kept = holder.submit(holder.authenticator.create(first)).json["passkey"]
    late = holder.authenticator.create(second)
    refused(holder.submit(late), 409, "too_many_passkeys")
    assert holder.remove(kept["id"], PASSWORD).status_code == 204

    refused(holder.submit(late), 422, "invalid_passkey")
    assert holder.listed() == []
