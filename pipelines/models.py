"""Jobs, their events and their outputs.

A job row exists before its message does (enqueue after commit). Its ``status`` moves
queued → running → succeeded | failed | canceled, and every change is appended to
``job_events``; status pages, streams, webhooks and metrics read from there.

Attempts are fenced: claiming a job sets a fresh ``lease_token``; a worker may only
record outcomes while its token is the job's, so two deliveries of one message never
leave two sets of outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id
from quotas import models as _quota_models  # noqa: F401  (tables the migrations compare)

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
FINISHED = (SUCCEEDED, FAILED, CANCELED)


class Job(Base, TenantOwned):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_listing", "tenant_id", "created_at", "id"),
        # Listing a tenant's jobs by status stays an index range however long its history.
        Index("ix_jobs_tenant_status_listing", "tenant_id", "status", "created_at", "id"),
        Index("ix_jobs_status_updated", "status", "updated_at"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    input_file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: The validated ``input`` of the request: file ids, prompts.
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: For generation jobs: the catalog model, the provider that runs it, and the provider's
    #: request id once submitted (saved before waiting, so a redelivery re-attaches to it).
    model: Mapped[str | None] = mapped_column(String(60), default=None)
    provider: Mapped[str | None] = mapped_column(String(20), default=None)
    provider_request_id: Mapped[str | None] = mapped_column(String(200), default=None)
    provider_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    #: Facts a job reports besides files (``media.probe`` puts the probe here).
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    queue: Mapped[str] = mapped_column(String(60))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    error_message: Mapped[str | None] = mapped_column(String(500), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Millicredits: the price quoted at submit, the amount held for it, what it was charged.
    cost_estimated: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_held: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_charged: Mapped[int | None] = mapped_column(BigInteger, default=None)
    lease_token: Mapped[str | None] = mapped_column(String(40), default=None)
    #: The workflow run this job is a step of (its step is the run's step with this job_id).
    run_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    #: When a message for the job was last handed to the broker (the reconciler resends
    #: queued jobs whose message went missing).
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class JobEvent(Base, TenantOwned):
    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    #: created, enqueued, started, retrying, cancel_requested, succeeded, failed, canceled, requeued
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobOutput(Base, TenantOwned):
    __tablename__ = "job_outputs"
    __table_args__ = (Index("ix_job_outputs_job", "job_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("out"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(60))
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)


class ModerationEntry(Base):
    """A flagged or blocked prompt, kept for safety audits for at most 12 months.

    Visible to staff only. Holds the prompt text as submitted, the category, the endpoint
    and model it was for, and the tenant (a pseudonymous id, never a person's details).
    """

    __tablename__ = "moderation_log"
    __table_args__ = (
        Index("ix_moderation_log_at", "at"),
        Index("ix_moderation_log_tenant", "tenant_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mod"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    #: blocked (refused with 422), flagged (allowed, but over the borderline score), or
    #: removed (a gallery entry staff took down; ``reason`` says why)
    action: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(60))
    score: Mapped[float] = mapped_column(Float)
    #: local or openai: which pass decided
    source: Mapped[str] = mapped_column(String(20))
    endpoint: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    prompt: Mapped[str] = mapped_column(Text)
    #: Why staff removed a gallery entry (action ``removed``); null otherwise.
    reason: Mapped[str | None] = mapped_column(Text, default=None)


# The workflow tables live beside the jobs they run, the brand and project tables in their
# own packages; importing them here registers them wherever the job tables are (migrations,
# tests, the account export).
from pipelines import invitations as _invitation_models  # noqa: E402, F401
from pipelines.audit import models as _audit_models  # noqa: E402, F401
from pipelines.brands import models as _brand_models  # noqa: E402, F401
from pipelines.exports import models as _export_models  # noqa: E402, F401
from pipelines.gallery import models as _gallery_models  # noqa: E402, F401
from pipelines.mail import models as _mail_models  # noqa: E402, F401
from pipelines.projects import models as _project_models  # noqa: E402, F401
from pipelines.webhooks import models as _webhook_models  # noqa: E402, F401
from pipelines.workflows import models as _workflow_models  # noqa: E402, F401
