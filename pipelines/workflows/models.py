"""Saved workflows, their versions, and runs with their steps and events.

A workflow is a named graph of jobs saved per tenant; every change appends a version, and
saved versions never change, so a run can always say what it ran. A run keeps its own
snapshot of the graph and inputs anyway (an inline run has no saved workflow at all).

A run has one step row per node *item*: an unmapped node has one item (0), a node that maps
over a list has one per element. A step's job is created at most once per attempt: the
step's ``job_id`` is set by a fenced update in the transaction that creates the job.
``workflow_events`` is the run's history in order, the way ``job_events`` is a job's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

# Run statuses.
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, CANCELED)

# Step statuses: waiting for its inputs, its job queued or running, or ended.
WAITING = "waiting"
QUEUED = "queued"
STEP_RUNNING = "running"
SKIPPED = "skipped"
REUSED = "reused"
STEP_STATUSES = (WAITING, QUEUED, STEP_RUNNING, SUCCEEDED, FAILED, CANCELED, SKIPPED, REUSED)
#: A step in one of these has its outputs (a dependent may start).
STEP_DONE = (SUCCEEDED, REUSED)
STEP_ENDED = (SUCCEEDED, REUSED, FAILED, CANCELED, SKIPPED)


class Workflow(Base, TenantOwned):
    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_workflows_tenant_name"),
        Index("ix_workflows_tenant_listing", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wfl"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    #: The current version (the highest of ``workflow_versions``).
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class WorkflowVersion(Base, TenantOwned):
    __tablename__ = "workflow_versions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_version"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wfv"))
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    graph: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class WorkflowRun(Base, TenantOwned):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_workflow_runs_tenant_idempotency_key"),
        Index("ix_workflow_runs_tenant_listing", "tenant_id", "created_at", "id"),
        Index("ix_workflow_runs_workflow_listing", "workflow_id", "created_at", "id"),
        # The reconciler looks at running runs only.
        Index("ix_workflow_runs_status_updated", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("run"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: The saved workflow and version it ran (None for an inline run). Not a foreign key:
    #: deleting a workflow keeps its runs' history.
    workflow_id: Mapped[str | None] = mapped_column(String(40), default=None)
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    #: What ran: the graph and the run inputs as given.
    graph: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=RUNNING)
    #: Millicredits: what the run's hold was for (the latest attempt's quote), and what its
    #: steps' jobs were charged in all.
    quote: Mapped[int] = mapped_column(BigInteger, default=0)
    charged: Mapped[int] = mapped_column(BigInteger, default=0)
    reuse: Mapped[bool] = mapped_column(Boolean, default=False)
    #: 1, then one more for each retry of the same run.
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkflowStep(Base, TenantOwned):
    __tablename__ = "workflow_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "node", "item", name="uq_workflow_steps_run_node_item"),
        Index("ix_workflow_steps_run_job", "run_id", "job_id"),
        # Reuse looks for a succeeded step of the same tenant with the same key.
        Index("ix_workflow_steps_reuse", "tenant_id", "reuse_key"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("stp"))
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    node: Mapped[str] = mapped_column(String(40))
    #: The element of the mapped list this step runs on; 0 for an unmapped node.
    item: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default=WAITING)
    #: The run attempt that (re)started this step.
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: The file ids the step produced, in order.
    outputs: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Millicredits: the price quoted for this item, and what its job was charged.
    price: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    error_message: Mapped[str | None] = mapped_column(String(500), default=None)
    #: SHA-256 of (type, canonical params, input files' checksums): what reuse matches on.
    reuse_key: Mapped[str | None] = mapped_column(String(64), default=None)
    reused_from: Mapped[str | None] = mapped_column(String(40), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkflowEvent(Base, TenantOwned):
    __tablename__ = "workflow_events"
    __table_args__ = (Index("ix_workflow_events_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    #: started, step_queued, step_started, step_succeeded, step_failed, step_skipped,
    #: step_reused, step_canceled, retried, cancel_requested, succeeded, failed, canceled
    kind: Mapped[str] = mapped_column(String(30))
    node: Mapped[str | None] = mapped_column(String(40), default=None)
    item: Mapped[int | None] = mapped_column(Integer, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
