"""Files in a tenant's library: uploads and job outputs.

A file's bytes live in storage under a key the server chose; the row holds what the
server learnt from the bytes (size, sha256, content type, probed media facts). A
multi-file output (an HLS ladder) is one root file (the master playlist) plus member
files that point at it with ``root_id`` and keep their ``relpath`` inside the output,
so the root's relative links resolve as they were written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock, tenancy  # noqa: F401  (the tables these rows point at)
from faktry.db import Base, TenantOwned, new_id


class File(Base, TenantOwned):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_tenant_listing", "tenant_id", "root_id", "created_at", "id"),
        Index("ix_files_root_relpath", "root_id", "relpath"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("fil"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: "upload" or "output"
    origin: Mapped[str] = mapped_column(String(20))
    storage_key: Mapped[str] = mapped_column(String(900), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # image, video, audio, playlist, other
    sha256: Mapped[str] = mapped_column(String(64))
    media: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The name the client gave (display only; never used to decide the type or the path).
    filename: Mapped[str] = mapped_column(String(255), default="")
    job_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    root_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), default=None)
    relpath: Mapped[str | None] = mapped_column(String(500), default=None)
    #: Total bytes of a multi-file output (root plus members); equals ``size`` otherwise.
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    file_count: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
