"""Signing in with an OpenID Connect provider from the login page (docs/federation.md), against
a real provider (tests/oidc_peer.py): sign-up, login, the refusals of a callback that is not
this browser's, and the accounts an address alone must never open."""

from __future__ import annotations

import http.server
import json
import threading
import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import AuditEvent, Identity, User
from authapp.platform.extensions import db
from tests.app.federation.conftest import CALLBACK, come_back, sign_in, start
from tests.oidc_peer import sign_in_at_provider
from tests.servers import Tarpit, free_port

ME = "/api/v1/auth/me"


def _login_name(prefix: str = "person") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _user(app: Flask, email: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email_normalized == email))
        db.session.expunge_all()
        return user


def _identities(app: Flask, subject: str) -> list[tuple[str, str, str, bool]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(
                Identity.user_id, Identity.provider, Identity.email, Identity.email_verified
            ).where(Identity.subject == subject)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _failures(app: Flask) -> list[dict[str, str]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent.data)
            .where(AuditEvent.event == "login.failed")
            .order_by(AuditEvent.created_at)  # each test's refusals come in separate requests
        )
        return [dict(row) for row in rows]


def test_a_newcomer_signs_up_with_the_provider_and_is_logged_in(app: Flask, client: FlaskClient):
    name = _login_name()
    answer = sign_in(client, name, next_path="/settings")

    assert answer.status_code == 303
    assert answer.location == "/settings"
    me = client.get(ME)
    assert me.status_code == 200, me.json
    assert me.json["user"]["email"] == f"{name}@example.com"
    user = _user(app, f"{name}@example.com")
    assert user is not None
    assert user.has_password is False  # nobody knows its password: it has none to log in with
    assert user.email_verified  # the provider vouched for the address
    assert _identities(app, name) == [(user.id, "idp", f"{name}@example.com", True)]


def test_the_same_identity_logs_in_to_the_same_account(app: Flask, client: FlaskClient):
    name = _login_name()
    sign_in(client, name)
    first = _user(app, f"{name}@example.com")
    client.post("/logout", data={"csrf_token": _csrf(client)})
    assert client.get(ME).status_code == 401

    again = sign_in(app.test_client(), name)

    assert again.status_code == 303
    assert first is not None
    [identity] = _identities(app, name)
    assert identity[0] == first.id
    with app.app_context():
        methods = db.session.scalars(
            sa.select(AuditEvent.data["method"].as_string()).where(
                AuditEvent.event == "login.succeeded", AuditEvent.user_id == first.id
            )
        )
        assert list(methods) == ["federated"]


def test_an_unconfirmed_address_at_the_provider_makes_an_unconfirmed_account(
    app: Flask, client: FlaskClient, mailbox
):
    name = _login_name("unverified")
    sign_in(client, name)

    user = _user(app, f"{name}@example.com")
    assert user is not None
    assert not user.email_verified
    assert mailbox.last(to=f"{name}@example.com")["Subject"] == "Confirm your email address"


def test_an_address_that_has_an_account_is_never_linked_by_itself(
    app: Flask, client: FlaskClient, make_user
):
    """The provider vouches for the address, yet only the account's owner may link it."""
    name = _login_name()
    owner = make_user(email=f"{name}@example.com")

    answer = sign_in(client, name)

    assert answer.status_code == 409
    assert "connect Test IdP on the security page" in answer.get_data(as_text=True)
    assert _identities(app, name) == []
    assert client.get(ME).status_code == 401
    assert _user(app, owner.email).has_password  # type: ignore[union-attr]


def test_a_callback_from_another_browser_is_refused(app: Flask, client: FlaskClient):
    """Login CSRF: the attacker's own code, sent to the victim's browser, opens nothing."""
    name = _login_name()
    attacker = app.test_client()
    left = start(attacker)
    url = sign_in_at_provider(left.location, name, redirect_prefix=CALLBACK)

    answer = come_back(client, url)  # the victim's browser never started this flow

    assert answer.status_code == 401
    assert client.get(ME).status_code == 401
    assert _user(app, f"{name}@example.com") is None
    assert {"why": "no_flow", "provider": "idp"}.items() <= _failures(app)[-1].items()


