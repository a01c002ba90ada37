"""Export archives: asking for one, building it, serving it until it expires, removing it.

- `request` adds a ``queued`` archive, or answers the one still queued or building (one at a
  time per account: asking twice does not build twice). The caller sends `build` its id
  after the commit (`workers.actors.exports`).
- `build` starts the build (`claim`: a fenced ``UPDATE ... RETURNING`` that counts the start
  in ``attempts``), writes the zip in the temp folder from the account's export
  (`pipelines.accounts.export`) and its stored media (`pipelines.exports.archive`), stores it
  under ``exports/<tenant>/<archive id>.zip`` and marks the archive ``ready`` with its expiry,
  fenced by that start: a start the scheduler took for dead cannot finish it. It sends the
  ``export.ready`` webhook event (``export.failed`` when it gives up) in the same transaction.
- The database is the truth; the message that asks for a build may be lost. `due` lists what
  the scheduler sends again: archives queued for longer than ``requeue_after`` and builds
  with no sign of life (``heartbeat_at``) for ``stale_seconds``. A build that fails is queued
  again until it has had ``max_attempts`` starts, then marked ``failed`` (``export_failed``).
- `expire` (the scheduler's retention pass) removes the zips of archives past ``expires_at``
  and marks them ``expired``; the row stays, so the page can say the link has expired.
- Archives are not counted in the storage quota: they are copies faktry makes and removes.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import transaction
from faktry.errors import NotFound
from pipelines.brands import book
from pipelines.brands import store as brand_store
from pipelines.brands.models import Brand
from pipelines.exports import archive
from pipelines.exports.models import BUILDING, EXPIRED, FAILED, PENDING, QUEUED, READY, ExportArchive
from pipelines.gallery import store as gallery
from pipelines.webhooks import outbox
from storage.interface import Storage
from storage.models import File

log = logging.getLogger("faktry.exports")

#: The archives a list shows, newest first.
LISTED = 20
#: Archives one pass of the scheduler expires, or sends again, at most.
BATCH = 200
#: A build's sign of life is written at most this often (seconds).
BEAT_EVERY = 5.0

FAILED_CODE = "export_failed"


@dataclass(frozen=True)
class Policy:
    """How long archives live and how builds are watched (from `faktry.config.Settings`)."""

    archive_hours: float = 7 * 24.0
    stale_seconds: float = 300.0
    max_attempts: int = 3
    requeue_after: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        return cls(
            archive_hours=settings.export_archive_hours,
            stale_seconds=settings.export_stale_seconds,
            max_attempts=settings.export_max_attempts,
            requeue_after=settings.requeue_after_seconds,
        )


def storage_prefix(tenant_id: str) -> str:
    """Where a tenant's archives are stored: removed whole with the account."""
    return f"exports/{tenant_id}/"


def request(session: Session, tenant_id: str, user_id: str | None) -> tuple[ExportArchive, bool]:
    """The archive being made for the account, or a new queued one; and whether it is new."""
    pending = session.scalars(
        select(ExportArchive)
        .where(ExportArchive.tenant_id == tenant_id, ExportArchive.status.in_(PENDING))
        .order_by(ExportArchive.created_at.desc())
        .limit(1)
    ).first()
    if pending is not None:
        return pending, False
    made = ExportArchive(tenant_id=tenant_id, user_id=user_id, status=QUEUED, attempts=0)
    session.add(made)
    session.flush()
    return made, True


def get(session: Session, tenant_id: str, archive_id: str) -> ExportArchive:
    found = session.scalars(
        select(ExportArchive).where(ExportArchive.id == archive_id, ExportArchive.tenant_id == tenant_id)
    ).first()
    if found is None:
        raise NotFound("no such export archive", code="export_not_found")
    return found


def list_archives(session: Session, tenant_id: str, *, limit: int | None = LISTED) -> list[ExportArchive]:
    """The account's archives, newest first (the last `LISTED`, or all with ``limit=None``)."""
    return list(
        session.scalars(
            select(ExportArchive)
            .where(ExportArchive.tenant_id == tenant_id)
            .order_by(ExportArchive.created_at.desc(), ExportArchive.id.desc())
            .limit(limit)
        )
    )


def is_expired(row: ExportArchive, now: datetime | None = None) -> bool:
    if row.status == EXPIRED:
        return True
    return row.status == READY and row.expires_at is not None and row.expires_at <= (now or clock.now())


def to_dict(row: ExportArchive) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    status = EXPIRED if is_expired(row) else row.status
    ready = status == READY
    return {
        "id": row.id,
        "object": "export_archive",
        "status": status,
        "size": row.size if ready else None,
        "sha256": row.sha256 if ready else None,
        "file_count": row.file_count if ready else None,
        "error": _error(row.error_code) if status == FAILED else None,
        "created_at": stamp(row.created_at),
        "started_at": stamp(row.started_at),
        "finished_at": stamp(row.finished_at),
        "expires_at": stamp(row.expires_at),
        "download_url": f"/v1/account/exports/{row.id}/download" if ready else None,
        "urls": {"self": f"/v1/account/exports/{row.id}"},
    }


