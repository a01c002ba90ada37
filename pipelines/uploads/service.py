"""Uploads that arrive in pieces: creating one, appending to it, completing, cancelling.

The shape (see the package docstring for the protocols around it):

1. `create` reserves the declared size against the storage quota and records the upload
   (one transaction, committed before any byte arrives), then starts its pieces in storage:
   an empty partial object (tus on local storage), or an S3 multipart upload (tus on S3, and
   direct uploads). A crash between the two leaves a row the scheduler expires, or a
   multipart upload no row knows, which it aborts (`pipelines.uploads.sweep`).
2. `append` (a tus PATCH) takes the upload's lock at the offset the client names, streams the
   body into storage (`storage.growing`), and records the new offset once the bytes are
   durable; with ``Upload-Checksum`` only if the body matches it. The last byte completes the
   upload within the same call.
3. `complete` (a direct upload's parts are all sent, or the last tus byte arrived) assembles
   the bytes and hands them to `_finalize`, the one completion of every protocol: the size
   must be the declared one; the bytes are read once, to a temporary file on S3 (they are
   hashed as they are read, and the probe reads the local copy: a presigned URL would have
   ffprobe read the object again and speak HTTP) or in place on local storage; sniffed and
   probed as any upload (`pipelines.files.inspect_upload`); moved to the file's key (a rename,
   or S3's server-side copy); and recorded as a `File` exactly as ``POST /v1/files`` records
   one (`pipelines.files.record_upload`), its reservation committed in that transaction.
4. `cancel` (a tus termination, ``DELETE /v1/uploads/<id>``) and the scheduler's expiry
   remove the bytes and give the reservation back.

Outcomes:

- bad content (``unsupported_format``, ``invalid_media``, ``media_too_large``,
  ``media_too_long``) or a size that is not the declared one (``size_mismatch``): the upload
  is ``failed`` with that code, its bytes removed, its reservation cancelled; 422
  (`UploadRejected`);
- bytes still missing at ``complete``: ``409 upload_incomplete``, nothing changed;
- another request holds the upload: ``423 upload_locked``; the client's offset is not the
  upload's: ``409 offset_mismatch``; the body does not match its checksum: ``460
  checksum_mismatch``, the bytes not counted;
- expired, terminated or failed: ``410``; unknown or another tenant's: ``404``.

Each step changes storage first and the database after, and the database is the truth:
a crash anywhere leaves bytes that the upload's row (or the S3 listing) leads the
scheduler's sweep to.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.config import Settings
from faktry.db import new_id, transaction
from faktry.errors import Conflict, FaktryError, Gone, NotFound, PayloadTooLarge, ValidationError
from pipelines import files
from pipelines.uploads.models import (
    CANCELLED,
    COMPLETED,
    EXPIRED,
    FAILED,
    PENDING,
    S3_MULTIPART,
    TUS,
    Upload,
)
from quotas.limits import TierLimits, cancel_reservation, reserve_storage
from storage.growing import Interrupted, StopWriting, growing
from storage.interface import ObjectNotFound, Storage, Stored
from storage.models import File
from storage.s3 import MAX_PARTS, MAX_PRESIGN_SECONDS, MIN_PART_SIZE, PartsRefused, S3Storage

log = logging.getLogger("faktry.uploads")

MiB = 1 << 20
#: A direct upload's parts are at least this big (fewer, larger presigned URLs).
DIRECT_PART_SIZE = 8 * MiB
#: An upload's reservation outlives the upload by this much: the scheduler expires the
#: upload (and cancels the reservation with it) first; this is the backstop.
RESERVATION_GRACE = timedelta(hours=1)

#: The checksum algorithms the tus checksum extension takes.
CHECKSUMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}


class UploadNotFound(NotFound):
    code = "upload_not_found"


class UploadLocked(FaktryError):
    """Another request is writing to (or completing) the upload."""

    code = "upload_locked"
    status = 423

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


class OffsetMismatch(Conflict):
    code = "offset_mismatch"


class ChecksumMismatch(FaktryError):
    code = "checksum_mismatch"
    status = 460


class UploadIncomplete(Conflict):
    code = "upload_incomplete"


class UploadRejected(FaktryError):
    """The upload's bytes were refused at completion; the upload is failed with this code."""

    status = 422


