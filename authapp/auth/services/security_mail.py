"""The mail that tells an account's owner how its ways to log in changed (two-factor
authentication, passkeys), with the way back if it was not them."""

from __future__ import annotations

from typing import Any

from authapp.delivery import events, outbox
from authapp.models import User
from authapp.platform import clock
from authapp.platform.extensions import db


def tell_owner(user: User, template: str, **context: Any) -> None:
    """Mail `template` to the owner, with the time and the links back; commits the caller's
    change with the mail, then dispatches it."""
    context |= {
        "when": clock.now().strftime("%Y-%m-%d %H:%M"),
        "forgot_url": events.link("/forgot-password"),
        "security_url": events.link("/settings/security"),
    }
    message_id = events.email(user, template, context)
    db.session.commit()
    outbox.dispatch(events.ids(message_id))