def _error(code: str | None) -> dict[str, str]:
    return {
        "code": code or FAILED_CODE,
        "message": "the archive could not be built; nothing was lost: ask for a new one",
    }


# -- the build --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    archive_id: str
    tenant_id: str
    attempt: int


class Superseded(Exception):
    """The build's start is no longer the archive's last one (or the archive is gone)."""


def claim(sessions: sessionmaker[Session], archive_id: str, policy: Policy) -> Claim | None:
    """Start the build if the archive is queued, or its build went silent; None otherwise.
    An archive that has had every start it gets is marked failed instead."""
    now = clock.now()
    silent = and_(ExportArchive.status == BUILDING, ExportArchive.heartbeat_at < now - _stale(policy))
    startable = and_(ExportArchive.id == archive_id, or_(ExportArchive.status == QUEUED, silent))
    with transaction(sessions) as session:
        row = session.execute(
            update(ExportArchive)
            .where(startable, ExportArchive.attempts < policy.max_attempts)
            .values(status=BUILDING, attempts=ExportArchive.attempts + 1, started_at=now, heartbeat_at=now)
            .returning(ExportArchive.tenant_id, ExportArchive.attempts)
        ).first()
        if row is not None:
            return Claim(archive_id, row.tenant_id, row.attempts)
        _give_up(session, startable, now)
    return None


def build(
    sessions: sessionmaker[Session], storage: Storage, archive_id: str, policy: Policy, *, tmp_dir: Path
) -> str:
    """Build the archive if it is this call's to build; returns what became of it (``ready``,
    ``queued`` again after a failure, ``failed``, or ``skipped`` when it was not startable)."""
    from pipelines import accounts

    started = claim(sessions, archive_id, policy)
    if started is None:
        return "skipped"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    key = f"{storage_prefix(started.tenant_id)}{archive_id}.zip"
    try:
        with transaction(sessions, tenant_id=started.tenant_id) as session:
            document = accounts.export(session, started.tenant_id)
            media = _media(session, started.tenant_id)
            brands = _brands(session, started.tenant_id)
        beat = _Beat(sessions, started)
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix=f"{archive_id}-", suffix=".zip") as tmp:
            path = Path(tmp.name)
            written = archive.write(
                path, document, media, storage,
                transactions=_transactions(document),
                transaction_fields=accounts.TRANSACTION_CSV_FIELDS, brands=brands,
                made=clock.now(), beat=beat,
            )  # fmt: skip
            storage.put_file(key, path, content_type="application/zip")
    except Superseded:
        log.info("export %s: build %d was superseded", archive_id, started.attempt)
        return "skipped"
    except Exception:
        log.warning("export %s: build %d failed", archive_id, started.attempt, exc_info=True)
        return _failed(sessions, started, policy)
    if not _finish(sessions, started, key, written, policy):
        storage.delete(key)  # a newer start, or the account's deletion, owns the archive now
        return "skipped"
    return READY


def _media(session: Session, tenant_id: str) -> list[archive.Media]:
    """Every stored object of the account's library, and the gallery entries' copies, with
    its place in the archive."""
    media: list[archive.Media] = []
    rows = session.execute(
        select(File.id, File.root_id, File.relpath, File.filename, File.storage_key, File.size, File.sha256)
        .where(File.tenant_id == tenant_id)
        .order_by(func.coalesce(File.root_id, File.id), File.relpath, File.id)
    )
    for file_id, root_id, relpath, filename, key, size, sha in rows:
        folder = root_id or file_id
        inside = archive.safe_path(relpath) if relpath else ""
        name = inside or archive.safe_name(filename or "", fallback=Path(key).name)
        media.append(archive.Media(f"media/{folder}/{name}", key, size, sha))
    for entry in gallery.of_tenant(session, tenant_id):
        name = f"gallery/{entry.id}/{Path(entry.storage_key).name}"
        media.append(archive.Media(name, entry.storage_key, entry.size))
    return media


def _brands(session: Session, tenant_id: str) -> list[archive.Brand]:
    """Each brand guideline as its brand book writes it, Markdown and JSON."""
    written = []
    for brand in session.scalars(
        select(Brand).where(Brand.tenant_id == tenant_id).order_by(Brand.created_at, Brand.id)
    ):
        found = brand_store.files_of(session, brand)
        written.append(archive.Brand(brand.id, book.to_markdown(brand, found), book.to_json(brand, found)))
    return written


