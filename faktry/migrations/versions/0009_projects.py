"""projects: a tenant's video projects

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-21 12:00:00.000000

- ``projects`` holds a tenant's video projects (name, description, idea, style, format,
  target length, brand, voice, music, scenes in order, the run of the latest render; the
  structured parts as JSON). Deleting a brand leaves its projects without one.
- It holds a tenant's data, so on PostgreSQL it is granted to the application role and
  protected by row-level security exactly as migration 0006 does for the older tables (the
  ``faktry_tenant`` and ``faktry_privileged`` policies).
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0009"
down_revision = "0008"
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
TABLES = ("projects",)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("idea", sa.Text(), nullable=False),
        sa.Column("style", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.String(length=40), nullable=True),
        sa.Column("voice", sa.JSON(), nullable=False),
        sa.Column("music", sa.JSON(), nullable=True),
        sa.Column("scenes", sa.JSON(), nullable=False),
        sa.Column("last_run_id", sa.String(length=40), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_projects_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_projects_brand_id_brands"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index("ix_projects_tenant_listing", ["tenant_id", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_projects_brand_id"), ["brand_id"], unique=False)
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
        op.drop_table(table)  # policies and the indexes go with their table
