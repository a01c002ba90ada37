"""Retention sweeps: what the privacy policy says faktry keeps only for a while, removed by
the scheduler's pass (`pipelines.reconcile`), each sweep bounded and safe to repeat.

- Ledger entries older than ``ledger_retention_days`` (seven years by default): each
  tenant's old entries of one lot become one ``carried`` entry holding their sums
  (`quotas.ledger.carry_forward`), so balances and ``faktry ledger check`` stay exact.
- Job outputs of a tier with ``output_retention_days``: a file a job made (never an upload)
  is removed that many days after it was made, its stored objects and rows together, and
  its bytes given back to the storage quota, exactly as a delete by the tenant
  (`pipelines.files.delete_file`). Until then its API answer says when
  (``expires_at``, `quotas.limits.output_expires_at`). A tier without it keeps outputs.
- Export archives past their expiry (``export_archive_hours`` after they were built): their
  zips are removed and the archives marked expired (`pipelines.exports.store.expire`).
- The moderation log's 12 months are `pipelines.moderation.sweep`'s.

Each file is removed in a transaction of its own, its stored objects after the commit: a
crash in between leaves objects without rows, which ``faktry storage check`` reports, never
rows without objects. A file deleted meanwhile by its tenant is passed by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import transaction
from faktry.errors import NotFound
from faktry.tenancy import Tenant
from pipelines import files
from pipelines.exports import store as exports
from quotas import ledger
from quotas.limits import output_expires_at
from quotas.models import Tier
from storage.interface import Storage
from storage.models import File

log = logging.getLogger("faktry.retention")

#: Output files one pass removes at most; the next pass takes the rest.
BATCH = 500


@dataclass(frozen=True)
class Swept:
    ledger_entries_deleted: int = 0
    ledger_entries_carried: int = 0
    outputs_removed: int = 0
    archives_expired: int = 0


def sweep(sessions: sessionmaker[Session], storage: Storage, *, ledger_retention_days: int) -> Swept:
    """One pass of the ledger's, the outputs' and the export archives' retention."""
    carried = purge_ledger(sessions, ledger_retention_days)
    removed = remove_expired_outputs(sessions, storage)
    expired = exports.expire(sessions, storage)
    return Swept(carried.deleted, carried.written, len(removed), expired)


def purge_ledger(sessions: sessionmaker[Session], days: int) -> ledger.Carried:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"ledger retention must be a whole number of days above 0, not {days!r}")
    with transaction(sessions) as session:
        return ledger.carry_forward(session, clock.now() - timedelta(days=days))


def expired_outputs(session: Session, now: datetime, *, limit: int = BATCH) -> list[str]:
    """Ids of the output files (roots, whose members go with them) that their tenant's tier
    no longer keeps at ``now``, oldest first."""
    tiers = {name: days for name, days in session.execute(select(Tier.name, Tier.output_retention_days))}
    found: list[tuple[datetime, str]] = []
    for name, days in tiers.items():
        if days is None:
            continue
        of_tier = Tenant.tier == name
        if name == "free":  # a tenant whose tier is not a row has the free tier's limits
            of_tier = or_(of_tier, Tenant.tier.not_in(list(tiers)))
        rows = session.execute(
            select(File.created_at, File.id)
            .join(Tenant, Tenant.id == File.tenant_id)
            .where(
                of_tier,
                File.origin == "output",
                File.root_id.is_(None),
                File.created_at <= now - timedelta(days=days),
            )
            .order_by(File.created_at, File.id)
            .limit(limit)
        )
        found += [(created, file_id) for created, file_id in rows]
    return [file_id for _, file_id in sorted(found)[:limit]]


def _remove_if_expired(session: Session, file_id: str) -> list[str] | None:
    """Delete the file if it is still past its tier's retention (the tier may have changed
    since it was found); the storage keys to remove after the commit, or None."""
    row = files.get_file(session, file_id)
    expires = output_expires_at(session, row.tenant_id, row.origin, row.created_at)
    if expires is None or expires > clock.now():
        return None
    return files.delete_file(session, file_id)


def remove_expired_outputs(sessions: sessionmaker[Session], storage: Storage) -> list[str]:
    """Remove the output files past their tier's retention; returns their ids."""
    with transaction(sessions) as session:
        due = expired_outputs(session, clock.now())
    removed = []
    for file_id in due:
        try:
            with transaction(sessions) as session:
                keys = _remove_if_expired(session, file_id)
        except NotFound:
            continue  # deleted by its tenant meanwhile
        if keys is None:
            continue
        removed.append(file_id)
        for key in keys:
            try:
                storage.delete(key)
            except Exception:  # the row is gone; `faktry storage check` reports the object
                log.warning("retention: file %s: stored object %s not deleted", file_id, key, exc_info=True)
    if removed:
        log.info("retention: removed %d output file(s) past their tier's retention", len(removed))
    return removed
