"""Tier limits and the storage quota.

Tiers are rows of the ``tiers`` table (seeded with free, creator and studio). Storage is
reserved before bytes are written and committed when the file's row is: a reservation is a
conditional update that only succeeds while used + reserved + new stays within the quota, so
concurrent uploads can never end above it. A reservation left by a crashed process is
swept after a while.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, and_, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from faktry import clock
from faktry.db import memo
from faktry.errors import FaktryError
from quotas.ledger import lock_account
from quotas.models import Account, StorageReservation, Tier

GIB = 1024**3
MIB = 1024**2

#: Shipped defaults, written by the migration that creates the table.
DEFAULT_TIERS: dict[str, dict[str, int]] = {
    "free": {
        "storage_quota_bytes": 1 * GIB,
        "max_upload_bytes": 200 * MIB,
        "max_duration_seconds": 15 * 60,
        "max_concurrent_jobs": 1,
        "submits_per_minute": 30,
        "scheduling_weight": 1,
    },
    "creator": {
        "storage_quota_bytes": 100 * GIB,
        "max_upload_bytes": 2 * GIB,
        "max_duration_seconds": 2 * 3600,
        "max_concurrent_jobs": 4,
        "submits_per_minute": 120,
        "scheduling_weight": 3,
    },
    "studio": {
        "storage_quota_bytes": 2048 * GIB,
        "max_upload_bytes": 20 * GIB,
        "max_duration_seconds": 8 * 3600,
        "max_concurrent_jobs": 16,
        "submits_per_minute": 600,
        "scheduling_weight": 10,
    },
}


#: Workflow limits of the shipped tiers (columns added by migration 0007; kept apart from
#: DEFAULT_TIERS, which migration 0002 seeds column for column).
WORKFLOW_TIER_LIMITS: dict[str, dict[str, int]] = {
    "free": {"workflow_max_nodes": 20, "workflow_max_items": 100},
    "creator": {"workflow_max_nodes": 50, "workflow_max_items": 1000},
    "studio": {"workflow_max_nodes": 200, "workflow_max_items": 1000},
}


class StorageQuotaExceeded(FaktryError):
    code = "storage_quota_exceeded"
    status = 413


class MediaTooLong(FaktryError):
    code = "media_too_long"
    status = 422


@dataclass(frozen=True)
class TierLimits:
    name: str
    storage_quota_bytes: int
    max_upload_bytes: int
    max_duration_seconds: int
    max_concurrent_jobs: int
    submits_per_minute: int
    scheduling_weight: int
    workflow_max_nodes: int = WORKFLOW_TIER_LIMITS["free"]["workflow_max_nodes"]
    workflow_max_items: int = WORKFLOW_TIER_LIMITS["free"]["workflow_max_items"]
    #: Days job outputs are kept (`pipelines.retention`); None keeps them.
    output_retention_days: int | None = None


def tier_limits(session: Session, name: str) -> TierLimits:
    row = session.get(Tier, name) or session.get(Tier, "free")
    if row is None:  # an empty table: the shipped defaults
        return TierLimits(name="free", **DEFAULT_TIERS["free"])
    return TierLimits(
        name=row.name,
        storage_quota_bytes=row.storage_quota_bytes,
        max_upload_bytes=row.max_upload_bytes,
        max_duration_seconds=row.max_duration_seconds,
        max_concurrent_jobs=row.max_concurrent_jobs,
        submits_per_minute=row.submits_per_minute,
        scheduling_weight=row.scheduling_weight,
        workflow_max_nodes=row.workflow_max_nodes,
        workflow_max_items=row.workflow_max_items,
        output_retention_days=row.output_retention_days,
    )


#: The `faktry.db.memo` key of a tenant's output retention, as ``(OUTPUT_RETENTION, tenant_id)``.
OUTPUT_RETENTION = "tier.output_retention_days"


def output_retention_days(session: Session, tenant_id: str) -> int | None:
    """Days the tenant's tier keeps job outputs (None: until deleted), read once per
    transaction: a page of files asks for each of them."""
    remembered = memo(session)
    key = (OUTPUT_RETENTION, tenant_id)
    if key not in remembered:
        from faktry.tenancy import Tenant  # the kernel's table; imported here to keep quotas light

        tier = session.scalar(select(Tenant.tier).where(Tenant.id == tenant_id))
        remembered[key] = tier_limits(session, tier or "free").output_retention_days
    days: int | None = remembered[key]
    return days


def output_expires_at(
    session: Session | None, tenant_id: str, origin: str, created_at: datetime
) -> datetime | None:
    """When the scheduler removes a file: ``created_at`` plus the tier's output retention
    for a job's output, None for an upload, a tier that keeps outputs, or a row with no
    session to ask (a detached row)."""
    if origin != "output" or session is None:
        return None
    days = output_retention_days(session, tenant_id)
    return None if days is None else created_at + timedelta(days=days)


class TierCache:
    """Each tenant's tier limits, remembered for ``ttl`` seconds in this process: the job
    path reads them on every submit and every claim, and they change rarely (a purchase, an
    operator). A change made here is seen at once (`forget`); one made by another process
    within ``ttl``."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tenants: dict[str, tuple[float, TierLimits]] = {}

    def cached(self, tenant_id: str) -> TierLimits | None:
        """The tenant's limits if this process knows them still, without a query."""
        with self._lock:
            cached = self._tenants.get(tenant_id)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def limits(self, session: Session, tenant_id: str) -> TierLimits:
        found = self.cached(tenant_id)
        if found is not None:
            return found
        now = time.monotonic()
        from faktry.tenancy import Tenant  # the kernel's table; imported here to keep quotas light

        tier = session.scalar(select(Tenant.tier).where(Tenant.id == tenant_id))
        found = tier_limits(session, tier or "free")
        with self._lock:
            if len(self._tenants) > 10_000:
                self._tenants.clear()
            self._tenants[tenant_id] = (now + self.ttl, found)
        return found

    def forget(self, tenant_id: str | None = None) -> None:
        with self._lock:
            if tenant_id is None:
                self._tenants.clear()
            else:
                self._tenants.pop(tenant_id, None)


