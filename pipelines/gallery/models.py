"""The ``gallery_entries`` table: one row per job a tenant published to the prompt gallery.

An entry is a snapshot taken at publish: the prompt, model, job type and parameters are
copied from the job, and the output's bytes are copied to a storage key of the entry's own
(``gallery/<entry id>/...``), so the entry outlives the job and the library file (deleted by
the person, removed by a tier's output retention, or deleted with the account when the
person chose to keep their entries public). ``job_id`` and ``file_id`` are therefore plain
columns, not foreign keys, and neither is ever shown to the public.

``status`` is ``published`` (shown) or ``removed`` (hidden by staff, with ``removed_reason``;
the reason is in the moderation log too). Unpublishing deletes the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id

PUBLISHED = "published"
REMOVED = "removed"
STATUSES = (PUBLISHED, REMOVED)


class GalleryEntry(Base, TenantOwned):
    __tablename__ = "gallery_entries"
    __table_args__ = (
        CheckConstraint("status IN ('published', 'removed')", name="status_known"),
        # The public listing and its filters are index ranges, newest first, however many
        # entries there are (keyset pages on (created_at, id)).
        Index("ix_gallery_entries_public", "status", "created_at", "id"),
        Index("ix_gallery_entries_public_category", "status", "category", "created_at", "id"),
        Index("ix_gallery_entries_public_model", "status", "model", "created_at", "id"),
        Index("ix_gallery_entries_public_kind", "status", "kind", "created_at", "id"),
        Index("ix_gallery_entries_tenant_listing", "tenant_id", "created_at", "id"),
        # A job is in the gallery at most once.
        Index("uq_gallery_entries_tenant_job", "tenant_id", "job_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("gal"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: Who published it (null once that person's account is deleted and the entry kept).
    user_id: Mapped[str | None] = mapped_column(String(40), default=None)
    job_id: Mapped[str] = mapped_column(String(40))
    #: The library file the output was copied from (it may since have been deleted).
    file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: Where the entry's own copy of the output is; never shown.
    storage_key: Mapped[str] = mapped_column(String(900))
    kind: Mapped[str] = mapped_column(String(20))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    job_type: Mapped[str] = mapped_column(String(60))
    model: Mapped[str] = mapped_column(String(60))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(30))
    display_name: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default=PUBLISHED)
    removed_reason: Mapped[str | None] = mapped_column(Text, default=None)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
