"""retention: a tier may keep job outputs for a number of days

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-04 12:00:00.000000

- ``tiers.output_retention_days`` (nullable): days the scheduler keeps a job's output
  files before it removes them (`pipelines.retention`). NULL keeps them until the tenant
  deletes them; the shipped tiers keep that. A CHECK keeps it above 0.

No table is added, so no grant or row-level security policy changes. The ledger's seven
years need no schema: purged entries are replaced by ``carried`` entries of the same table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_retention_days", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_tiers_output_retention_positive"),
            "output_retention_days IS NULL OR output_retention_days > 0",
        )


def downgrade() -> None:
    with op.batch_alter_table("tiers", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_tiers_output_retention_positive"), type_="check")
        batch_op.drop_column("output_retention_days")
