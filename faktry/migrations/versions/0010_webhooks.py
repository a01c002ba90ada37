"""webhooks: endpoints, the outbox of messages, the attempt log, per-job signing keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-28 12:00:00.000000

- ``webhook_endpoints``: a tenant's endpoints (URL, event types, secret and the previous
  secret during a rotation) and the per-job webhooks given with a job or a workflow run
  (``subject_id``).
- ``webhook_messages``: the outbox, one row per event and endpoint, written in the event's
  transaction; the scheduler sweeps it by ``(status, next_attempt_at)``.
- ``webhook_attempts``: one row per delivery attempt.
- ``webhook_signing_keys``: the secret a tenant's per-job webhooks are signed with.
- ``accounts.webhooks``: whether the tenant has an enabled endpoint, read by the job path
  with the account row it reads anyway, so tenants without webhooks pay no lookup.
- They hold a tenant's data, so on PostgreSQL they are granted to the application role and
  protected by row-level security exactly as migration 0006 does for the older tables.
"""

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

import faktry.db

revision = "0010"
down_revision = "0009"
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
TABLES = ("webhook_endpoints", "webhook_messages", "webhook_attempts", "webhook_signing_keys")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def _tenant(table: str) -> list[Any]:
    return [
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhooks", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        *_tenant("webhook_endpoints"),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=60), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        _time("previous_until", nullable=True),
        sa.Column("subject_id", sa.String(length=40), nullable=True),
        _time("failing_since", nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_endpoints_tenant_listing", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_webhook_endpoints_subject", ["subject_id"], unique=False)
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        *_tenant("webhook_messages"),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at"),
        _time("locked_until", nullable=True),
        sa.Column("lock_token", sa.String(length=40), nullable=True),
        _time("created_at"),
        _time("delivered_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_messages_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_messages")),
    )
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_messages_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_webhook_messages_endpoint_listing", ["endpoint_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_webhook_messages_subject", ["subject_id"], unique=False)
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        *_tenant("webhook_attempts"),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        _time("at"),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["webhook_messages.id"],
            name=op.f("fk_webhook_attempts_message_id_webhook_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempts_message", ["message_id", "id"], unique=False)
        batch_op.create_index("ix_webhook_attempts_endpoint", ["endpoint_id", "id"], unique=False)
    op.create_table(
        "webhook_signing_keys",
        *_tenant("webhook_signing_keys"),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        _time("previous_until", nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_webhook_signing_keys")),
    )
    _protect_tenant_tables()


def _protect_tenant_tables() -> None:
    """Grants and row-level security for the new tables, as 0006 does (PostgreSQL only)."""
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
    # The attempt log's ids come from a sequence the application role must be able to use.
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE webhook_attempts_id_seq TO {role}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        role = _rls._role(bind)
        for table in TABLES:
            op.execute(f"REVOKE ALL ON {table} FROM {role}")
        op.execute(f"REVOKE ALL ON SEQUENCE webhook_attempts_id_seq FROM {role}")
    for table in reversed(TABLES):
        op.drop_table(table)  # policies and indexes go with their table
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("webhooks")
