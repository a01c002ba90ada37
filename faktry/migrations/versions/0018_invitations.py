"""invitations: asking someone by email to join an account with a role

Revision ID: 0018
Revises: 0017
Create Date: 2027-01-20 14:00:00.000000

- ``invitations``: the address, the role, the SHA-256 of the single-use token sent by mail,
  who invited, when it expires, and when it was accepted or revoked (pipelines/invitations.py).
- A tenant's data: on PostgreSQL granted to the application role and protected by row-level
  security exactly as 0006 does. Accepting reads it by its token, before anyone is logged
  in, as the privileged role (like sign-up).
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0018"
down_revision = "0017"
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
TABLE = "invitations"


def _time(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=40), nullable=True),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("accepted_at"),
        _time("revoked_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invitations_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            "ix_invitations_tenant_listing", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("uq_invitations_token_hash", ["token_hash"], unique=True)
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
