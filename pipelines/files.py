"""The tenant's media library: taking in uploads, listing and deleting files.

An upload arrives as a staged local file (the web layer streamed it to disk under the
size limit). Its type is decided from its bytes, then confirmed by probing; only then
does it go to storage under a key the server chose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, object_session, sessionmaker

from faktry.db import new_id, transaction
from faktry.errors import Conflict, NotFound
from pipelines import pagination
from pipelines.media import detect
from pipelines.media.ffmpeg import MediaInfo
from quotas.ledger import lock_account
from quotas.limits import (
    TierLimits,
    cancel_reservation,
    check_duration,
    commit_reservation,
    free_storage,
    output_expires_at,
    reserve_storage,
    use_storage,
)
from storage.interface import Storage, Stored
from storage.models import File


def upload_key(tenant_id: str, file_id: str, ext: str) -> str:
    return f"t/{tenant_id}/files/{file_id}/original.{ext}"


@contextmanager
def ingest_upload(
    session: Session,
    sessions: sessionmaker[Session],
    storage: Storage,
    *,
    tenant_id: str,
    limits: TierLimits,
    staged: Path,
    filename: str,
    probe_timeout: float,
    max_image_pixels: int,
) -> Iterator[File]:
    """Probe, reserve quota, store and record an upload. Use it as a context around the
    commit: if anything fails, the stored object and the reservation are removed again,
    so nothing is left behind and no quota is taken.

    ``session`` must have no transaction open: the reservation commits on its own first, so
    that concurrent uploads see it."""
    sniffed, info = inspect_upload(
        staged, limits, probe_timeout=probe_timeout, max_image_pixels=max_image_pixels
    )
    size = staged.stat().st_size
    with transaction(sessions) as reserving:
        reservation = reserve_storage(reserving, tenant_id, size, limits.storage_quota_bytes).id
    file_id = new_id("fil")
    key = upload_key(tenant_id, file_id, sniffed.ext)
    try:
        # Hashed while it is copied into storage: the upload is read once.
        kept = storage.store_file(key, staged, content_type=sniffed.content_type)
        if kept.size != size:  # the staged file is ours alone; this is a bug, not bad input
            storage.delete(key)
            raise RuntimeError("the staged upload changed while it was stored")
    except BaseException:
        with transaction(sessions) as undo:
            cancel_reservation(undo, reservation)
        raise
    try:
        row = record_upload(
            session, tenant_id=tenant_id, file_id=file_id, key=key, stored=kept, sniffed=sniffed,
            info=info, filename=filename, reservation=reservation, limits=limits,
        )  # fmt: skip
        session.flush()
        yield row
    except BaseException:
        session.rollback()
        storage.delete(key)
        with transaction(sessions) as undo:
            cancel_reservation(undo, reservation)
        raise


def inspect_upload(
    staged: Path, limits: TierLimits, *, probe_timeout: float, max_image_pixels: int
) -> tuple[detect.Sniffed, MediaInfo]:
    """What an upload's bytes are (`pipelines.media.detect.inspect`), within the tier's
    duration: the checks every upload passes, however its bytes arrived. Raises the
    `FaktryError` an upload of bad content is refused with."""
    sniffed, info = detect.inspect(staged, timeout=probe_timeout, max_image_pixels=max_image_pixels)
    check_duration(limits, info.duration)
    return sniffed, info


def record_upload(
    session: Session,
    *,
    tenant_id: str,
    file_id: str,
    key: str,
    stored: Stored,
    sniffed: detect.Sniffed,
    info: MediaInfo,
    filename: str,
    reservation: str,
    limits: TierLimits,
) -> File:
    """The library's row of an upload stored under ``key``, its reservation turned into used
    storage, in the caller's transaction (which commits both or neither). A reservation the
    scheduler swept meanwhile is taken again from the quota (`StorageQuotaExceeded` if it
    no longer fits)."""
    row = File(
        id=file_id,
        tenant_id=tenant_id,
        origin="upload",
        storage_key=key,
        size=stored.size,
        total_size=stored.size,
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        sha256=stored.sha256,
        media=info.to_dict(),
        filename=display_name(filename),
    )
    session.add(row)
    if not commit_reservation(session, reservation):
        use_storage(session, tenant_id, stored.size, limits.storage_quota_bytes)
    return row


def display_name(name: str) -> str:
    """A client's file name as the library shows it: its last path segment, printable, cut to 255."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:255]


