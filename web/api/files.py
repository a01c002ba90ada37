"""``/v1/files``: upload, list, read, download and delete media files.

A job's output downloads under a name made from its source file and the job
(``clip-480p.mp4``; pipelines/catalog.py `output_name`), whatever its storage key. A
multi-file output (an HLS ladder) downloads whole as one zip with ``?format=zip`` on its
content, streamed as it is read, its files under one folder named the same way
(``clip-hls/master.m3u8``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, redirect, request, send_file, stream_with_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from faktry.errors import PayloadTooLarge, ValidationError
from faktry.tenancy import Tenant
from pipelines import files, pagination
from pipelines.catalog import default_catalog, output_name
from pipelines.models import Job, JobOutput
from quotas.limits import tier_limits
from storage.interface import Storage
from storage.local import LocalStorage
from storage.models import File
from storage.s3 import content_disposition
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.errors import best_effort
from web.guard import large_body

# Playlists are always served through faktry: their relative links must resolve here.
_STREAM_THROUGH = {"application/vnd.apple.mpegurl"}


@blueprint.post("/files")
@large_body
@authenticated
def upload_file() -> Any:
    svc = services()
    sess = db()
    tenant = sess.get(Tenant, principal().tenant_id)
    limits = tier_limits(sess, tenant.tier if tenant else "free")
    limit = min(svc.settings.max_upload_bytes, limits.max_upload_bytes)
    # Cut the body off near the limit while it streams in (chunked uploads included);
    # the multipart envelope gets a little headroom.
    request.max_content_length = limit + 64 * 1024
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(f"uploads are limited to {limit} bytes", details={"limit": limit})
    # End the authentication's transaction now: probing and storing take a while, and on
    # SQLite an open transaction holds the database's write lock.
    sess.commit()
    # A slot before a byte of the body is read: over a cap, a 429 and the connection closed.
    with svc.uploads.slot(principal().tenant_id, request.remote_addr):
        return _receive_upload(sess, limits, limit)


def _receive_upload(sess: Any, limits: Any, limit: int) -> Any:
    svc = services()
    part = request.files.get("file")
    if part is None:
        raise ValidationError("send the file as the multipart field 'file'", field="file")
    staged = part.stream
    staged.flush()
    staged_path = Path(staged.name)
    size = staged_path.stat().st_size
    if size > limit:
        raise PayloadTooLarge(f"uploads are limited to {limit} bytes", details={"limit": limit})
    if size == 0:
        raise ValidationError("the file is empty", field="file", code="invalid_media")
    with files.ingest_upload(
        sess,
        svc.sessions,
        svc.storage,
        tenant_id=principal().tenant_id,
        limits=limits,
        staged=staged_path,
        filename=part.filename or "",
        probe_timeout=svc.settings.probe_timeout,
        max_image_pixels=svc.settings.max_image_pixels,
    ) as row:
        sess.commit()
    return files.to_dict(row), 201, {"Location": f"/v1/files/{row.id}"}


@blueprint.get("/files")
@authenticated
def list_files() -> Any:
    limit = pagination.parse_limit(request.args.get("limit"))
    kind = request.args.get("kind")
    if kind is not None and kind not in ("image", "video", "audio"):
        raise ValidationError("kind must be image, video or audio", field="kind")
    origin = request.args.get("origin")
    if origin is not None and origin not in ("upload", "output"):
        raise ValidationError("origin must be upload or output", field="origin")
    rows, next_cursor = files.list_files(
        db(),
        cursor=request.args.get("cursor"),
        limit=limit,
        kind=kind,
        origin=origin,
        min_size=_size_arg("min_size"),
        max_size=_size_arg("max_size"),
    )
    return {"object": "list", "data": [files.to_dict(r) for r in rows], "next_cursor": next_cursor}


def _size_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ValidationError(f"{name} must be a whole number of bytes", field=name)
    return int(raw)


@blueprint.get("/files/<file_id>")
@authenticated
def get_file(file_id: str) -> Any:
    return files.to_dict(files.get_file(db(), file_id))


@blueprint.get("/files/<file_id>/content")
@blueprint.get("/files/<file_id>/content/<path:relpath>")
@authenticated
def file_content(file_id: str, relpath: str = "") -> Any:
    sess = db()
    row = files.get_file(sess, file_id)
    fmt = request.args.get("format")
    if fmt is not None:
        if fmt != "zip":
            raise ValidationError("format must be zip", field="format")
        if relpath or row.root_id is not None:
            raise ValidationError(
                "a zip is made of a whole file: ask for it on the file's own content, without a path",
                field="format",
            )
        return _archive(sess, row)
    # An HLS player (hls.js) fetches segments from the page: they come from faktry's own
    # origin too, which the pages' Content-Security-Policy allows, rather than the storage's.
    through = row.kind == "playlist"
    if row.root_id is None and (relpath or row.relpath):
        row = files.member(sess, row, relpath)
    elif relpath:
        raise ValidationError("this file has no members", field="relpath", code="file_not_found", status=404)
    key, content_type, size = row.storage_key, row.content_type, row.size
    name = row.filename if row.relpath else download_name(sess, row)
    sess.close()  # no transaction stays open while bytes stream
    return stored_response(
        key, content_type, size, name, presign=content_type not in _STREAM_THROUGH and not through
    )


def stored_response(key: str, content_type: str, size: int, name: str, *, presign: bool = True) -> Any:
    """A stored object as a download: a redirect to a presigned URL where storage gives one
    (S3, with ``presign``), else the bytes, with ranges and conditional requests on local
    storage. A type a browser would run is always an attachment."""
    storage = services().storage
    if presign:
        url = storage.presigned_url(
            key, expires_in=services().settings.presign_ttl, filename=name, content_type=content_type
        )
        if url is not None:
            return redirect(url, code=302)
    inline = files.served_inline(content_type)
    if isinstance(storage, LocalStorage):
        with storage.local_path(key) as path:
            return send_file(
                path, mimetype=content_type, download_name=name or None, as_attachment=not inline,
                conditional=True,
            )  # fmt: skip
    response = Response(stream_with_context(storage.iter_chunks(key)), mimetype=content_type)
    response.headers["Content-Length"] = str(size)
    if not inline:
        response.headers["Content-Disposition"] = content_disposition(name) if name else "attachment"
    return response


def download_name(sess: Session, row: File, extension: str | None = None) -> str:
    """What the file downloads as: an upload keeps its name; a job's output is named after
    its source file and the job (``clip-480p.mp4``), or after the job alone when it was made
    from a prompt."""
    if row.job_id is None:
        return row.filename
    job = sess.get(Job, row.job_id)
    out = sess.scalars(select(JobOutput.name).where(JobOutput.file_id == row.id)).first()
    if job is None:
        return row.filename
    source = sess.get(File, job.input_file_id) if job.input_file_id else None
    if extension is None:
        extension = Path(row.relpath or row.filename).suffix
    return output_name(
        default_catalog().labels,
        source=source.filename if source is not None else None,
        job_type=job.type,
        params=job.params or {},
        output=out or "",
        extension=extension,
    )


def _archive(sess: Session, root: File) -> Any:
    """The whole file as one zip, streamed: a multi-file output's files under one folder."""
    folder = download_name(sess, root, extension="")
    members = [(root.relpath or root.filename or "file", root.storage_key)]
    rows = sess.scalars(select(File).where(File.root_id == root.id).order_by(File.relpath))
    members += [(m.relpath or m.id, m.storage_key) for m in rows]
    sess.close()  # no transaction stays open while bytes stream
    storage = services().storage
    # Opened now, so that a missing object answers before the first byte is sent.
    first = storage.iter_chunks(members[0][1])
    response = Response(
        stream_with_context(_zip_stream(storage, folder, members, first)), mimetype="application/zip"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{folder}.zip"'
    return response


class _Sink:
    """A write-only stream the zip writes into and the response drains, chunk by chunk."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def _zip_stream(storage: Storage, folder: str, members: list[tuple[str, str]], first: Any) -> Iterator[bytes]:
    sink = _Sink()
    # Not seekable: sizes and checksums follow each member (data descriptors).
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for index, (relpath, key) in enumerate(members):
            chunks = first if index == 0 else storage.iter_chunks(key)
            info = zipfile.ZipInfo(f"{folder}/{relpath}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with chunks, archive.open(info, "w", force_zip64=True) as dest:
                for chunk in chunks:
                    dest.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


@blueprint.delete("/files/<file_id>")
@authenticated
def delete_file(file_id: str) -> Any:
    sess = db()
    keys = files.delete_file(sess, file_id)
    sess.commit()
    storage = services().storage
    for key in keys:
        # The file is gone once committed: bytes left behind are logged, not answered.
        with best_effort("file %s: stored object %s not deleted", file_id, key):
            storage.delete(key)
    return "", 204
