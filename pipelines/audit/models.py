"""The ``audit_log`` table: one row per security event of an account.

``actor_email`` is copied when the event happens, so the log still says who acted after
that person has left; ``via`` says how they acted (``session``, ``api_key``, ``staff`` for
faktry's operators acting on the account, ``anonymous`` for a failed log-in).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id


class AuditEntry(Base, TenantOwned):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_listing", "tenant_id", "at", "id"),
        Index("ix_audit_log_tenant_action", "tenant_id", "action", "at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("aud"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    action: Mapped[str] = mapped_column(String(60))
    via: Mapped[str] = mapped_column(String(20))
    actor_user_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor_email: Mapped[str | None] = mapped_column(String(320), default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: What the event was about: a key, a person, an archive (its id).
    target: Mapped[str | None] = mapped_column(String(100), default=None)
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