def get_file(session: Session, file_id: str) -> File:
    row = session.get(File, file_id) if file_id.startswith("fil_") else None
    # session.get bypasses loader criteria for rows already in the identity map, so check.
    tenant = session.info.get("tenant_id")
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise NotFound("no such file", code="file_not_found")
    return row


def member(session: Session, root: File, relpath: str) -> File:
    if relpath in ("", root.relpath):
        return root
    row = session.scalars(select(File).where(File.root_id == root.id, File.relpath == relpath)).first()
    if row is None:
        raise NotFound("no such file", code="file_not_found")
    return row


def list_files(
    session: Session,
    *,
    cursor: str | None,
    limit: int,
    kind: str | None = None,
    origin: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
) -> tuple[list[File], str | None]:
    """Files (roots of multi-file outputs, not their members), newest first, filtered by
    kind, origin and size (a multi-file output's size is all of its files)."""
    stmt = select(File).where(File.root_id.is_(None))
    if kind:
        stmt = stmt.where(File.kind == kind)
    if origin:
        stmt = stmt.where(File.origin == origin)
    if min_size is not None:
        stmt = stmt.where(File.total_size >= min_size)
    if max_size is not None:
        stmt = stmt.where(File.total_size < max_size)
    return pagination.page(session, stmt, created=File.created_at, ident=File.id, cursor=cursor, limit=limit)


def delete_file(session: Session, file_id: str) -> list[str]:
    """Delete a file (and the members of a multi-file output); returns the storage keys
    to remove once the transaction has committed."""
    row = get_file(session, file_id)
    if row.root_id is not None:
        raise Conflict(
            "this file is part of a multi-file output; delete its root file", code="part_of_output"
        )
    # Two deletes of one file may race: the account lock orders them, and only the one whose
    # DELETE removes the row frees its bytes.
    lock_account(session, row.tenant_id)
    keys = [row.storage_key]
    keys += list(session.scalars(select(File.storage_key).where(File.root_id == row.id)))
    freed = row.size + sum(session.scalars(select(File.size).where(File.root_id == row.id)))
    session.execute(delete(File).where(File.root_id == row.id).execution_options(synchronize_session=False))
    gone = session.execute(delete(File).where(File.id == row.id).execution_options(synchronize_session=False))
    if getattr(gone, "rowcount", 0) != 1:
        raise NotFound("no such file", code="file_not_found")
    session.expunge(row)
    free_storage(session, row.tenant_id, freed)
    session.flush()
    return keys


def storage_used(session: Session, tenant_id: str) -> int:
    return int(
        session.scalar(select(func.coalesce(func.sum(File.size), 0)).where(File.tenant_id == tenant_id)) or 0
    )


def to_dict(row: File) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id,
        "object": "file",
        "origin": row.origin,
        "kind": row.kind,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "filename": row.filename,
        "media": row.media or {},
        "job_id": row.job_id,
        "created_at": row.created_at.isoformat(),
        "url": f"/v1/files/{row.id}/content",
    }
    if expires := output_expires_at(object_session(row), row.tenant_id, row.origin, row.created_at):
        data["expires_at"] = expires.isoformat()  # removed then by its tier's retention
    if row.relpath:
        # Served under the root's folder, so the playlist's relative links resolve.
        data["url"] = f"/v1/files/{row.root_id or row.id}/content/{row.relpath}"
    if row.file_count > 1 or row.root_id is not None:
        data["root_id"] = row.root_id
        data["relpath"] = row.relpath
        data["file_count"] = row.file_count
        data["total_size"] = row.total_size
    return data


#: Media types a browser shows or plays without running anything in them: served inline, so
#: the library and the job pages can preview them. Every other type (HTML, SVG, XML, XHTML,
#: JavaScript, PDF, anything unknown) is served as an attachment: a stored file never becomes
#: a page of faktry's origin.
INLINE_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
        "video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "video/x-msvideo",
        "video/mp2t", "video/ogg",
        "audio/mpeg", "audio/mp4", "audio/aac", "audio/wav", "audio/ogg", "audio/flac",
        "audio/webm", "audio/x-matroska",
        "application/vnd.apple.mpegurl",
    }
)  # fmt: skip


def served_inline(content_type: str | None) -> bool:
    """Whether a download of this type may be shown in the browser; otherwise it is sent with
    ``Content-Disposition: attachment`` (see `INLINE_TYPES`). Parameters are ignored, case too."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type in INLINE_TYPES
