"""Two-factor authentication through the browser forms: the set-up these tests share, and why, is
mfa_pages.py's docstring.

This part: set-up, the codes shown once, turning off, and refusals at the field."""

from __future__ import annotations

import re

import pyotp
import segno

from tests.app.mfa.conftest import Account, code_at, shown_secret, wrong_code
from tests.app.web.conftest import (
    assert_page,
    assert_redirect,
    field_error,
    form_login,
    input_tag,
    notice,
    submit,
    text,
)
from tests.app.web.mfa_pages import (
    CONFIRM,
    DISABLE,
    LOGIN_CODE,
    SECURITY,
    START,
    WRONG_CODE_MESSAGE,
    audit_events,
    confirm,
    disable,
    enrol,
    enter_code,
    form_actions,
    shown_recovery_codes,
    start,
    stored_user,
    unused_codes,
)

QR = re.compile(r'<figure class="qr">\s*(<svg\b.*?</svg>)\s*</figure>', re.S)


# Set-up, the codes shown once, turning off (MF-1, MF-3, AC-5)


def test_the_security_page_says_off_and_offers_set_up(ada_browser):
    body = assert_page(ada_browser.get(SECURITY))

    assert "Status: <strong>off</strong>" in body
    # The passkey form (hidden until passkeys.js shows it) is the only other one.
    passkey_form = "/settings/security/passkeys"
    assert form_actions(body) == {START, passkey_form, "/logout", "/settings/account/delete"}
    assert 'autocomplete="current-password"' in input_tag(body, "password")
    assert "<svg" not in body


def test_set_up_shows_an_inline_svg_qr_code_and_the_key_once(app, ada_browser, ada):
    """MF-1: the key is pending until confirmed and is shown in this answer only."""
    body = assert_page(start(ada_browser))

    secret = shown_secret(body)
    assert len(secret) == 32
    assert body.count(secret) == 1
    qr = QR.search(body)
    assert qr is not None, "no inline <svg> in the QR figure"
    assert "<img" not in body
    assert "data:image" not in body
    assert "<title>QR code for your authenticator app</title>" in qr[1]
    assert CONFIRM in form_actions(body)
    assert 'autocomplete="one-time-code"' in input_tag(body, "code")
    stored = stored_user(app, ada["id"])
    assert stored.mfa_enabled is False
    assert stored.mfa_secret is not None
    assert secret not in stored.mfa_secret  # sealed at rest


def test_the_qr_code_encodes_the_otpauth_uri_of_the_key_shown(ada_browser, ada):
    """The picture and the key agree: the QR is segno's encoding of pyotp's otpauth:// URI for
    this key, this account and the issuer `authapp` (at whichever error-correction level)."""
    body = text(start(ada_browser))
    secret = shown_secret(body)
    qr = QR.search(body)
    assert qr is not None
    drawn = re.search(r'class="qrline"[^>]*\sd="([^"]+)"', qr[1])
    assert drawn is not None, qr[1][:200]

    uri = pyotp.TOTP(secret).provisioning_uri(name=ada["email"], issuer_name="authapp")
    encodings = set()
    for level in "lmqh":
        svg = segno.make(uri, error=level).svg_inline()
        encodings.add(re.search(r'class="qrline"[^>]*\sd="([^"]+)"', svg)[1])

    assert drawn[1] in encodings


def test_confirm_turns_mfa_on_and_shows_ten_recovery_codes_once(app, ada_browser, ada):
    secret = shown_secret(text(start(ada_browser)))

    confirmed = confirm(ada_browser, code_at(secret))

    body = assert_page(confirmed)
    codes = shown_recovery_codes(body)
    assert len(codes) == len(set(codes)) == 10
    assert secret not in body
    assert "Status: <strong>on</strong>" in body
    assert DISABLE in form_actions(body)
    assert stored_user(app, ada["id"]).mfa_enabled is True
    later = assert_page(ada_browser.get(SECURITY))
    assert secret not in later
    assert not any(code in later for code in codes)
    assert "You have 10 unused recovery codes." in later
    assert 'data-testid="recovery-codes"' not in later


def test_the_key_is_not_shown_again_while_pending(app, ada_browser, ada):
    """Leaving the set-up (or a wrong code) never brings the key back: start again instead."""
    secret = shown_secret(text(start(ada_browser)))

    again = assert_page(ada_browser.get(SECURITY))
    refused = confirm(ada_browser, wrong_code(secret))

    assert secret not in again
    assert "Status: <strong>off</strong>" in again
    assert secret not in text(refused)
    assert stored_user(app, ada["id"]).mfa_enabled is False


