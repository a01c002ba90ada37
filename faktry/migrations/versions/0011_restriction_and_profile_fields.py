"""restriction of processing; the profile's birthday and location

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-05 12:00:00.000000

- ``tenants.restricted_at``: since when the person has restricted processing of the
  account (null: not restricted). No new job or run starts while it is set.
- ``users.birthday`` (a date) and ``users.location`` (short text): the profile fields the
  privacy policy names, both optional.
- No new table: the row-level security of ``tenants`` and ``users`` (0006) covers them.
"""

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("restricted_at", faktry.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("birthday", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("location", sa.String(length=100), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("location")
        batch_op.drop_column("birthday")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("restricted_at")
