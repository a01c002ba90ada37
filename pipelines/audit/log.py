"""Recording and reading an account's security events.

`record` adds an entry in the caller's transaction, so the event and its entry commit
together (a refused or failed change leaves none). `ACTIONS` is every kind of entry; the
API filters by them. Entries are in the account's export and go with the account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from faktry.errors import ValidationError
from faktry.tenancy import Principal, User
from pipelines import pagination
from pipelines.audit.models import AuditEntry

ACTIONS = (
    "login",
    "login_failed",
    "password_changed",
    "sessions_ended",
    "key_created",
    "key_revoked",
    "member_role_changed",
    "member_removed",
    "member_left",
    "member_invited",
    "invitation_revoked",
    "member_joined",
    "export_requested",
    "account_deletion_requested",
    "restriction_changed",
    "staff_credits_granted",
    "staff_job_replayed",
    "staff_gallery_entry_removed",
)


def record(
    session: Session,
    tenant_id: str,
    action: str,
    *,
    who: Principal | None = None,
    user: User | None = None,
    target: str | None = None,
    address: str | None = None,
    data: dict[str, Any] | None = None,
    staff: bool = False,
) -> AuditEntry:
    """Add an entry (flushed with the caller's transaction). ``who`` is the request's
    principal; ``user`` names the person when there is no principal yet (a log-in)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    user_id = who.user_id if who is not None else (user.id if user is not None else None)
    email = user.email if user is not None else None
    if email is None and user_id is not None:
        email = session.scalar(select(User.email).where(User.id == user_id))
    via = (
        "staff"
        if staff
        else (who.via if who is not None else ("session" if user is not None else "anonymous"))
    )
    entry = AuditEntry(
        tenant_id=tenant_id, action=action, via=via, actor_user_id=user_id, actor_email=email,
        api_key_id=who.api_key_id if who is not None else None, target=target,
        address=(address or "")[:64] or None, data=data or {},
    )  # fmt: skip
    session.add(entry)
    session.flush()
    return entry


def to_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "audit_entry",
        "at": entry.at.isoformat(),
        "action": entry.action,
        "via": entry.via,
        # faktry's operators act as "faktry staff"; who they were stays in the row for faktry.
        "actor": (
            {"user_id": None, "email": None, "api_key_id": None, "staff": True}
            if entry.via == "staff"
            else {
                "user_id": entry.actor_user_id,
                "email": entry.actor_email,
                "api_key_id": entry.api_key_id,
                "staff": False,
            }
        ),
        "target": entry.target,
        "address": entry.address,
        "data": entry.data,
    }


def listing(
    session: Session,
    tenant_id: str,
    *,
    action: str | None,
    actor: str | None,
    since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[AuditEntry], str | None]:
    """A page of the account's entries, newest first, filtered by action, actor (a user id
    or an email) and time."""
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if action is not None:
        if action not in ACTIONS:
            raise ValidationError(f"action must be one of: {', '.join(ACTIONS)}", field="action")
        stmt = stmt.where(AuditEntry.action == action)
    if actor is not None:
        column = AuditEntry.actor_user_id if actor.startswith("usr_") else AuditEntry.actor_email
        stmt = stmt.where(column == (actor if actor.startswith("usr_") else actor.strip().lower()))
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return pagination.page(
        session, stmt, created=AuditEntry.at, ident=AuditEntry.id, cursor=cursor, limit=limit
    )


def of_tenant(session: Session, tenant_id: str) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.at, AuditEntry.id)
        )
    )


def delete_all(session: Session, tenant_id: str) -> None:
    session.execute(delete(AuditEntry).where(AuditEntry.tenant_id == tenant_id))
