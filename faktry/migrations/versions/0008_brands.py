"""brands: a tenant's brand guidelines

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 12:00:00.000000

- ``brands`` holds a tenant's brand guidelines (name, description, tagline, logo file id,
  palette, typography, voice, audience, personas, mood image file ids, design-system notes;
  the structured parts as JSON). A name is unique within a tenant.
- It holds a tenant's data, so on PostgreSQL it is granted to the application role and
  protected by row-level security exactly as migration 0006 does for the older tables (the
  ``faktry_tenant`` and ``faktry_privileged`` policies).
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0008"
down_revision = "0007"
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
TABLES = ("brands",)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tagline", sa.String(length=200), nullable=False),
        sa.Column("logo_file_id", sa.String(length=40), nullable=True),
        sa.Column("colors", sa.JSON(), nullable=False),
        sa.Column("typography", sa.JSON(), nullable=False),
        sa.Column("voice", sa.JSON(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("personas", sa.JSON(), nullable=False),
        sa.Column("mood_file_ids", sa.JSON(), nullable=False),
        sa.Column("design_notes", sa.Text(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_brands_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brands")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_brands_tenant_name"),
    )
    with op.batch_alter_table("brands", schema=None) as batch_op:
        batch_op.create_index("ix_brands_tenant_listing", ["tenant_id", "created_at", "id"], unique=False)
    _protect_tenant_tables()


def _protect_tenant_tables() -> None:
    """Grants and row-level security for the new table, as 0006 does (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    role = _rls._role(bind)
    owner = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_user"))))
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
    for table in TABLES:
        _rls._protect(table, owner)
        op.execute(f"CREATE POLICY faktry_tenant ON {table} USING ({_MINE}) WITH CHECK ({_MINE})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        role = _rls._role(bind)
        for table in TABLES:
            op.execute(f"REVOKE ALL ON {table} FROM {role}")
    for table in reversed(TABLES):
        op.drop_table(table)  # policies and the index go with their table
