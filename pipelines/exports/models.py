"""The ``export_archives`` table: one row per export archive a tenant asked for.

``status`` goes ``queued`` → ``building`` → ``ready`` (downloadable until ``expires_at``) →
``expired`` (the scheduler removed the stored zip), or ``failed`` (``error_code``) when every
start of its build failed. ``attempts`` counts the starts and fences each one: only the build
that started last may finish the archive, so a build the scheduler took for dead and started
again cannot overwrite the new one's result. ``heartbeat_at`` is the build's sign of life.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id

QUEUED = "queued"
BUILDING = "building"
READY = "ready"
EXPIRED = "expired"
FAILED = "failed"
STATUSES = (QUEUED, BUILDING, READY, EXPIRED, FAILED)
#: Statuses in which a build is still to come or under way.
PENDING = (QUEUED, BUILDING)


class ExportArchive(Base, TenantOwned):
    __tablename__ = "export_archives"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'building', 'ready', 'expired', 'failed')", name="status_known"
        ),
        Index("ix_export_archives_tenant_listing", "tenant_id", "created_at", "id"),
        # The scheduler's passes: builds to start again, archives to expire.
        Index("ix_export_archives_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_export_archives_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("exp"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: Who asked for it (null when an API key did, or once that person is deleted).
    user_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    #: Where the zip is stored (set when ready); never shown.
    storage_key: Mapped[str | None] = mapped_column(String(900), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Media files (stored objects) in the archive.
    file_count: Mapped[int | None] = mapped_column(default=None)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
