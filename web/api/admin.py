"""``/v1/admin``: operators' views. Staff only; everyone else gets 403."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from faktry.errors import Forbidden, ValidationError
from pipelines import pagination
from pipelines.models import ModerationEntry
from web.api import blueprint
from web.auth import authenticated, db, principal


def _staff_only() -> None:
    if not principal().is_staff:
        raise Forbidden("this is for faktry staff only", code="staff_only")


@blueprint.get("/admin/moderation")
@authenticated
def moderation_log() -> Any:
    """Flagged and blocked prompts, newest first; filter by category, action or tenant."""
    _staff_only()
    sess = db()
    sess.info.pop("tenant_id", None)  # operators see every tenant's entries
    stmt = select(ModerationEntry)
    for name in ("category", "action", "tenant_id"):
        value = request.args.get(name)
        if value:
            stmt = stmt.where(getattr(ModerationEntry, name) == value)
    action = request.args.get("action")
    if action and action not in ("blocked", "flagged"):
        raise ValidationError("action must be blocked or flagged", field="action")
    rows, next_cursor = pagination.page(
        sess,
        stmt,
        created=ModerationEntry.at,
        ident=ModerationEntry.id,
        cursor=request.args.get("cursor"),
        limit=pagination.parse_limit(request.args.get("limit")),
    )
    return {
        "object": "list",
        "data": [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "tenant_id": e.tenant_id,
                "action": e.action,
                "category": e.category,
                "score": e.score,
                "source": e.source,
                "endpoint": e.endpoint,
                "model": e.model,
                "prompt": e.prompt,
            }
            for e in rows
        ],
        "next_cursor": next_cursor,
    }
