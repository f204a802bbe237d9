"""What a provider says is reduced to plain, bounded values before it touches an account
(docs/security.md "Identity providers"): a hostile or broken subject names nobody, a hostile
address counts as none, a hostile name is cleaned; never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from authapp.auth.services import federated_logins
from authapp.models import Identity, User
from authapp.platform.errors import AppError, ValidationFailed
from authapp.platform.extensions import db
from authapp.platform.network import Client

CLIENT = Client(ip="127.0.0.1", user_agent="tests")


def _sign_in(app: Flask, profile: dict[str, Any]) -> Any:
    with app.test_request_context():
        try:
            return federated_logins.sign_in("idp", "Test IdP", profile, client=CLIENT)
        finally:
            db.session.remove()


@pytest.mark.parametrize(
    "subject",
    ["", "x" * 256, "caf\u00e9", "a\x00b", "line\nbreak", "\ud800", 42, None, ["a"], {"a": 1}],
)
def test_a_subject_that_names_nobody_is_refused(app: Flask, subject: Any):
    with pytest.raises(ValidationFailed):
        _sign_in(app, {"subject": subject, "email": "x@example.com", "email_verified": True})


@pytest.mark.parametrize(
    "email",
    ["not an address", "a@b\r\nBcc: x@evil.example", "\ud800@example.com", "x" * 300 + "@e.x", 7],
)
def test_a_hostile_address_counts_as_none(app: Flask, email: Any):
    """No address, no account: the sign-up says the provider shared none."""
    with pytest.raises(AppError) as refused:
        _sign_in(app, {"subject": uuid.uuid4().hex, "email": email, "email_verified": True})

    assert refused.value.status == 422
    assert "did not share an email address" in refused.value.message


def test_a_hostile_name_is_cleaned_and_bounded(app: Flask):
    subject = uuid.uuid4().hex
    email = f"{subject}@example.com"
    profile = {
        "subject": subject,
        "email": email,
        "email_verified": "true",  # not the boolean the lane hands over (identity_providers)
        "name": "Ada\x00\x1b[31m\ud800 Lovelace" + "!" * 500,
    }

    _sign_in(app, profile)

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email_normalized == email))
        assert user is not None
        assert user.full_name.startswith("Ada[31m Lovelace")
        assert len(user.full_name) <= 200
        verified = db.session.scalar(
            sa.select(Identity.email_verified).where(Identity.subject == subject)
        )
        assert verified is False  # the service trusts the boolean True only
