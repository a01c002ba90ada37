"""mail: an outbox of account mails, the tokens their links carry, verified addresses

Revision ID: 0015
Revises: 0014
Create Date: 2027-01-22 12:00:00.000000

- ``mail_messages``: the outbox (pipelines/mail): one row per mail with its rendered
  subject and bodies, its status (``pending``, ``sent``, ``failed``), its attempts, the
  sender's lock, how it left (``smtp`` or ``kept``) and an optional unique ``dedupe_key``.
  ``tenant_id`` may be null (a mail about no account).
- ``account_tokens``: the SHA-256 of each single-use token of a verification or password
  reset link, its expiry and when it was used.
- ``users.email_verified_at``: when the person verified the address. People who had an
  account before this migration count as verified (it is set to the migration's time).
- Both tables are a tenant's data: on PostgreSQL they are granted to the application role
  and protected by row-level security as 0006 does (a mail with no tenant is seen by the
  privileged role only).
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import faktry.db
from faktry import clock

revision = "0015"
down_revision = "0014"
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
TABLES = ("mail_messages", "account_tokens")


def _time(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, faktry.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mail_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at", nullable=False),
        _time("locked_until"),
        sa.Column("lock_token", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("transport", sa.String(length=10), nullable=True),
        sa.Column("dedupe_key", sa.String(length=120), nullable=True),
        _time("created_at", nullable=False),
        _time("sent_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mail_messages_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_mail_messages_dedupe_key")),
    )
    with op.batch_alter_table("mail_messages", schema=None) as batch_op:
        batch_op.create_index("ix_mail_messages_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_mail_messages_tenant_listing", ["tenant_id", "created_at", "id"], unique=False
        )
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("used_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_account_tokens_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    with op.batch_alter_table("account_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_account_tokens_user", ["user_id", "purpose"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(_time("email_verified_at"))
    # Everyone who has an account already counts as verified.
    users = sa.table("users", _time("email_verified_at"))
    op.execute(users.update().values(email_verified_at=clock.now()))
    _protect()


def _protect() -> None:
    """Grants and row-level security for the new tables, as 0006 does (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    role = _rls._role(bind)
    owner = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_user"))))
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        _rls._protect(table, owner)
        op.execute(f"CREATE POLICY faktry_tenant ON {table} USING ({_MINE}) WITH CHECK ({_MINE})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"REVOKE ALL ON {table} FROM {_rls._role(bind)}")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_verified_at")
    op.drop_table("account_tokens")
    op.drop_table("mail_messages")
