"""gallery: the prompt gallery's entries; the moderation log keeps why staff removed one

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-08 12:00:00.000000

- ``gallery_entries``: one row per job a tenant published (pipelines/gallery): a public id of
  its own (``gal_...``), a copy of the prompt, model, job type and parameters, the storage
  key of the entry's own copy of the output, the category and display name, and its status
  (``published`` or ``removed`` by staff, with the reason). Indexes keep the public listing
  and each of its filters an index range, newest first.
- ``moderation_log.reason``: why staff removed a gallery entry (action ``removed``).
- The entries are a tenant's data: on PostgreSQL they are granted to the application role
  and protected by row-level security exactly as 0006 and 0010 do. The public gallery reads
  them without a tenant, as the privileged role (like sign-up), and shows published entries
  only (docs/operations.md, "Row-level security").
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0013"
down_revision = "0012"
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
TABLE = "gallery_entries"


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("moderation_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=True),
        sa.Column("storage_key", sa.String(length=900), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("job_type", sa.String(length=60), nullable=False),
        sa.Column("model", sa.String(length=60), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=30), nullable=False),
        sa.Column("display_name", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("removed_reason", sa.Text(), nullable=True),
        _time("removed_at", nullable=True),
        _time("created_at"),
        sa.CheckConstraint(
            "status IN ('published', 'removed')", name=op.f("ck_gallery_entries_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_gallery_entries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gallery_entries")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index("ix_gallery_entries_public", ["status", "created_at", "id"], unique=False)
        for column in ("category", "model", "kind"):
            batch_op.create_index(
                f"ix_gallery_entries_public_{column}", ["status", column, "created_at", "id"], unique=False
            )
        batch_op.create_index(
            "ix_gallery_entries_tenant_listing", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("uq_gallery_entries_tenant_job", ["tenant_id", "job_id"], unique=True)
    _protect()


def _protect() -> None:
    """Grants and row-level security for the new table, as 0006 does (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    role = _rls._role(bind)
    owner = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_user"))))
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {role}")
    _rls._protect(TABLE, owner)
    op.execute(f"CREATE POLICY faktry_tenant ON {TABLE} USING ({_MINE}) WITH CHECK ({_MINE})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"REVOKE ALL ON {TABLE} FROM {_rls._role(bind)}")
    op.drop_table(TABLE)  # policies and indexes go with their table
    with op.batch_alter_table("moderation_log", schema=None) as batch_op:
        batch_op.drop_column("reason")