def use_storage(session: Session, tenant_id: str, nbytes: int, quota: int) -> None:
    """Count ``nbytes`` of new files as used, in the caller's transaction, or raise
    `StorageQuotaExceeded` (the bytes are written already: the caller removes them)."""
    _within_quota(session, _USE, tenant_id, nbytes, quota)


def _quota_update(**values: Any) -> Update:
    """Apply ``values`` to the tenant's account if used + reserved + ``:n`` stays within
    ``:quota``: one conditional update, so concurrent writers can never end above it. Built
    once, at import (the statement's SQL is then compiled once per database)."""
    return (
        update(Account)
        .where(
            Account.tenant_id == bindparam("tenant"),
            Account.storage_used_bytes + Account.storage_reserved_bytes + _N <= bindparam("quota"),
        )
        .values(**values)
        .returning(Account.tenant_id)
    )


_N = bindparam("n", type_=Account.storage_used_bytes.type)
_USE = _quota_update(storage_used_bytes=Account.storage_used_bytes + _N)
_RESERVE = _quota_update(storage_reserved_bytes=Account.storage_reserved_bytes + _N)


def _within_quota(session: Session, stmt: Update, tenant_id: str, nbytes: int, quota: int) -> None:
    """Run one of the quota updates above, or raise `StorageQuotaExceeded` saying how much
    is free."""
    done = session.connection().execute(stmt, {"tenant": tenant_id, "n": nbytes, "quota": quota}).first()
    if done is not None:
        return
    account = session.execute(
        select(Account.storage_used_bytes, Account.storage_reserved_bytes).where(
            Account.tenant_id == tenant_id
        )
    ).first()
    used = account.storage_used_bytes if account else 0
    free = max(0, quota - used - (account.storage_reserved_bytes if account else 0))
    raise StorageQuotaExceeded(
        f"this needs {nbytes} bytes and {free} bytes of the storage quota are free",
        details={"quota_bytes": quota, "used_bytes": used},
    )


def check_duration(limits: TierLimits, seconds: float | None) -> None:
    if seconds is not None and seconds > limits.max_duration_seconds:
        raise MediaTooLong(
            f"media longer than {limits.max_duration_seconds} s is beyond the {limits.name} tier",
            details={"limit_seconds": limits.max_duration_seconds},
        )


def reserve_storage(
    session: Session, tenant_id: str, nbytes: int, quota: int, *, expires_at: datetime | None = None
) -> StorageReservation:
    """Promise ``nbytes`` to a write, or raise `StorageQuotaExceeded`. Commit it before
    writing the bytes, so other writers see it. A write that may take longer than
    `sweep_reservations`' usual age (an upload arriving in pieces) says until when
    (``expires_at``) the scheduler must leave its reservation alone."""
    lock_account(session, tenant_id)
    _within_quota(session, _RESERVE, tenant_id, nbytes, quota)
    reservation = StorageReservation(tenant_id=tenant_id, bytes=nbytes, expires_at=expires_at)
    session.add(reservation)
    session.flush()
    return reservation


def commit_reservation(session: Session, reservation_id: str) -> bool:
    """The reserved bytes are now stored files: move them from reserved to used. False when
    the reservation was settled already (the scheduler swept it): nothing moved."""
    return _settle(session, reservation_id, used=True)


def cancel_reservation(session: Session, reservation_id: str) -> bool:
    return _settle(session, reservation_id, used=False)


def _settle(session: Session, reservation_id: str, *, used: bool) -> bool:
    row = session.get(StorageReservation, reservation_id)
    if row is None:
        return False
    lock_account(session, row.tenant_id)
    gone = session.execute(
        delete(StorageReservation)
        .where(StorageReservation.id == reservation_id)
        .execution_options(synchronize_session=False)
    )
    if getattr(gone, "rowcount", 0) != 1:
        return False  # settled concurrently (a sweep)
    values = {"storage_reserved_bytes": Account.storage_reserved_bytes - row.bytes}
    if used:
        values["storage_used_bytes"] = Account.storage_used_bytes + row.bytes
    session.execute(
        update(Account)
        .where(Account.tenant_id == row.tenant_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.expunge(row)
    return True


def free_storage(session: Session, tenant_id: str, nbytes: int) -> None:
    lock_account(session, tenant_id)
    session.execute(
        update(Account)
        .where(Account.tenant_id == tenant_id)
        .values(storage_used_bytes=Account.storage_used_bytes - nbytes)
        .execution_options(synchronize_session=False)
    )


def sweep_reservations(session: Session, older_than: timedelta) -> int:
    """Cancel reservations left behind by processes that died mid-write: those past their
    own ``expires_at``, and those without one made more than ``older_than`` ago."""
    now = clock.now()
    left = or_(
        and_(StorageReservation.expires_at.is_(None), StorageReservation.created_at < now - older_than),
        StorageReservation.expires_at < now,
    )
    ids = list(session.scalars(select(StorageReservation.id).where(left).limit(500)))
    for reservation_id in ids:
        cancel_reservation(session, reservation_id)
    return len(ids)
