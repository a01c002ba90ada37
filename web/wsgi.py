"""WSGI entry point for gunicorn (``faktry web``): ``gunicorn web.wsgi:app``."""

from faktry import clock
from faktry.config import Settings
from faktry.logs import configure as configure_logging
from web import create_app

clock.configure_from_env()
_settings = Settings.from_env()
configure_logging(_settings)
app = create_app(_settings)
