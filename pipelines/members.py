"""The people of an account and their roles (`faktry.permissions.ROLES`).

Anyone with ``members:read`` lists them; ``members:write`` changes a role or removes a
person. Only an owner makes someone an owner or changes an owner's role, and an account
always keeps at least one owner: the last owner can be neither demoted nor removed, and
cannot leave. Anyone may leave an account (remove themselves), except its last owner.
Removing a person ends their sessions, revokes their API keys and deletes their user (their
personal data); what they made for the account (files, jobs) stays the account's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from faktry import clock, permissions
from faktry.errors import Conflict, Forbidden, NotFound, ValidationError
from faktry.tenancy import ApiKey, Principal, User, UserSession


def to_dict(user: User, *, you: str | None = None) -> dict[str, Any]:
    return {
        "id": user.id,
        "object": "member",
        "email": user.email,
        "role": user.role,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "you": user.id == you,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


def list_members(session: Any, tenant_id: str) -> list[User]:
    return list(
        session.scalars(select(User).where(User.tenant_id == tenant_id).order_by(User.created_at, User.id))
    )


def get(session: Any, tenant_id: str, user_id: str) -> User:
    user = session.get(User, user_id) if user_id.startswith("usr_") else None
    if user is None or user.tenant_id != tenant_id:
        raise NotFound("no such member of this account", code="member_not_found")
    return user


def _owners(session: Any, tenant_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(User).where(User.tenant_id == tenant_id, User.role == "owner")
        )
    )


def set_role(session: Any, who: Principal, user_id: str, role: Any) -> User:
    user = _locked(session, who.tenant_id, user_id)
    if role not in permissions.ROLES:
        raise ValidationError(f"role must be one of: {', '.join(permissions.ROLES)}", field="role")
    if "owner" in (role, user.role) and who.role != "owner":
        raise Forbidden("only an owner makes someone an owner or changes an owner's role", code="owner_only")
    if user.role == "owner" and role != "owner" and _owners(session, who.tenant_id) == 1:
        raise Conflict(
            "the account's last owner cannot be demoted: make someone else owner first", code="last_owner"
        )
    user.role = role
    session.flush()
    return user


def remove(session: Any, who: Principal, user_id: str) -> User:
    """Remove a person (or, with their own id, leave)."""
    if user_id != who.user_id:
        permissions.check(who.scopes, "members:write", what=f"your role ({who.role})")
    user = _locked(session, who.tenant_id, user_id)
    if user.role == "owner":
        if who.role != "owner" and user_id != who.user_id:
            raise Forbidden("only an owner removes an owner", code="owner_only")
        if _owners(session, who.tenant_id) == 1:
            raise Conflict(
                "the account's last owner cannot leave: make someone else owner, or delete the account",
                code="last_owner",
            )
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    session.delete(user)
    session.flush()
    return user


def key_ids(session: Any, tenant_id: str, user_id: str) -> list[str]:
    """The person's API keys (forgotten by every process's cache once they are revoked)."""
    return list(
        session.scalars(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id, ApiKey.user_id == user_id))
    )


def _locked(session: Any, tenant_id: str, user_id: str) -> User:
    """The member, with the account's owners locked so two changes cannot both remove the
    last owner (PostgreSQL; SQLite's write lock serializes them anyway)."""
    session.scalars(
        select(User.id).where(User.tenant_id == tenant_id, User.role == "owner").with_for_update()
    ).all()
    return get(session, tenant_id, user_id)
