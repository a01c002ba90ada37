"""uploads: resumable (tus) and direct-to-S3 uploads, and reservations that last as long as they do

Revision ID: 0019
Revises: 0018
Create Date: 2027-01-27 12:00:00.000000

- ``uploads``: one row per upload that arrives in pieces (pipelines/uploads): its protocol
  (``tus``, ``s3_multipart``), the name and size the client declared, the bytes received so
  far (the tus offset), where they are staged, the S3 multipart upload holding them, its storage reservation,
  its status (``pending``, ``completed``, ``failed``, ``expired``, ``cancelled``), the file it
  became or the code it failed with, the lock of the request writing to it, and its expiry.
- ``storage_reservations.expires_at``: when the scheduler may cancel a reservation; null
  keeps the rule of before (an hour after it was made). An upload's reservation lasts as
  long as the upload.
- A tenant's data: on PostgreSQL granted to the application role and protected by row-level
  security exactly as 0006 and 0018 do.
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0019"
down_revision = "0018"
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
TABLE = "uploads"


def _time(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("protocol", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("staging_key", sa.String(length=900), nullable=False),
        sa.Column("s3_upload_id", sa.String(length=1024), nullable=True),
        sa.Column("part_size", sa.BigInteger(), nullable=True),
        sa.Column("reservation_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("final_key", sa.String(length=900), nullable=True),
        sa.Column("file_id", sa.String(length=40), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("lock_token", sa.String(length=40), nullable=True),
        _time("locked_until"),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.CheckConstraint("protocol IN ('tus', 's3_multipart')", name=op.f("ck_uploads_protocol_known")),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'expired', 'cancelled')",
            name=op.f("ck_uploads_status_known"),
        ),
        sa.CheckConstraint(
            "received >= 0 AND received <= size", name=op.f("ck_uploads_received_within_size")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_uploads_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index("ix_uploads_tenant_listing", ["tenant_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_uploads_status_expires", ["status", "expires_at"], unique=False)
    with op.batch_alter_table("storage_reservations", schema=None) as batch_op:
        batch_op.add_column(_time("expires_at"))
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
    with op.batch_alter_table("storage_reservations", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    op.drop_table(TABLE)  # policies and indexes go with their table
