"""Alembic migrations. ``faktry db upgrade`` applies them; nothing else creates tables."""
