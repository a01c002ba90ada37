"""The ``uploads`` table: one row per upload that arrives in pieces (pipelines/uploads)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock, tenancy  # noqa: F401  (the tables these rows point at)
from faktry.db import Base, TenantOwned, new_id

TUS = "tus"
S3_MULTIPART = "s3_multipart"
PROTOCOLS = (TUS, S3_MULTIPART)

PENDING = "pending"
COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
STATUSES = (PENDING, COMPLETED, FAILED, EXPIRED, CANCELLED)


class Upload(Base, TenantOwned):
    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint("protocol IN ('tus', 's3_multipart')", name="protocol_known"),
        CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'expired', 'cancelled')", name="status_known"
        ),
        CheckConstraint("received >= 0 AND received <= size", name="received_within_size"),
        Index("ix_uploads_tenant_listing", "tenant_id", "created_at", "id"),
        # The scheduler's pass: pending uploads past their expiry.
        Index("ix_uploads_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("upl"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(20))
    #: The name the client gave (display only) and the type it declared (never trusted).
    filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str | None] = mapped_column(String(100), default=None)
    #: The size the client declared (tus ``Upload-Length``), reserved from the quota.
    size: Mapped[int] = mapped_column(BigInteger)
    #: Bytes received and durable so far (tus ``Upload-Offset``); moved only by the request
    #: holding the lock, after the bytes are in storage.
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Where the bytes gather (``t/<tenant>/uploads/<id>/data``), and the S3 multipart upload
    #: that holds them (null on local storage).
    staging_key: Mapped[str] = mapped_column(String(900))
    s3_upload_id: Mapped[str | None] = mapped_column(String(1024), default=None)
    #: A direct upload's part size (the client's parts; null for tus).
    part_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reservation_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    #: The library key the bytes move to, written before they move: after a crash in between
    #: the scheduler's expiry removes them there too.
    final_key: Mapped[str | None] = mapped_column(String(900), default=None)
    file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    #: The request writing to (or completing) the upload, and until when it may.
    lock_token: Mapped[str | None] = mapped_column(String(40), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
