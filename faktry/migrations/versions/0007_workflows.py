"""workflows: saved graphs, their versions, runs, steps and events; jobs.run_id; tier limits

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 12:00:00.000000

- ``workflows``, ``workflow_versions``, ``workflow_runs``, ``workflow_steps`` and
  ``workflow_events`` hold a tenant's data, so on PostgreSQL each is granted to the
  application role and protected by row-level security exactly as migration 0006 does for
  the older tables (the ``faktry_tenant`` and ``faktry_privileged`` policies), with the
  events' id sequence granted too.
- ``jobs.run_id`` (nullable, indexed) names the run a job is a step of.
- ``tiers`` gets ``workflow_max_nodes`` and ``workflow_max_items``; the shipped tiers get
  their values (quotas/limits.py ``WORKFLOW_TIER_LIMITS``), any other tier the free tier's.
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _load_0006():  # type: ignore[no-untyped-def]
    """Migration 0006, whose grant and policy helpers this one reuses."""
    path = Path(__file__).with_name("0006_row_level_security.py")
    spec = importlib.util.spec_from_file_location("faktry_migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rls = _load_0006()

_MINE = "tenant_id = current_setting('faktry.tenant_id', true)"
TABLES = ("workflows", "workflow_versions", "workflow_runs", "workflow_steps", "workflow_events")
#: Frozen here, like 0006's lists.
TIER_LIMITS = {
    "free": {"workflow_max_nodes": 20, "workflow_max_items": 100},
    "creator": {"workflow_max_nodes": 50, "workflow_max_items": 1000},
    "studio": {"workflow_max_nodes": 200, "workflow_max_items": 1000},
}


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_workflows_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_workflows_tenant_name"),
    )
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.create_index("ix_workflows_tenant_listing", ["tenant_id", "created_at", "id"], unique=False)

    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("graph", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_versions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_versions")),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_version"),
    )

    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("graph", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("quote", sa.BigInteger(), nullable=False),
        sa.Column("charged", sa.BigInteger(), nullable=False),
        sa.Column("reuse", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_workflow_runs_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_workflow_runs_tenant_idempotency_key"),
    )
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_workflow_runs_tenant_listing", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_workflow_runs_workflow_listing", ["workflow_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_workflow_runs_status_updated", ["status", "updated_at"], unique=False)

    op.create_table(
        "workflow_steps",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("node", sa.String(length=40), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("reuse_key", sa.String(length=64), nullable=True),
        sa.Column("reused_from", sa.String(length=40), nullable=True),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_workflow_steps_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_steps")),
        sa.UniqueConstraint("run_id", "node", "item", name="uq_workflow_steps_run_node_item"),
    )
    with op.batch_alter_table("workflow_steps", schema=None) as batch_op:
        batch_op.create_index("ix_workflow_steps_run_job", ["run_id", "job_id"], unique=False)
        batch_op.create_index("ix_workflow_steps_reuse", ["tenant_id", "reuse_key"], unique=False)

    op.create_table(
        "workflow_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        _time("at"),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("node", sa.String(length=40), nullable=True),
        sa.Column("item", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_workflow_events_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_events")),
    )
    with op.batch_alter_table("workflow_events", schema=None) as batch_op:
        batch_op.create_index("ix_workflow_events_run", ["run_id", "id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_run_id"), ["run_id"], unique=False)

    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("workflow_max_nodes", sa.Integer(), nullable=False, server_default=sa.text("20"))
        )
        batch_op.add_column(
            sa.Column("workflow_max_items", sa.Integer(), nullable=False, server_default=sa.text("100"))
        )
    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.alter_column("workflow_max_nodes", server_default=None)
        batch_op.alter_column("workflow_max_items", server_default=None)
    tiers = sa.table(
        "tiers",
        sa.column("name", sa.String),
        sa.column("workflow_max_nodes", sa.Integer),
        sa.column("workflow_max_items", sa.Integer),
    )
    for name, limits in TIER_LIMITS.items():
        op.execute(tiers.update().where(tiers.c.name == name).values(**limits))

    _protect_tenant_tables()


def _protect_tenant_tables() -> None:
    """Grants and row-level security for the new tables, as 0006 does (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    role = _rls._role(bind)
    owner = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_user"))))
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
    for sequence in _rls._sequences(bind, list(TABLES)):
        op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {role}")
    for table in TABLES:
        _rls._protect(table, owner)
        op.execute(f"CREATE POLICY faktry_tenant ON {table} USING ({_MINE}) WITH CHECK ({_MINE})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        role = _rls._role(bind)
        for sequence in _rls._sequences(bind, list(TABLES)):
            op.execute(f"REVOKE ALL ON SEQUENCE {sequence} FROM {role}")
        for table in TABLES:
            op.execute(f"REVOKE ALL ON {table} FROM {role}")
    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.drop_column("workflow_max_items")
        batch_op.drop_column("workflow_max_nodes")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_run_id"))
        batch_op.drop_column("run_id")
    for table in reversed(TABLES):
        op.drop_table(table)  # policies go with their table