def _transactions(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document["transactions"]


class _Beat:
    """The build's sign of life, written at most every `BEAT_EVERY` seconds and fenced by the
    start: it raises `Superseded` once the archive is no longer this start's."""

    def __init__(self, sessions: sessionmaker[Session], started: Claim) -> None:
        self.sessions = sessions
        self.started = started
        self.last = clock.monotonic()

    def __call__(self) -> None:
        if clock.monotonic() - self.last < BEAT_EVERY:
            return
        self.last = clock.monotonic()
        with transaction(self.sessions) as session:
            if not session.execute(
                update(ExportArchive)
                .where(_mine(self.started))
                .values(heartbeat_at=clock.now())
                .returning(ExportArchive.id)
            ).first():
                raise Superseded(self.started.archive_id)


def _mine(started: Claim) -> Any:
    return and_(
        ExportArchive.id == started.archive_id,
        ExportArchive.status == BUILDING,
        ExportArchive.attempts == started.attempt,
    )


def _finish(
    sessions: sessionmaker[Session], started: Claim, key: str, written: archive.Written, policy: Policy
) -> bool:
    now = clock.now()
    with transaction(sessions) as session:
        row = session.execute(
            update(ExportArchive)
            .where(_mine(started))
            .values(
                status=READY,
                storage_key=key,
                size=written.size,
                sha256=written.sha256,
                file_count=written.file_count,
                finished_at=now,
                heartbeat_at=now,
                expires_at=now + timedelta(hours=policy.archive_hours),
            )
            .returning(ExportArchive)
        ).scalar_one_or_none()
        if row is None:
            return False
        outbox.record(
            session, started.tenant_id, outbox.EXPORT_READY, to_dict(row), subject_id=row.id, at=now
        )
    return True


def _failed(sessions: sessionmaker[Session], started: Claim, policy: Policy) -> str:
    """After a failed start: queued again for the scheduler to send, or failed for good."""
    now = clock.now()
    final = started.attempt >= policy.max_attempts
    with transaction(sessions) as session:
        values: dict[str, Any] = (
            {"status": FAILED, "error_code": FAILED_CODE, "finished_at": now}
            if final
            else {"status": QUEUED, "heartbeat_at": now}
        )
        row = session.execute(
            update(ExportArchive).where(_mine(started)).values(**values).returning(ExportArchive)
        ).scalar_one_or_none()
        if row is not None and final:
            outbox.record(
                session, started.tenant_id, outbox.EXPORT_FAILED, to_dict(row), subject_id=row.id, at=now
            )
    return FAILED if final else QUEUED


def _give_up(session: Session, startable: Any, now: datetime) -> None:
    """Mark failed an archive that is startable but has had every start it gets."""
    for row in session.execute(
        update(ExportArchive)
        .where(startable)
        .values(status=FAILED, error_code=FAILED_CODE, finished_at=now)
        .returning(ExportArchive)
    ).scalars():
        outbox.record(session, row.tenant_id, outbox.EXPORT_FAILED, to_dict(row), subject_id=row.id, at=now)


def _stale(policy: Policy) -> timedelta:
    return timedelta(seconds=policy.stale_seconds)


# -- the scheduler's passes ------------------------------------------------------------------


def due(sessions: sessionmaker[Session], policy: Policy) -> list[str]:
    """Archives whose build message the scheduler sends again: queued for longer than
    ``requeue_after`` (the message was lost, or a failed start waits its turn) and builds
    silent for ``stale_seconds`` (their process died)."""
    now = clock.now()
    waited = func.coalesce(ExportArchive.heartbeat_at, ExportArchive.created_at)
    with transaction(sessions) as session:
        return list(
            session.scalars(
                select(ExportArchive.id)
                .where(
                    or_(
                        and_(
                            ExportArchive.status == QUEUED,
                            waited < now - timedelta(seconds=policy.requeue_after),
                        ),
                        and_(
                            ExportArchive.status == BUILDING,
                            ExportArchive.heartbeat_at < now - _stale(policy),
                        ),
                    )
                )
                .order_by(waited)
                .limit(BATCH)
            )
        )


def expire(sessions: sessionmaker[Session], storage: Storage) -> int:
    """Remove the zips of archives past their expiry; returns how many expired. The row is
    marked in its own transaction after the object is gone: a crash in between leaves a row
    still ready but past expiry (refused as expired, removed on the next pass)."""
    now = clock.now()
    with transaction(sessions) as session:
        rows = session.execute(
            select(ExportArchive.id, ExportArchive.storage_key)
            .where(ExportArchive.status == READY, ExportArchive.expires_at <= now)
            .order_by(ExportArchive.expires_at)
            .limit(BATCH)
        ).all()
    for archive_id, key in rows:
        if key:
            storage.delete(key)
        with transaction(sessions) as session:
            session.execute(
                update(ExportArchive)
                .where(ExportArchive.id == archive_id, ExportArchive.status == READY)
                .values(status=EXPIRED, storage_key=None)
            )
    return len(rows)


def delete_all(session: Session, tenant_id: str) -> None:
    """Forget the account's archives (its deletion); their zips go with `storage_prefix`."""
    session.execute(delete(ExportArchive).where(ExportArchive.tenant_id == tenant_id))
