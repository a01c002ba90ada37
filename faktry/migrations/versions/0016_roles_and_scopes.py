"""roles and scopes: API keys carry scopes and may expire; a person's role is one of five

Revision ID: 0016
Revises: 0015
Create Date: 2027-01-20 12:00:00.000000

- ``api_keys.scopes`` (JSON list, null for the keys made before: they keep every scope their
  maker's role has) and ``api_keys.expires_at`` (null: never).
- ``users.role`` is checked to be one of owner, admin, developer, billing, viewer
  (`faktry.permissions.ROLES`); every existing person is an owner.
"""

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", faktry.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_check_constraint(
            "role_known", "role IN ('owner', 'admin', 'developer', 'billing', 'viewer')"
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role_known"), type_="check")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
