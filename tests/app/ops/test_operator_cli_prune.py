"""`flask prune`: only rows past their retention go, in batches; `--dry-run` deletes nothing."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from authapp.auth.services import retention
from authapp.models import (
    AuditEvent,
    OneTimeToken,
    OutboxMessage,
    PasskeyChallenge,
    RefreshToken,
    Session,
)
from authapp.models.base import new_id
from authapp.platform.extensions import db
from tests.app.ops.operator_cli import add_message, ago, audit_events, ok

TABLES = (
    "refresh_tokens",
    "sessions",
    "one_time_tokens",
    "passkey_challenges",
    "outbox_messages",
    "audit_events",
)


def add_session(
    user_id: str, *, expires_at: datetime, revoked_at: datetime | None = None
) -> tuple[str, str]:
    """A session and its refresh token (expiring with it); returns both ids."""
    session = Session(
        id=new_id(),
        user_id=user_id,
        created_at=expires_at - timedelta(days=30),
        last_seen_at=expires_at - timedelta(days=30),
        expires_at=expires_at,
        revoked_at=revoked_at,
    )
    token = RefreshToken(
        jti=new_id(), session=session, issued_at=session.created_at, expires_at=expires_at
    )
    db.session.add_all([session, token])
    return session.id, token.jti


def add_token(user_id: str, *, expires_at: datetime, used_at: datetime | None = None) -> str:
    token = OneTimeToken(
        purpose="password_reset",
        user_id=user_id,
        token_hash=hashlib.sha256(new_id().encode()).hexdigest(),
        expires_at=expires_at,
        used_at=used_at,
    )
    db.session.add(token)
    db.session.flush()
    return token.id


def add_challenge(*, expires_at: datetime) -> str:
    """A passkey challenge nobody answered (a login page's options), expiring then."""
    challenge = PasskeyChallenge(
        challenge_hash=hashlib.sha256(new_id().encode()).hexdigest(),
        purpose="login",
        expires_at=expires_at,
    )
    db.session.add(challenge)
    return challenge.challenge_hash


def add_audit(created_at: datetime) -> str:
    event = AuditEvent(actor="system", event="test.event", created_at=created_at)
    db.session.add(event)
    db.session.flush()
    return event.id


@pytest.fixture
def rows(app, make_user):
    """Rows just past and just short of each retention (30d, 7d, 7d, 365d by default)."""
    user_id = make_user(email="ada@example.com")["id"]
    with app.app_context():
        past = {
            "revoked": add_session(user_id, expires_at=ago(days=-5), revoked_at=ago(days=31)),
            "expired": add_session(user_id, expires_at=ago(days=31)),
            "used": add_token(user_id, expires_at=ago(days=7), used_at=ago(days=8)),
            "unused": add_token(user_id, expires_at=ago(days=8)),
            "challenge": add_challenge(expires_at=ago(days=8)),
            "audit": add_audit(ago(days=366)),
        }
        kept = {
            "revoked": add_session(user_id, expires_at=ago(days=-5), revoked_at=ago(days=29)),
            "expired": add_session(user_id, expires_at=ago(days=29)),
            "live": add_session(user_id, expires_at=ago(days=-20)),
            "used": add_token(user_id, expires_at=ago(days=-1), used_at=ago(days=6)),
            "unused": add_token(user_id, expires_at=ago(days=-1)),
            "challenge": add_challenge(expires_at=ago(days=6)),
            "audit": add_audit(ago(days=364)),
        }
        db.session.commit()
    past["sent"] = add_message(app, status="sent", sent_at=ago(days=8), created_at=ago(days=8))
    kept["sent"] = add_message(app, status="sent", sent_at=ago(days=6))
    kept["pending"] = add_message(app, created_at=ago(days=400))
    kept["dead"] = add_message(app, status="dead", created_at=ago(days=400))
    return past, kept


def remaining(app) -> dict[str, set[str]]:
    keys = {
        "refresh_tokens": RefreshToken.jti,
        "sessions": Session.id,
        "one_time_tokens": OneTimeToken.id,
        "passkey_challenges": PasskeyChallenge.challenge_hash,
        "outbox_messages": OutboxMessage.id,
        "audit_events": AuditEvent.id,
    }
    with app.app_context():
        return {name: set(db.session.scalars(sa.select(key))) for name, key in keys.items()}


def test_dry_run_counts_and_deletes_nothing(app, rows):
    before = remaining(app)

    lines = ok(app, "prune", "--dry-run").splitlines()

    assert lines[0].split() == ["table", "would", "delete"]
    counts = {line.split()[0]: int(line.split()[-1]) for line in lines[1:-1]}
    assert counts == {
        "refresh_tokens": 2,
        "sessions": 2,
        "one_time_tokens": 2,
        "passkey_challenges": 1,
        "outbox_messages": 1,
        "audit_events": 1,
    }
    assert lines[-1] == "would delete: 9 rows in all"
    assert remaining(app) == before
    assert audit_events(app, "retention.pruned") == []


def test_prune_deletes_only_what_is_past_retention(app, rows):
    past, kept = rows
    before = remaining(app)

    lines = ok(app, "prune").splitlines()

    after = remaining(app)
    assert lines[-1] == "deleted: 9 rows in all"
    gone = {name: before[name] - after[name] for name in TABLES}
    assert gone["sessions"] == {past["revoked"][0], past["expired"][0]}
    assert gone["refresh_tokens"] == {past["revoked"][1], past["expired"][1]}
    assert gone["one_time_tokens"] == {past["used"], past["unused"]}
    assert gone["passkey_challenges"] == {past["challenge"]}
    assert kept["challenge"] in after["passkey_challenges"]
    assert gone["outbox_messages"] == {past["sent"]}
    assert gone["audit_events"] == {past["audit"]}
    for name in ("revoked", "expired", "live"):
        assert kept[name][0] in after["sessions"]
    assert {kept["sent"], kept["pending"], kept["dead"]} <= after["outbox_messages"]
    assert kept["audit"] in after["audit_events"]
    assert audit_events(app, "retention.pruned")[0]["sessions"] == 2


def test_prune_works_in_batches(app, rows, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 1)
    with app.app_context():
        for _ in range(3):
            add_audit(ago(days=400))
        db.session.commit()

    output = ok(app, "prune")

    assert "audit_events 4" in {" ".join(line.split()) for line in output.splitlines()}
    assert output.splitlines()[-1] == "deleted: 12 rows in all"
    assert ok(app, "prune", "--dry-run").splitlines()[-1] == "would delete: 0 rows in all"


@pytest.mark.config(
    AUDIT_RETENTION=0, PRUNE_SESSIONS_AFTER=0, PRUNE_TOKENS_AFTER=0, PRUNE_OUTBOX_SENT_AFTER=0
)
def test_audit_retention_zero_keeps_the_trail_and_zero_prunes_right_after_expiry(app, rows):
    past, kept = rows

    lines = ok(app, "prune", "--dry-run").splitlines()

    counts = {line.split()[0]: int(line.split()[-1]) for line in lines[1:-1]}
    assert "audit_events" not in counts
    assert counts == {
        "refresh_tokens": 4,
        "sessions": 4,
        "one_time_tokens": 3,
        "passkey_challenges": 2,  # both have expired: a challenge has no use after that
        "outbox_messages": 2,
    }