@dataclass(frozen=True)
class Policy:
    """What uploads take from the settings."""

    expiry: timedelta
    lock_seconds: float
    max_upload_bytes: int
    probe_timeout: float
    max_image_pixels: int
    tmp_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            expiry=timedelta(hours=settings.upload_expiry_hours),
            lock_seconds=settings.upload_lock_seconds,
            max_upload_bytes=settings.max_upload_bytes,
            probe_timeout=settings.probe_timeout,
            max_image_pixels=settings.max_image_pixels,
            tmp_dir=settings.tmp_dir,
        )


def prefix(tenant_id: str, upload_id: str) -> str:
    """Where an upload's bytes gather until they become a file."""
    return f"t/{tenant_id}/uploads/{upload_id}/"


def direct(storage: Storage) -> bool:
    """Whether clients can send an upload's bytes to the storage themselves (S3)."""
    return isinstance(storage, S3Storage)


# -- reading -----------------------------------------------------------------------------------


def get(session: Session, upload_id: str) -> Upload:
    row = session.get(Upload, upload_id) if upload_id.startswith("upl_") else None
    # session.get bypasses loader criteria for rows already in the identity map, so check.
    tenant = session.info.get("tenant_id")
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise UploadNotFound("no such upload")
    return row


def gone_unless_pending(row: Upload, now: datetime | None = None) -> None:
    """``410`` for an upload that can take no more bytes: expired (or past its expiry),
    terminated, failed or completed."""
    if row.status == PENDING and row.expires_at > (now or clock.now()):
        return
    status = EXPIRED if row.status == PENDING else row.status
    words = {
        EXPIRED: ("upload_expired", "this upload expired; start a new one"),
        CANCELLED: ("upload_terminated", "this upload was terminated"),
        FAILED: ("upload_failed", f"this upload failed ({row.error_code})"),
        COMPLETED: ("upload_completed", "this upload is complete"),
    }
    code, message = words[status]
    raise Gone(message, code=code)


def to_dict(row: Upload) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id,
        "object": "upload",
        "protocol": row.protocol,
        "status": row.status,
        "filename": row.filename,
        "size": row.size,
        "offset": row.received,
        "file_id": row.file_id if row.status == COMPLETED else None,
        "error": {"code": row.error_code} if row.status == FAILED else None,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
    }
    if row.protocol == TUS:
        data["tus_url"] = f"/v1/uploads/tus/{row.id}"
    return data


