"""row-level security on every table that holds a tenant's data

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00.000000

PostgreSQL only (on SQLite this does nothing; faktry's ORM scoping is the isolation there).

- The application role (``FAKTRY_DATABASE_APP_ROLE``, ``faktry_app``) is created NOLOGIN if
  it does not exist, and the migrating role (the owner of the tables, the one the database
  URL names) is made a member, so that it can ``SET ROLE`` to it. A role that could bypass
  the policies (superuser or BYPASSRLS) is refused.
- The application role gets SELECT, INSERT, UPDATE and DELETE on the tables below, SELECT
  on ``tiers`` (limits, no one's data), the sequences of those tables, and nothing else:
  ``stripe_events`` and ``alembic_version`` are not its business.
- Every table below has row-level security enabled and forced, and two policies:
  ``faktry_tenant`` (everyone: the rows of the tenant named by the transaction's
  ``faktry.tenant_id`` setting, to read and to write) and ``faktry_privileged`` (the owner:
  every row). The owner's access is a policy, visible in ``pg_policies`` like the rest,
  rather than an exemption, and it works where the owner is neither superuser nor BYPASSRLS
  (managed PostgreSQL). ``stripe_events`` has only the second.

The lists are frozen here. A later migration that adds a table with a tenant's data grants
and protects it the same way (tests/faktry/test_row_level_security.py fails until it does).
"""

import re

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_MINE = "tenant_id = current_setting('faktry.tenant_id', true)"
#: Table -> which of its rows belong to the tenant the transaction acts for.
TENANT_ROWS = {
    "tenants": "id = current_setting('faktry.tenant_id', true)",
    "users": _MINE,
    "user_sessions": _MINE,
    "api_keys": _MINE,
    "files": _MINE,
    "jobs": _MINE,
    "job_events": _MINE,
    "job_outputs": _MINE,
    "moderation_log": _MINE,
    "accounts": _MINE,
    "credit_lots": _MINE,
    "holds": _MINE,
    "ledger_entries": _MINE,
    "storage_reservations": _MINE,
    # No tenant column: an allocation is the tenant's when its hold is (holds' own policy
    # decides which holds the subquery sees).
    "hold_allocations": "EXISTS (SELECT 1 FROM holds WHERE holds.id = hold_allocations.hold_id)",
}
#: Protected, but no tenant's business at all: only the privileged policy.
PRIVILEGED_ONLY = ("stripe_events",)
READ_ONLY = ("tiers",)


def _role(bind: sa.Connection) -> str:
    role = str(context.config.attributes["faktry_app_role"])
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"FAKTRY_DATABASE_APP_ROLE: {role!r} is not a plain role name")
    return bind.dialect.identifier_preparer.quote(role)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    role = _role(bind)
    name = str(context.config.attributes["faktry_app_role"])
    found = bind.execute(
        sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": name}
    ).first()
    if found is None:
        # Several databases of one server may migrate at once: the role is the server's.
        op.execute(
            f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    elif found[0]:
        raise RuntimeError(
            f"the application role {name} is a superuser or has BYPASSRLS: row-level security "
            "would not confine it; name another role with FAKTRY_DATABASE_APP_ROLE"
        )
    member = bind.scalar(sa.text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": name})
    if not member:
        op.execute(f"GRANT {role} TO CURRENT_USER")

    owner = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_user"))))
    schema = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_schema()"))))
    op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    for table in TENANT_ROWS:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
    for table in READ_ONLY:
        op.execute(f"GRANT SELECT ON {table} TO {role}")
    for sequence in _sequences(bind, list(TENANT_ROWS)):
        op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {role}")

    for table, rows in TENANT_ROWS.items():
        _protect(table, owner)
        op.execute(f"CREATE POLICY faktry_tenant ON {table} USING ({rows}) WITH CHECK ({rows})")
    for table in PRIVILEGED_ONLY:
        _protect(table, owner)


def _protect(table: str, owner: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY faktry_privileged ON {table} TO {owner} USING (true) WITH CHECK (true)")


def _sequences(bind: sa.Connection, tables: list[str]) -> list[str]:
    """The sequences owned by columns of ``tables`` (``job_events.id``), quoted."""
    rows = bind.execute(
        sa.text(
            "SELECT quote_ident(s.relname) FROM pg_class s "
            "JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
            "JOIN pg_class t ON t.oid = d.refobjid "
            "WHERE s.relkind = 'S' AND t.relname = ANY(:tables) "
            "AND t.relnamespace = current_schema()::regnamespace"
        ),
        {"tables": tables},
    )
    return [str(r[0]) for r in rows]


def downgrade() -> None:
    """Policies and grants go; the role stays (it belongs to the server, and other databases
    may use it)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    role = _role(bind)
    for table in (*TENANT_ROWS, *PRIVILEGED_ONLY):
        op.execute(f"DROP POLICY IF EXISTS faktry_tenant ON {table}")
        op.execute(f"DROP POLICY IF EXISTS faktry_privileged ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for sequence in _sequences(bind, list(TENANT_ROWS)):
        op.execute(f"REVOKE ALL ON SEQUENCE {sequence} FROM {role}")
    for table in (*TENANT_ROWS, *READ_ONLY):
        op.execute(f"REVOKE ALL ON {table} FROM {role}")
    schema = bind.dialect.identifier_preparer.quote(str(bind.scalar(sa.text("SELECT current_schema()"))))
    op.execute(f"REVOKE USAGE ON SCHEMA {schema} FROM {role}")
