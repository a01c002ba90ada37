"""audit log: an account's security events, for its owners and admins

Revision ID: 0017
Revises: 0016
Create Date: 2027-01-20 13:00:00.000000

- ``audit_log``: one row per security event (log-ins and failed log-ins, keys made and
  revoked, members re-roled and removed, exports, deletion requests, staff actions on the
  account): when, what, who (their user id and, copied, their email), how (session, API key,
  staff), about what, from which address, and details. Indexes keep the account's listing
  and its filter by action index ranges, newest first.
- A tenant's data: on PostgreSQL granted to the application role and protected by row-level
  security exactly as 0006 and 0014 do.
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0017"
down_revision = "0016"
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
TABLE = "audit_log"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("at", faktry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("actor_user_id", sa.String(length=40), nullable=True),
        sa.Column("actor_email", sa.String(length=320), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("target", sa.String(length=100), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_audit_log_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_tenant_listing", ["tenant_id", "at", "id"], unique=False)
        batch_op.create_index("ix_audit_log_tenant_action", ["tenant_id", "action", "at", "id"], unique=False)
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
    op.drop_table(TABLE)
