"""Keyset pagination over (created_at, id): opaque cursors, stable while rows are inserted."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from authapp.models.base import is_id
from authapp.platform.errors import ValidationFailed
from authapp.platform.extensions import db


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed({"cursor": ["Not a cursor this service gave out."]})


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def _encode(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    """The position a cursor of `_encode` names; anything else is the 422 (IN-2): its JSON
    may hold any value, so each part is checked for what it must be before it is used."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise _bad_cursor() from None
    match decoded:
        case [str(created), str(row_id)] if is_id(row_id):
            return _moment(created), row_id
    raise _bad_cursor()


def _moment(created: str) -> datetime:
    try:
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise _bad_cursor()
        # In UTC now, as the column is bound: an offset that moves the moment out of datetime's
        # range (year 1 at +14:00) is the client's error here, not an OverflowError at binding.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad_cursor() from None


def page(
    statement: sa.Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page:
    """`limit` rows after `cursor` in (created_at, id) order; rows inserted meanwhile never
    shift a page, since the cursor names a position in the order, not an offset."""
    if cursor is not None:
        moment, last_id = _decode(cursor)
        if newest_first:
            after = sa.or_(created_at < moment, sa.and_(created_at == moment, row_id < last_id))
        else:
            after = sa.or_(created_at > moment, sa.and_(created_at == moment, row_id > last_id))
        statement = statement.where(after)
    order = (created_at.desc(), row_id.desc()) if newest_first else (created_at, row_id)
    rows = list(db.session.scalars(statement.order_by(*order).limit(limit + 1)).unique())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return Page(
        items=rows,
        next_cursor=_encode(last.created_at, last.id) if more and last is not None else None,
    )