def test_a_forged_state_is_refused_and_spends_the_flow(app: Flask, client: FlaskClient):
    name = _login_name()
    left = start(client)
    url = sign_in_at_provider(left.location, name, redirect_prefix=CALLBACK)

    forged = come_back(client, url.replace("state=", "state=x"))
    genuine = come_back(client, url)  # the flow went with the forged try

    assert forged.status_code == 401
    assert genuine.status_code == 401
    assert [f["why"] for f in _failures(app)[-2:]] == ["state_mismatch", "no_flow"]
    assert _user(app, f"{name}@example.com") is None


def test_a_replayed_callback_opens_nothing(app: Flask, client: FlaskClient):
    name = _login_name()
    left = start(client)
    url = sign_in_at_provider(left.location, name, redirect_prefix=CALLBACK)
    assert come_back(client, url).status_code == 303
    client.post("/logout", data={"csrf_token": _csrf(client)})

    replayed = come_back(client, url)

    assert replayed.status_code == 401
    assert client.get(ME).status_code == 401


def test_a_replayed_code_is_refused_by_the_provider(app: Flask, client: FlaskClient):
    """The flow started again with the same code: the provider refuses a code used twice."""
    name = _login_name()
    left = start(client)
    with client.session_transaction() as session:
        flow = dict(session["federation_flow"])
    url = sign_in_at_provider(left.location, name, redirect_prefix=CALLBACK)
    assert come_back(client, url).status_code == 303
    client.post("/logout", data={"csrf_token": _csrf(client)})
    with client.session_transaction() as session:  # the attacker kept the flow's cookie too
        session["federation_flow"] = flow

    replayed = come_back(client, url)

    assert replayed.status_code == 401
    assert _failures(app)[-1]["why"].startswith("token: invalid_grant")


@pytest.mark.config(FEDERATION_FLOW_TTL=86_400)
def test_an_expired_id_token_is_refused_through_the_whole_flow(app: Flask, client: FlaskClient):
    """The person took two hours at the provider, by authapp's clock: the provider's ID token
    (an hour's life) has expired when the code comes back, though the flow has not."""
    name = _login_name()
    left = start(client)
    url = sign_in_at_provider(left.location, name, redirect_prefix=CALLBACK)
    assert client.post("/_testing/clock", json={"offset_seconds": 7200}).status_code == 200

    answer = come_back(client, url)

    assert answer.status_code == 401
    assert _user(app, f"{name}@example.com") is None
    assert _failures(app)[-1]["why"].startswith("id_token: bad_claims")
    assert "exp" in _failures(app)[-1]["why"]


def test_an_id_token_for_another_flows_nonce_is_refused(app: Flask, client: FlaskClient):
    """The code comes back to a flow whose nonce is not the one the provider signed in."""
    name = _login_name()
    left = start(client)
    url = sign_in_at_provider(left.location, name, redirect_prefix=CALLBACK)
    with client.session_transaction() as session:
        session["federation_flow"] = {**session["federation_flow"], "nonce": "another flow's"}

    answer = come_back(client, url)

    assert answer.status_code == 401
    assert _user(app, f"{name}@example.com") is None
    assert "nonce" in _failures(app)[-1]["why"]


def test_cancelling_at_the_provider_says_so(app: Flask, client: FlaskClient):
    left = start(client)
    state = dict(p.split("=", 1) for p in left.location.split("?", 1)[1].split("&"))["state"]

    answer = client.get(f"/login/with/idp/callback?error=access_denied&state={state}")

    assert answer.status_code == 401
    assert "was cancelled" in answer.get_data(as_text=True)


@pytest.mark.config(SIGNUP_MODE="closed")
def test_a_closed_sign_up_refuses_a_newcomer_from_the_provider(app: Flask, client: FlaskClient):
    name = _login_name()
    answer = sign_in(client, name)

    assert answer.status_code == 403
    assert _user(app, f"{name}@example.com") is None
    assert _identities(app, name) == []


def test_hostile_callback_parameters_are_a_refusal_never_a_500(app: Flask, client: FlaskClient):
    start(client)
    for query in (
        "code=%ED%A0%80&state=%ED%A0%80",  # a lone surrogate, UTF-8 encoded
        "code=%00&state=%01",
        f"code={'x' * 100_000}&state=y",
        "state[]=1&code[]=2",
        "",
    ):
        answer = client.get(f"/login/with/idp/callback?{query}")
        assert answer.status_code == 401, (query[:40], answer.status_code)


