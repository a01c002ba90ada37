"""``/v1/audit-log``: the account's security events, newest first, for its owners and
admins (scope ``audit:read``; pipelines/audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request

from faktry.errors import ValidationError
from pipelines import pagination
from pipelines.audit import log as audit
from web.api import blueprint
from web.auth import authenticated, db, principal


@blueprint.get("/audit-log")
@authenticated
def audit_log() -> Any:
    """Filter with ``action``, ``actor`` (a user id or an email) and ``since`` (ISO 8601)."""
    since = request.args.get("since")
    when = None
    if since:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("since must be a date and time (ISO 8601)", field="since") from None
    rows, next_cursor = audit.listing(
        db(),
        principal().tenant_id,
        action=request.args.get("action") or None,
        actor=request.args.get("actor") or None,
        since=when,
        cursor=request.args.get("cursor"),
        limit=pagination.parse_limit(request.args.get("limit")),
    )
    return {"object": "list", "data": [audit.to_dict(e) for e in rows], "next_cursor": next_cursor}
