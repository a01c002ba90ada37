"""export archives: an account's export as a zip with its media files, built in the background

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-15 12:00:00.000000

- ``export_archives``: one row per archive a tenant asked for (pipelines/exports): its status
  (``queued``, ``building``, ``ready``, ``expired``, ``failed``), the starts of its build
  (``attempts``, which fence them), the build's sign of life, where the zip is stored, its
  size, checksum and media file count, and when it expires.
- The archives are a tenant's data: on PostgreSQL they are granted to the application role
  and protected by row-level security exactly as 0006 and 0013 do.
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0014"
down_revision = "0013"
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
TABLE = "export_archives"


def _time(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=900), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        _time("created_at", nullable=False),
        _time("started_at"),
        _time("heartbeat_at"),
        _time("finished_at"),
        _time("expires_at"),
        sa.CheckConstraint(
            "status IN ('queued', 'building', 'ready', 'expired', 'failed')",
            name=op.f("ck_export_archives_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_export_archives_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_archives")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            "ix_export_archives_tenant_listing", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_export_archives_status_heartbeat", ["status", "heartbeat_at"], unique=False)
        batch_op.create_index("ix_export_archives_status_expires", ["status", "expires_at"], unique=False)
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
