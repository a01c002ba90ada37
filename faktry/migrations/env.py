"""Alembic environment: the database URL comes from faktry's settings (or the caller)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import pipelines.models  # noqa: F401  (registers tables on Base.metadata)
import quotas.models  # noqa: F401
import storage.models  # noqa: F401
from faktry import tenancy  # noqa: F401
from faktry.config import Settings
from faktry.db import Base, make_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # The role migration 0006 creates: given by faktry.migrate, else from the environment.
    context.config.attributes.setdefault("faktry_app_role", Settings.from_env().database_app_role)
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or Settings.from_env().resolved_database_url
    engine = make_engine(url, app_role=context.config.attributes["faktry_app_role"])
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