def test_the_whole_lifecycle_through_the_forms(app, ada_browser, ada):
    """On with a code, log out, in with the password and a recovery code, then a TOTP code in
    the disable form; every step audited (AU-1)."""
    secret, codes = enrol(ada_browser)
    assert_redirect(submit(ada_browser, "/logout", page="/"), "/login")

    asked = form_login(ada_browser, ada["email"])
    assert_redirect(asked, LOGIN_CODE)
    assert_redirect(enter_code(ada_browser, codes[0]), "/")
    assert "You have 9 unused recovery codes." in text(ada_browser.get(SECURITY))

    turned_off = disable(ada_browser, code_at(secret, +1))

    assert_redirect(turned_off, SECURITY)
    body = assert_page(ada_browser.get(SECURITY))
    assert notice(body) == "Two-factor authentication is off."
    assert "Status: <strong>off</strong>" in body
    stored = stored_user(app, ada["id"])
    assert (stored.mfa_enabled, stored.mfa_secret, stored.mfa_last_step) == (False, None, None)
    assert unused_codes(app, ada["id"]) == 0
    assert_redirect(form_login(app.test_client(), ada["email"]), "/")  # the password alone
    events = [event for event, _ in audit_events(app, ada["id"])]
    expected = ["mfa.enrolment_started", "mfa.enabled", "mfa.recovery_code_used", "mfa.disabled"]
    in_order = iter(events)
    assert all(event in in_order for event in expected), events  # a subsequence, in order
    used = [data for event, data in audit_events(app, ada["id"]) if event.endswith("code_used")]
    assert used == [{"remaining": 9}]


# Refusals re-render with the message next to the field


def test_a_wrong_password_on_set_up_is_marked_and_keeps_mfa_off(app, ada_browser, ada):
    response = start(ada_browser, password="not the password at all")

    body = assert_page(response, 422)
    assert field_error(body, "password") == "The password is incorrect."
    assert 'aria-invalid="true"' in input_tag(body, "password")
    assert "<svg" not in body
    assert START in form_actions(body)
    stored = stored_user(app, ada["id"])
    assert (stored.mfa_enabled, stored.mfa_secret) == (False, None)
    assert ("mfa.enrolment_failed", {"reason": "bad_password"}) in audit_events(app, ada["id"])


def test_a_wrong_code_on_confirm_is_marked_and_a_right_one_still_works(app, ada_browser, ada):
    secret = shown_secret(text(start(ada_browser)))

    refused = confirm(ada_browser, wrong_code(secret))

    body = assert_page(refused, 422)
    assert field_error(body, "code") == WRONG_CODE_MESSAGE
    assert 'aria-invalid="true"' in input_tag(body, "code")
    assert "autofocus" in input_tag(body, "code")
    assert CONFIRM in form_actions(body)
    assert stored_user(app, ada["id"]).mfa_enabled is False
    assert ("mfa.confirm_failed", {"reason": "invalid_mfa_code"}) in audit_events(app, ada["id"])
    assert confirm(ada_browser, code_at(secret)).status_code == 200


def test_an_empty_code_on_confirm_is_a_field_message(ada_browser):
    shown_secret(text(start(ada_browser)))

    body = assert_page(confirm(ada_browser, ""), 422)

    assert field_error(body, "code")
    assert 'aria-invalid="true"' in input_tag(body, "code")


def test_turning_off_needs_the_password_and_a_code(app, with_mfa, ada):
    """MF-3: each refusal is marked at its field and MFA stays on with every code unspent."""
    ada_browser, secret, codes = with_mfa

    bad_password = disable(ada_browser, codes[0], password="not the password at all")
    bad_code = disable(ada_browser, wrong_code(secret))

    body = assert_page(bad_password, 422)
    assert field_error(body, "password") == "The password is incorrect."
    assert 'aria-invalid="true"' in input_tag(body, "password")
    assert codes[0] not in body  # a typed recovery code is not echoed back into the page
    body = assert_page(bad_code, 422)
    assert field_error(body, "code") == WRONG_CODE_MESSAGE
    assert 'aria-invalid="true"' in input_tag(body, "code")
    assert 'aria-invalid="true"' not in input_tag(body, "password")
    assert "Status: <strong>on</strong>" in body
    assert stored_user(app, ada["id"]).mfa_enabled is True
    assert unused_codes(app, ada["id"]) == 10
    assert_redirect(disable(ada_browser, codes[3]), SECURITY)  # a recovery code turns it off too
    assert stored_user(app, ada["id"]).mfa_enabled is False


def test_a_spent_recovery_code_does_not_turn_mfa_off(app, with_mfa, ada):
    ada_browser, _secret, codes = with_mfa
    api = Account(app.test_client(), ada, {"access_token": ""})
    assert api.log_in(codes[0]).status_code == 200

    body = assert_page(disable(ada_browser, codes[0]), 422)

    assert field_error(body, "code") == WRONG_CODE_MESSAGE
    assert stored_user(app, ada["id"]).mfa_enabled is True
