"""Applying migrations from code (``faktry db upgrade``, ``faktry up``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from faktry.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
#: The alembic attribute that tells the migrations which role to create and grant to.
APP_ROLE = "faktry_app_role"


def alembic_config(url: str, *, app_role: str = Settings.database_app_role) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes[APP_ROLE] = app_role
    return cfg


def upgrade(url: str, revision: str = "head", *, app_role: str = Settings.database_app_role) -> None:
    """Migrate ``url`` up to ``revision``; on PostgreSQL this creates ``app_role``, grants it
    what the application needs and puts every tenant's rows behind row-level security."""
    command.upgrade(alembic_config(url, app_role=app_role), revision)


def downgrade(url: str, revision: str, *, app_role: str = Settings.database_app_role) -> None:
    command.downgrade(alembic_config(url, app_role=app_role), revision)