def test_an_unknown_provider_is_not_found(client: FlaskClient):
    assert client.post("/login/with/nobody", data={"csrf_token": _csrf(client)}).status_code == 404
    assert client.get("/login/with/nobody/callback?code=x&state=y").status_code == 404


def test_a_provider_that_does_not_answer_is_a_503_page(app: Flask, client: FlaskClient):
    from tests.app.federation.conftest import provider_settings

    app.config["FEDERATION_PROVIDERS"] = provider_settings(f"http://127.0.0.1:{free_port()}")

    answer = start(client)

    assert answer.status_code == 503
    assert "Test IdP is not answering" in answer.get_data(as_text=True)


@pytest.mark.config(FEDERATION_TIMEOUT=1, BREAKER_FAILURES=2)
def test_a_provider_that_never_answers_costs_a_503_and_opens_its_breaker(
    app: Flask, client: FlaskClient
):
    """A slow or malicious provider holds a federation thread only until the deadline; after
    BREAKER_FAILURES such steps its breaker is open, and the next step is refused without a
    connection. Password logins never wait on it."""
    from tests.app.federation.conftest import provider_settings

    tarpit = Tarpit()
    try:
        app.config["FEDERATION_PROVIDERS"] = provider_settings(f"http://127.0.0.1:{tarpit.port}")
        answers = [start(client).status_code for _ in range(2)]
        reached = len(tarpit.accepted)
        refused = start(client)

        assert answers == [503, 503]
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "30"
        assert len(tarpit.accepted) == reached  # the open breaker made no call
    finally:
        tarpit.close()


def test_a_provider_that_answers_without_end_is_cut_off(app: Flask, client: FlaskClient):
    """A discovery document of megabytes (a broken or hostile server at the issuer's address)
    is refused at MAX_DOCUMENT_BYTES, not read into memory whole: the page answers 503."""
    from tests.app.federation.conftest import provider_settings

    class Huge(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            """A discovery document right in every field, but 4 MB of padding."""
            issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
            endpoints = {key: f"{issuer}/{key}" for key in ("auth", "token", "jwks")}
            document = {
                "issuer": issuer,
                "authorization_endpoint": endpoints["auth"],
                "token_endpoint": endpoints["token"],
                "jwks_uri": endpoints["jwks"],
                "x_padding": "x" * (4 << 20),
            }
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(document).encode())

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Huge)
    served = threading.Thread(target=httpd.serve_forever, daemon=True)
    served.start()
    try:
        app.config["FEDERATION_PROVIDERS"] = provider_settings(
            f"http://127.0.0.1:{httpd.server_address[1]}"
        )
        answer = start(client)
    finally:
        httpd.shutdown()
        httpd.server_close()
        served.join(timeout=5)

    assert answer.status_code == 503
    assert "is not answering" in answer.get_data(as_text=True)


def test_the_login_and_sign_up_pages_offer_the_provider(client: FlaskClient):
    for path, words in (("/login", "Log in with Test IdP"), ("/signup", "Sign up with Test IdP")):
        page = client.get(path).get_data(as_text=True)
        assert words in page
        assert 'action="/login/with/idp"' in page


def _csrf(client: FlaskClient) -> str:
    from tests.app.web.conftest import csrf_token

    return csrf_token(client, "/login")


def test_an_account_made_by_the_provider_sets_a_password_by_a_reset(
    app: Flask, client: FlaskClient, mailbox
):
    name = _login_name()
    email = f"{name}@example.com"
    sign_in(client, name)
    before = client.post("/api/v1/auth/login", json={"login": email, "password": "x" * 20})
    client.post("/api/v1/auth/password/forgot", json={"email": email})
    link = next(u for u in mailbox.links(mailbox.last(to=email)) if "/reset-password" in u)
    token = link.split("token=", 1)[1]

    reset = client.post(
        "/api/v1/auth/password/reset",
        json={"token": token, "new_password": "a new long passphrase of mine"},
    )
    after = client.post(
        "/api/v1/auth/login", json={"login": email, "password": "a new long passphrase of mine"}
    )

    assert before.status_code == 401  # no password opens it before
    assert reset.status_code == 204
    assert after.status_code == 200
    user = _user(app, email)
    assert user is not None
    assert user.has_password
