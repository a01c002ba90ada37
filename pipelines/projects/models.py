"""The ``projects`` table: one row per video project of a tenant.

The structured parts (style, voice, music, scenes) are JSON columns: they are read and
written whole with their project, never queried on their own, and their shape is the
project schema's (`pipelines.projects.schema`), checked before anything is kept. Scene and
music files are ids of the tenant's library files, not foreign keys: deleting a file never
deletes a project (its next render says the file is gone). Deleting the brand a project
uses leaves the project without a brand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id


class Project(Base, TenantOwned):
    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_tenant_listing", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("prj"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    idea: Mapped[str] = mapped_column(Text, default="")
    #: {"notes", "caption": {"font", "color", "outline", "size", "burn"}}
    style: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``16:9``, ``9:16`` or ``1:1``.
    format: Mapped[str] = mapped_column(String(8))
    target_seconds: Mapped[int] = mapped_column(Integer)
    brand_id: Mapped[str | None] = mapped_column(
        ForeignKey("brands.id", ondelete="SET NULL"), default=None, index=True
    )
    #: {"model", "voice"}: the narrator.
    voice: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: {"file_id", "volume"} or {"prompt", "model", "volume"}, or null.
    music: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: [{"id", "script", "media", "duration", "transition"}], in order.
    scenes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: The workflow run of the latest render (not a foreign key: runs go with the account).
    last_run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
