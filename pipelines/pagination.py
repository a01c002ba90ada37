"""Cursor pagination, newest first, stable under inserts: the cursor is (created_at, id)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from faktry.errors import ValidationError

T = TypeVar("T")
MAX_LIMIT = 100


def encode(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        at = datetime.fromisoformat(stamp)
        # Cursors are made by faktry: an aware time and an id of printable characters. A
        # forged one is refused here, before it reaches a query.
        if at.tzinfo is None or not isinstance(row_id, str) or not row_id.isprintable():
            raise ValueError(cursor)
        at.astimezone(UTC)
        return at, row_id
    except (ValueError, TypeError, OverflowError):
        raise ValidationError("malformed cursor", field="cursor") from None


_WHOLE = re.compile(r"-?[0-9]+")


def parse_limit(raw: str | None, default: int = 20) -> int:
    """The ``limit`` query parameter: ``default`` when absent, else a whole number written in
    ASCII digits between 1 and `MAX_LIMIT`; anything else is a 422 naming the field. (Python's
    ``int`` would also take ``" 5"``, ``"1_0"`` or other scripts' digits: not a limit the API
    documents.)"""
    if raw is None:
        return default
    if not _WHOLE.fullmatch(raw):
        raise ValidationError("limit must be a whole number", field="limit")
    digits = raw.lstrip("-").lstrip("0")  # never int() of a thousand digits
    if len(digits) > len(str(MAX_LIMIT)) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return int(raw)


def page(
    session: Session,
    stmt: Select[Any],
    *,
    created: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[str],
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """One page of ``stmt`` and the cursor of the next page (None on the last)."""
    if cursor:
        at, row_id = decode(cursor)
        # A row-value comparison is an index range on both databases; the equivalent
        # OR of two comparisons is not, and made deep pages cost more.
        stmt = stmt.where(tuple_(created, ident) < tuple_(at, row_id))
    rows = list(session.scalars(stmt.order_by(created.desc(), ident.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode(getattr(last, created.key), getattr(last, ident.key))
