"""The scheduler's pass over uploads (run by `pipelines.reconcile`): what expired, and what
a crash left in S3 that no upload knows.

- A pending upload past its ``expires_at`` is expired: its bytes removed (its partial object
  or tails, its S3 multipart upload aborted, its bytes at the file's key if a completion died
  after moving them), its reservation cancelled, its status ``expired``. An upload a request
  holds is passed by (the next pass takes it once the request ends or its lock lapses).
- An S3 multipart upload under an upload's staging key that no pending upload holds (the
  process died between starting it and recording its id, or the upload was deleted with its
  account) is aborted; one whose upload was created less than `ORPHAN_GRACE` ago and has no
  id recorded yet is left alone (it is being started right now).

Bounded: at most `BATCH` uploads a pass; safe to run in several processes at once (each
upload is taken by its lock).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import transaction
from pipelines.uploads import service
from pipelines.uploads.models import PENDING
from storage.interface import Storage
from storage.s3 import S3Storage

log = logging.getLogger("faktry.uploads")

BATCH = 500
#: A multipart upload no row knows is aborted only when it is older than this.
ORPHAN_GRACE = timedelta(hours=1)
_STAGED = re.compile(r"t/[^/]+/uploads/(upl_[0-9a-f]+)/data")


@dataclass(frozen=True)
class Swept:
    expired: int = 0
    orphans_aborted: int = 0


def sweep(
    sessions: sessionmaker[Session], storage: Storage, policy: service.Policy, now: datetime | None = None
) -> Swept:
    now = now or clock.now()
    with transaction(sessions) as session:
        due = service.expired_ids(session, now, BATCH)
    expired = sum(1 for upload_id in due if service.expire(sessions, storage, policy, upload_id=upload_id))
    aborted = abort_orphans(sessions, storage, now) if isinstance(storage, S3Storage) else 0
    if expired or aborted:
        log.info("uploads: %d expired, %d unknown multipart uploads aborted", expired, aborted)
    return Swept(expired=expired, orphans_aborted=aborted)


def abort_orphans(sessions: sessionmaker[Session], storage: S3Storage, now: datetime) -> int:
    """Abort the multipart uploads under tenants' upload folders that no pending upload holds.

    Told by the database alone (S3 servers differ on what they say of an upload's start): the
    key names its upload, and that upload is created before its multipart upload is started,
    so a multipart upload whose row is missing, ended, or holds another one is left over; one
    whose row has no id yet is being started unless the row is older than `ORPHAN_GRACE`."""
    candidates = []
    for found in storage.multipart_uploads("t/"):
        matched = _STAGED.fullmatch(found.key)
        if matched is not None:
            candidates.append((matched.group(1), found))
        if len(candidates) >= BATCH:
            break
    if not candidates:
        return 0
    with transaction(sessions) as session:
        rows = service.holders(session, sorted({upload_id for upload_id, _ in candidates}))
    aborted = 0
    for upload_id, found in candidates:
        row = rows.get(upload_id)
        if row is not None and row.status == PENDING:
            if row.s3_upload_id == found.upload_id:
                continue
            if row.s3_upload_id is None and row.created_at > now - ORPHAN_GRACE:
                continue  # its id is being recorded right now
        storage.abort_multipart(found.key, found.upload_id)
        log.info("upload %s: aborted a multipart upload no upload holds", upload_id)
        aborted += 1
    return aborted
