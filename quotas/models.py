"""Credits, holds, the ledger, tiers and storage usage.

Money is counted in integer millicredits (1 credit = 1,000), never floats. Credits arrive
in lots (a purchase, a grant, a refund) that expire a year after they were bought; a hold
is backed by specific lots (`HoldAllocation`). Every movement is an append-only
`LedgerEntry` with a unique idempotency key, so replaying an event changes nothing; the
``available`` and ``held`` deltas of a lot's entries always add up to that lot's
``remaining`` and ``held`` (``faktry ledger check`` proves it). CHECK constraints keep the
numbers from going negative even if code goes wrong.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock, tenancy  # noqa: F401  (the tables these rows point at)
from faktry.db import Base, TenantOwned, new_id

MILLI = 1000


class Tier(Base):
    """A subscription tier's limits. Rows are data: operators change them without a deploy."""

    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint(
            "output_retention_days IS NULL OR output_retention_days > 0", name="output_retention_positive"
        ),
    )

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    storage_quota_bytes: Mapped[int] = mapped_column(BigInteger)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    max_duration_seconds: Mapped[int] = mapped_column(Integer)
    max_concurrent_jobs: Mapped[int] = mapped_column(Integer)
    submits_per_minute: Mapped[int] = mapped_column(Integer)
    scheduling_weight: Mapped[int] = mapped_column(Integer)
    #: Workflows: nodes per graph, and items per mapped list (a fan-out's width).
    workflow_max_nodes: Mapped[int] = mapped_column(Integer, default=20)
    workflow_max_items: Mapped[int] = mapped_column(Integer, default=100)
    #: Days a job's output files are kept before the scheduler removes them; None keeps
    #: them until the tenant deletes them (uploads are never removed).
    output_retention_days: Mapped[int | None] = mapped_column(Integer, default=None)


#: The `faktry.db.memo` key under which a transaction keeps what it read of
#: ``accounts.webhooks``, as ``(WEBHOOKS, tenant_id)``.
WEBHOOKS = "account.webhooks"


class Account(Base):
    """Per-tenant money and storage state that must change atomically.

    The row is the tenant's lock: every credit movement of a tenant first locks it, so
    movements of one tenant are serialized while tenants never wait for each other.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("debt >= 0", name="debt_not_negative"),
        CheckConstraint("storage_used_bytes >= 0", name="storage_used_not_negative"),
        CheckConstraint("storage_reserved_bytes >= 0", name="storage_reserved_not_negative"),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    #: Refunded credits that had already been spent; new jobs are refused while it is owed.
    debt: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100), default=None, unique=True)
    #: Whether the tenant has an enabled webhook endpoint (its own or a job's): the job path
    #: reads it with the rows it locks or changes anyway, and looks for endpoints only when
    #: it is set (`pipelines.webhooks.endpoints.refresh_flag` keeps it true to the table).
    webhooks: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class CreditLot(Base, TenantOwned):
    __tablename__ = "credit_lots"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0", name="remaining_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("remaining + held <= amount", name="within_amount"),
        Index("ix_credit_lots_spending", "tenant_id", "expires_at", "id"),
        Index("ix_credit_lots_expiry", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("lot"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: purchase, grant, refund (credits given back), starter
    source: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What bought it: a Stripe payment intent, a grant's reason, a refunded job.
    reference: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()


class Hold(Base, TenantOwned):
    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("captured >= 0 AND captured <= amount", name="captured_within_amount"),
        Index("ix_holds_status", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("hld"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger, default=0)
    #: held, captured, released
    status: Mapped[str] = mapped_column(String(20), default="held")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class HoldAllocation(Base):
    __tablename__ = "hold_allocations"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    hold_id: Mapped[str] = mapped_column(ForeignKey("holds.id", ondelete="CASCADE"), primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("credit_lots.id", ondelete="CASCADE"), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class LedgerEntry(Base, TenantOwned):
    """One movement. ``available`` and ``held`` are the deltas it made to its lot."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
        Index("ix_ledger_entries_tenant", "tenant_id", "created_at", "id"),
        Index("ix_ledger_entries_lot", "lot_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("txn"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: grant, purchase, starter, hold, capture, release, expiry, refund, adjustment, debt, split
    kind: Mapped[str] = mapped_column(String(20))
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Debt owed (positive) or paid off (negative) by this entry; no lot is involved.
    debt: Mapped[int] = mapped_column(BigInteger, default=0)
    lot_id: Mapped[str | None] = mapped_column(String(40), default=None)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    memo: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class StorageReservation(Base, TenantOwned):
    """Bytes promised to an upload or a job's outputs while they are written to storage."""

    __tablename__ = "storage_reservations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rsv"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
    #: When the scheduler may cancel it as left behind (`quotas.limits.sweep_reservations`);
    #: None means an hour after it was made. An upload that takes its time (a resumable
    #: upload, pipelines/uploads) keeps its reservation as long as the upload lives.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class StripeEvent(Base):
    """Stripe events already applied (by event id), and refunds waiting for their purchase."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    #: applied, parked (waits for an earlier event), ignored
    status: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    payload: Mapped[str] = mapped_column(String, default="")
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
