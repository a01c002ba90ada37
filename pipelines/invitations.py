"""Invitations: an owner or admin asks someone, by email, to join the account with a role.

The invitation holds a single-use token (only its SHA-256 is kept) sent by mail as a link;
it expires after ``invitation_days`` (7 by default) and can be revoked. Accepting it with a
password of one's own creates the person in the account with the invited role, their email
verified (the link proved the mailbox), and logs them in. Only an owner invites an owner.
A faktry account belongs to one person and one account: an address that already has an
account cannot accept (``409 email_taken``, told to the person accepting, not to the
inviter, so inviting does not reveal who has an account). Inviting an address twice
replaces the earlier pending invitation.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from faktry import clock, permissions
from faktry.db import Base, TenantOwned, new_id
from faktry.errors import Conflict, Forbidden, Gone, NotFound, ValidationError
from faktry.tenancy import Principal, User, normalize_email


class Invitation(Base, TenantOwned):
    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_tenant_listing", "tenant_id", "created_at", "id"),
        Index("uq_invitations_token_hash", "token_hash", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("inv"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64))
    invited_by: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def status(row: Invitation, now: datetime | None = None) -> str:
    if row.accepted_at is not None:
        return "accepted"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= (now or clock.now()) else "pending"


def to_dict(row: Invitation) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "invitation",
        "email": row.email,
        "role": row.role,
        "status": status(row),
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "accepted_at": row.accepted_at.isoformat() if row.accepted_at else None,
    }


def invite(session: Session, who: Principal, email: Any, role: Any, *, days: float) -> tuple[Invitation, str]:
    """A new pending invitation (replacing a pending one to the same address) and its token."""
    if not isinstance(email, str):
        raise ValidationError("a valid email address is required", field="email")
    address = normalize_email(email)
    if role not in permissions.ROLES:
        raise ValidationError(f"role must be one of: {', '.join(permissions.ROLES)}", field="role")
    if role == "owner" and who.role != "owner":
        raise Forbidden("only an owner invites an owner", code="owner_only")
    now = clock.now()
    session.execute(
        update(Invitation)
        .where(
            Invitation.tenant_id == who.tenant_id, Invitation.email == address,
            Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )  # fmt: skip
    token = secrets.token_urlsafe(32)
    row = Invitation(
        tenant_id=who.tenant_id, email=address, role=role, token_hash=_digest(token), invited_by=who.user_id,
        created_at=now, expires_at=now + timedelta(days=days),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row, token


def listing(session: Session, tenant_id: str, *, limit: int | None = 100) -> list[Invitation]:
    """The account's invitations, newest first (the last 100, or all with ``limit=None``)."""
    return list(
        session.scalars(
            select(Invitation)
            .where(Invitation.tenant_id == tenant_id)
            .order_by(Invitation.created_at.desc(), Invitation.id.desc())
            .limit(limit)
        )
    )


def delete_all(session: Session, tenant_id: str) -> None:
    session.execute(delete(Invitation).where(Invitation.tenant_id == tenant_id))


def revoke(session: Session, who: Principal, invitation_id: str) -> Invitation:
    row = session.get(Invitation, invitation_id) if invitation_id.startswith("inv_") else None
    if row is None or row.tenant_id != who.tenant_id:
        raise NotFound("no such invitation", code="invitation_not_found")
    if row.role == "owner" and who.role != "owner":
        raise Forbidden("only an owner revokes an invitation to be owner", code="owner_only")
    if status(row) == "pending":
        row.revoked_at = clock.now()
    return row


def by_token(session: Session, token: Any, *, lock: bool = True) -> Invitation:
    """The pending invitation the token names (locked, unless only looked at); refused in
    words otherwise."""
    if not isinstance(token, str) or not token:
        raise ValidationError("the invitation's token is missing", field="token")
    stmt = select(Invitation).where(Invitation.token_hash == _digest(token))
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise NotFound("this invitation link is not valid", code="invitation_not_found")
    state = status(row)
    if state == "expired":
        raise Gone("this invitation has expired: ask for a new one", code="invitation_expired")
    if state != "pending":
        raise Conflict(f"this invitation was {state} already", code=f"invitation_{state}")
    return row


def accept(session: Session, token: Any, password_hash: str) -> User:
    """Join the account: the person, with the invited role and a verified email."""
    row = by_token(session, token)
    if session.scalar(select(User.id).where(User.email == row.email)) is not None:
        raise Conflict(
            "this address has a faktry account already; a faktry account belongs to one account",
            code="email_taken",
        )
    now = clock.now()
    # Verified: the link came to this mailbox.
    user = User(
        tenant_id=row.tenant_id,
        email=row.email,
        role=row.role,
        password_hash=password_hash,
        email_verified_at=now,
    )
    session.add(user)
    row.accepted_at = now
    session.flush()
    return user