def direct_parts(storage: Storage, row: Upload, now: datetime | None = None) -> dict[str, Any]:
    """A direct upload's part size and presigned part URLs, valid until the upload expires
    (within S3's seven days)."""
    assert isinstance(storage, S3Storage) and row.s3_upload_id and row.part_size
    seconds = (row.expires_at - (now or clock.now())).total_seconds()
    ttl = max(1, min(MAX_PRESIGN_SECONDS, math.floor(seconds)))
    count = max(1, -(-row.size // row.part_size))
    parts = []
    for number in range(1, count + 1):
        size = min(row.part_size, row.size - (number - 1) * row.part_size)
        url = storage.presigned_part_url(row.staging_key, row.s3_upload_id, number, expires_in=ttl)
        parts.append({"number": number, "url": url, "size": size})
    return {"part_size": row.part_size, "parts": parts, "complete_url": f"/v1/uploads/{row.id}/complete"}


def part_size_for(size: int) -> int:
    """A direct upload's part size: at least `DIRECT_PART_SIZE`, few enough parts for S3,
    a whole number of MiB."""
    wanted = max(DIRECT_PART_SIZE, MIN_PART_SIZE, -(-size // MAX_PARTS))
    return -(-wanted // MiB) * MiB


# -- creating ----------------------------------------------------------------------------------


def create(
    sessions: sessionmaker[Session],
    storage: Storage,
    policy: Policy,
    *,
    tenant_id: str,
    limits: TierLimits,
    protocol: str,
    filename: str,
    size: int,
    content_type: str | None = None,
) -> Upload:
    """A new pending upload of ``size`` bytes, its storage reserved and its pieces started.
    ``413`` over the upload size limit or the storage quota, ``422`` for an empty file.
    ``sessions`` act for the tenant."""
    limit = min(policy.max_upload_bytes, limits.max_upload_bytes)
    if size > limit:
        raise PayloadTooLarge(f"uploads are limited to {limit} bytes", details={"limit": limit})
    if size <= 0:
        raise ValidationError("the file is empty", field="size", code="invalid_media")
    if protocol == S3_MULTIPART and not direct(storage):
        raise ValueError("direct uploads need S3 storage")
    now = clock.now()
    upload_id = new_id("upl")
    expires_at = now + policy.expiry
    with transaction(sessions) as session:
        reservation = reserve_storage(
            session, tenant_id, size, limits.storage_quota_bytes, expires_at=expires_at + RESERVATION_GRACE
        )
        row = Upload(
            id=upload_id, tenant_id=tenant_id, protocol=protocol, filename=files.display_name(filename),
            content_type=(content_type or None) and content_type[:100], size=size, received=0,
            staging_key=prefix(tenant_id, upload_id) + "data", reservation_id=reservation.id,
            status=PENDING, created_at=now, expires_at=expires_at, updated_at=now,
            part_size=part_size_for(size) if protocol == S3_MULTIPART else None,
        )  # fmt: skip
        session.add(row)
    try:
        if protocol == S3_MULTIPART:
            assert isinstance(storage, S3Storage)
            handle = storage.start_multipart(row.staging_key)
        else:
            handle = growing(storage, tmp_dir=policy.tmp_dir).begin(row.staging_key)
    except BaseException:
        _end(sessions, row.id, None, CANCELLED)
        raise
    if handle:
        with transaction(sessions) as session:
            session.execute(
                update(Upload)
                .where(Upload.id == row.id)
                .values(s3_upload_id=handle)
                .execution_options(synchronize_session=False)
            )
        row.s3_upload_id = handle
    log.info("upload %s: %s, %d bytes", row.id, protocol, size)
    return row


# -- the lock ----------------------------------------------------------------------------------


class Lock:
    """An upload held by one request: its token, and whether the hold was lost (the request
    stalled past the lease and another may have taken the upload)."""

    def __init__(self, upload_id: str, token: str) -> None:
        self.upload_id = upload_id
        self.token = token
        self.lost = threading.Event()


@contextmanager
def locked(
    sessions: sessionmaker[Session], upload_id: str, policy: Policy, *, at: int | None = None
) -> Iterator[Lock]:
    """Hold a pending upload for the block (at offset ``at`` if given), renewing the hold
    every third of ``lock_seconds`` while the block runs. ``409 offset_mismatch`` when the
    upload is elsewhere, ``423 upload_locked`` while another request holds it, ``410`` when
    it is no longer pending."""
    lock = Lock(upload_id, new_id("lck"))
    lease = timedelta(seconds=policy.lock_seconds)
    with transaction(sessions) as session:
        now = clock.now()
        cond = and_(
            Upload.id == upload_id,
            Upload.status == PENDING,
            or_(Upload.lock_token.is_(None), Upload.locked_until < now),
        )
        if at is not None:
            cond = and_(cond, Upload.received == at)
        taken = session.execute(
            update(Upload)
            .where(cond)
            .values(lock_token=lock.token, locked_until=now + lease)
            .returning(Upload.id)
            .execution_options(synchronize_session=False)
        ).first()
        if taken is None:
            row = get(session, upload_id)
            session.refresh(row)
            gone_unless_pending(row)
            if at is not None and row.received != at:
                raise OffsetMismatch(
                    f"the upload is at byte {row.received}, not {at}", details={"offset": row.received}
                )
            raise UploadLocked(
                "another request is sending this upload's bytes; try again shortly",
                retry_after=max(1, math.ceil(policy.lock_seconds / 3)),
            )
    stop = threading.Event()
    keeper = threading.Thread(
        target=_keep, args=(sessions, lock, lease, stop), name=f"upload-lock-{upload_id}", daemon=True
    )
    keeper.start()
    try:
        yield lock
    finally:
        stop.set()
        keeper.join()
        with transaction(sessions) as session:
            session.execute(
                update(Upload)
                .where(Upload.id == upload_id, Upload.lock_token == lock.token)
                .values(lock_token=None, locked_until=None)
                .execution_options(synchronize_session=False)
            )


def _keep(sessions: sessionmaker[Session], lock: Lock, lease: timedelta, stop: threading.Event) -> None:
    """Renew ``lock`` every third of its lease until ``stop``; a renewal that finds it gone
    (or fails for longer than half the lease) marks it lost."""
    every = lease.total_seconds() / 3
    renewed = clock.monotonic()
    while not stop.wait(every):
        try:
            with transaction(sessions) as session:
                kept = session.execute(
                    update(Upload)
                    .where(Upload.id == lock.upload_id, Upload.lock_token == lock.token)
                    .values(locked_until=clock.now() + lease)
                    .returning(Upload.id)
                    .execution_options(synchronize_session=False)
                ).first()
        except Exception:
            log.warning("upload %s: could not renew its lock", lock.upload_id, exc_info=True)
            if clock.monotonic() - renewed > lease.total_seconds() / 2:
                lock.lost.set()
            continue
        if kept is None:
            lock.lost.set()
            return
        renewed = clock.monotonic()


def _fenced(session: Session, lock: Lock, **values: Any) -> bool:
    """Change the locked upload, if this request still holds it."""
    done = session.execute(
        update(Upload)
        .where(Upload.id == lock.upload_id, Upload.lock_token == lock.token, Upload.status == PENDING)
        .values(updated_at=clock.now(), **values)
        .returning(Upload.id)
        .execution_options(synchronize_session=False)
    ).first()
    return done is not None


# -- appending (tus) ---------------------------------------------------------------------------


def append(
    sessions: sessionmaker[Session],
    storage: Storage,
    policy: Policy,
    *,
    upload_id: str,
    offset: int,
    read: Callable[[int], bytes],
    checksum: tuple[str, bytes] | None,
    limits: TierLimits,
) -> Upload:
    """A tus PATCH: the bytes ``read`` returns, written after byte ``offset``, recorded once
    durable (only if they match ``checksum``, an algorithm of `CHECKSUMS` and the digest);
    completes the upload when they are its last. Returns the upload as it is now. A source
    that fails part-way (the client went away) keeps what arrived, and its error is raised."""
    with locked(sessions, upload_id, policy, at=offset) as lock:
        with transaction(sessions) as session:
            row = get(session, upload_id)
            session.expunge(row)
        gone_unless_pending(row)
        digest = CHECKSUMS[checksum[0]]() if checksum else None

        def source(n: int) -> bytes:
            if lock.lost.is_set():
                raise StopWriting("the upload's lock was lost")
            data = read(n)
            if digest is not None:
                digest.update(data)
            return data

        failed: BaseException | None = None
        try:
            reached = growing(storage, tmp_dir=policy.tmp_dir).append(
                row.staging_key, row.s3_upload_id or "", offset=offset, size=row.size, read=source
            )
        except Interrupted as interrupted:
            reached, failed = interrupted.offset, interrupted.__cause__ or interrupted
        if checksum is not None and digest is not None:
            if failed is not None:
                raise failed  # a body cut short cannot match its checksum: nothing counts
            if digest.digest() != checksum[1]:
                raise ChecksumMismatch(
                    f"the body does not match its Upload-Checksum ({checksum[0]}); "
                    f"send it again from byte {offset}"
                )
        if reached != offset:
            with transaction(sessions) as session:
                if not _fenced(session, lock, received=reached):
                    raise OffsetMismatch("the upload changed while these bytes arrived")
            row.received = reached
        if failed is not None:
            raise failed
        if row.received == row.size:
            _assemble(storage, policy, row)
            _finalize(sessions, storage, policy, row, lock, limits)
    return row


def _assemble(storage: Storage, policy: Policy, row: Upload) -> None:
    """A tus upload's bytes are all in: the object under its staging key. Done already when
    an earlier request assembled it and died before recording so."""
    try:
        growing(storage, tmp_dir=policy.tmp_dir).finish(
            row.staging_key, row.s3_upload_id or "", size=row.size
        )
    except ObjectNotFound:
        if not storage.exists(row.staging_key):
            raise


# -- completing --------------------------------------------------------------------------------


def complete(
    sessions: sessionmaker[Session],
    storage: Storage,
    policy: Policy,
    *,
    upload_id: str,
    limits: TierLimits,
    parts: list[tuple[int, str]] | None = None,
) -> tuple[Upload, bool]:
    """``POST /v1/uploads/<id>/complete``: the upload as a library file, and whether this call
    made it (False: it was complete already, the same file). A direct upload is assembled
    from ``parts`` (number, ETag), or from every part S3 has when None."""
    with transaction(sessions) as session:
        row = get(session, upload_id)
        session.expunge(row)
    if row.status == COMPLETED:
        return row, False
    with locked(sessions, upload_id, policy) as lock:
        with transaction(sessions) as session:
            row = get(session, upload_id)
            session.refresh(row)
            session.expunge(row)
        gone_unless_pending(row)
        if row.protocol == TUS:
            if row.received < row.size:
                raise UploadIncomplete(
                    f"{row.received} of the upload's {row.size} bytes have arrived",
                    details={"offset": row.received},
                )
            _assemble(storage, policy, row)
        else:
            _assemble_parts(sessions, storage, row, lock, parts)
        _finalize(sessions, storage, policy, row, lock, limits)
    return row, True


def _assemble_parts(
    sessions: sessionmaker[Session],
    storage: Storage,
    row: Upload,
    lock: Lock,
    given: list[tuple[int, str]] | None,
) -> None:
    """A direct upload's parts, made one object by S3. Parts that do not add up to the
    declared size yet leave everything as it was (``409 upload_incomplete``); more bytes
    than declared fail the upload (``size_mismatch``)."""
    assert isinstance(storage, S3Storage)
    if row.s3_upload_id is None:
        raise UploadIncomplete("the upload's storage is not ready")
    try:
        listed = {p.number: p for p in storage.parts(row.staging_key, row.s3_upload_id)}
    except ObjectNotFound:
        if storage.exists(row.staging_key):
            return  # assembled by an earlier call that died before recording so
        raise
    if given is None:
        given = [(n, listed[n].etag) for n in sorted(listed)]
    missing = [n for n, etag in given if n not in listed or listed[n].etag.strip('"') != etag.strip('"')]
    received = sum(listed[n].size for n, _ in given if n in listed)
    if missing or received < row.size:
        raise UploadIncomplete(
            f"{received} of the upload's {row.size} bytes have arrived"
            + (f"; part {missing[0]} is missing or changed" if missing else ""),
            details={"offset": received},
        )
    if received > row.size:
        _fail(sessions, storage, row, lock, "size_mismatch")
        raise UploadRejected(
            f"the parts hold {received} bytes, not the {row.size} declared", code="size_mismatch"
        )
    try:
        storage.complete_multipart(row.staging_key, row.s3_upload_id, given)
    except PartsRefused as refused:
        raise UploadIncomplete(f"S3 cannot assemble these parts ({refused.code})") from None


def _finalize(
    sessions: sessionmaker[Session],
    storage: Storage,
    policy: Policy,
    row: Upload,
    lock: Lock,
    limits: TierLimits,
) -> None:
    """The one completion of every protocol (see the module docstring): ``row`` becomes a
    library file, or fails with the code of what was wrong with it."""
    source = row.staging_key
    moved = False
    if row.final_key and not storage.exists(source) and storage.exists(row.final_key):
        source, moved = row.final_key, True  # moved by a request that died before recording it
    if storage.size(source) != row.size:
        _fail(sessions, storage, row, lock, "size_mismatch")
        raise UploadRejected(
            f"the upload holds other than the {row.size} bytes declared", code="size_mismatch"
        )
    try:
        with _read_once(storage, source, policy.tmp_dir) as (path, stored):
            sniffed, info = files.inspect_upload(
                path, limits, probe_timeout=policy.probe_timeout, max_image_pixels=policy.max_image_pixels
            )
    except FaktryError as bad:
        if bad.status >= 500:
            raise
        _fail(sessions, storage, row, lock, bad.code)
        raise UploadRejected(bad.message, code=bad.code, details=bad.details) from None
    file_id = row.file_id if moved and row.file_id else new_id("fil")
    key = row.final_key if moved and row.final_key else files.upload_key(row.tenant_id, file_id, sniffed.ext)
    if not moved:
        with transaction(sessions) as session:
            if not _fenced(session, lock, final_key=key, file_id=file_id):
                raise Gone("this upload ended while it was completed", code="upload_expired")
        storage.move(source, key, content_type=sniffed.content_type)
    try:
        with transaction(sessions) as session:
            if not _fenced(session, lock, status=COMPLETED, file_id=file_id, received=row.size):
                raise Gone("this upload ended while it was completed", code="upload_expired")
            files.record_upload(
                session, tenant_id=row.tenant_id, file_id=file_id, key=key, stored=stored, sniffed=sniffed,
                info=info, filename=row.filename, reservation=row.reservation_id or "", limits=limits,
            )  # fmt: skip
    except FaktryError as refused:
        if refused.status >= 500:
            raise
        _fail(sessions, storage, row, lock, refused.code, extra=key)
        raise UploadRejected(refused.message, code=refused.code, details=refused.details) from None
    row.status, row.file_id, row.final_key, row.received = COMPLETED, file_id, key, row.size
    try:
        storage.delete_prefix(prefix(row.tenant_id, row.id))  # an S3 upload's tails
    except Exception:
        log.warning("upload %s: staged pieces left behind", row.id, exc_info=True)
    log.info("upload %s: completed as %s", row.id, file_id)


@contextmanager
def _read_once(storage: Storage, key: str, tmp_dir: Path) -> Iterator[tuple[Path, Stored]]:
    """The object as a local file to probe, and its size and SHA-256, its bytes read once:
    local storage's own file, hashed in place; S3's object fetched in chunks to a temporary
    file, hashed as it arrives."""
    if not direct(storage):
        with storage.local_path(key) as path, open(path, "rb") as f:
            local = hashlib.file_digest(f, "sha256")
            yield path, Stored(f.tell(), local.hexdigest())
        return
    digest = hashlib.sha256()
    size = 0
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="upload-") as out,
        storage.iter_chunks(key, 1 << 20) as chunks,
    ):
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        out.flush()
        yield Path(out.name), Stored(size, digest.hexdigest())


# -- ending ------------------------------------------------------------------------------------


def discard(storage: Storage, row: Upload) -> None:
    """Remove every byte of an upload that did not become a file: its pieces, its S3
    multipart upload, and its bytes at the file's key if they moved there."""
    if row.s3_upload_id:
        assert isinstance(storage, S3Storage)
        storage.abort_multipart(row.staging_key, row.s3_upload_id)
    storage.delete_prefix(prefix(row.tenant_id, row.id))
    if row.final_key:
        storage.delete(row.final_key)


def _fail(
    sessions: sessionmaker[Session],
    storage: Storage,
    row: Upload,
    lock: Lock,
    code: str,
    extra: str | None = None,
) -> None:
    discard(storage, row)
    if extra:
        storage.delete(extra)
    _end(sessions, row.id, lock, FAILED, code=code)
    row.status, row.error_code = FAILED, code
    log.info("upload %s: failed (%s)", row.id, code)


def _end(
    sessions: sessionmaker[Session], upload_id: str, lock: Lock | None, status: str, code: str | None = None
) -> bool:
    """Mark a pending upload ended and give its reservation back, in one transaction;
    fenced by ``lock`` when given."""
    with transaction(sessions) as session:
        row = session.get(Upload, upload_id)
        if row is None:
            return False
        if lock is not None:
            if not _fenced(session, lock, status=status, error_code=code, lock_token=None, locked_until=None):
                return False
        else:
            done = session.execute(
                update(Upload)
                .where(Upload.id == upload_id, Upload.status == PENDING)
                .values(status=status, error_code=code, updated_at=clock.now())
                .returning(Upload.id)
                .execution_options(synchronize_session=False)
            ).first()
            if done is None:
                return False
        if row.reservation_id:
            cancel_reservation(session, row.reservation_id)
    return True


def cancel(sessions: sessionmaker[Session], storage: Storage, policy: Policy, *, upload_id: str) -> Upload:
    """Terminate a pending upload: its bytes removed, its reservation given back. ``410``
    when it is no longer pending (``DELETE /v1/uploads/<id>`` answers that as done)."""
    with locked(sessions, upload_id, policy) as lock:
        with transaction(sessions) as session:
            row = get(session, upload_id)
            session.refresh(row)
            session.expunge(row)
        discard(storage, row)
        _end(sessions, upload_id, lock, CANCELLED)
        row.status = CANCELLED
    log.info("upload %s: cancelled", upload_id)
    return row


def expire(sessions: sessionmaker[Session], storage: Storage, policy: Policy, *, upload_id: str) -> bool:
    """The scheduler's expiry of one pending upload past ``expires_at`` (its bytes removed,
    its reservation given back); False when a request holds it or it ended meanwhile."""
    try:
        with locked(sessions, upload_id, policy) as lock:
            with transaction(sessions) as session:
                row = session.get(Upload, upload_id)
                if row is None:
                    return False
                session.expunge(row)
            if row.expires_at > clock.now():
                return False
            discard(storage, row)
            return _end(sessions, upload_id, lock, EXPIRED)
    except (UploadLocked, Gone, OffsetMismatch, NotFound):
        return False


def expired_ids(session: Session, now: datetime, limit: int) -> list[str]:
    return list(
        session.scalars(
            select(Upload.id)
            .where(Upload.status == PENDING, Upload.expires_at < now)
            .order_by(Upload.expires_at)
            .limit(limit)
        )
    )


def holders(session: Session, upload_ids: list[str]) -> dict[str, Any]:
    """The status, S3 upload id and creation time of each of these uploads that exists."""
    if not upload_ids:
        return {}
    found = session.execute(
        select(Upload.id, Upload.status, Upload.s3_upload_id, Upload.created_at).where(
            Upload.id.in_(upload_ids)
        )
    )
    return {row.id: row for row in found}


def file_of(session: Session, row: Upload) -> File:
    assert row.file_id is not None
    return files.get_file(session, row.file_id)
