"""The ``brands`` table: one row per brand guideline of a tenant.

The structured parts (palette, typography, voice, personas, mood images) are JSON columns:
they are read and written whole with their brand, never queried on their own, and their
shape is the brand schema's (`pipelines.brands.schema`), checked before anything is kept.
Logo and mood images are ids of the tenant's library files; they are not foreign keys, so
deleting a file from the library never deletes a brand (the brand then names a file that is
gone, and its export says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id


class Brand(Base, TenantOwned):
    __tablename__ = "brands"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_brands_tenant_name"),
        Index("ix_brands_tenant_listing", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("brd"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    tagline: Mapped[str] = mapped_column(String(200), default="")
    logo_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: {"primary", "secondary", "accent"}: "#rrggbb" (lower case) or null.
    colors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: {"heading_font", "body_font", "pairings": [{"heading", "body", "use"}]}
    typography: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: {"mission", "vision", "values": [...], "personality"}
    voice: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audience: Mapped[str] = mapped_column(Text, default="")
    #: [{"name", "role", "description", "goals": [...], "pain_points": [...]}]
    personas: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    mood_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    design_notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
