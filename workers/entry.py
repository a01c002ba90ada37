"""The module ``dramatiq`` loads in each worker process (``faktry worker`` runs it)."""

from faktry import clock
from faktry.config import Settings
from faktry.logs import configure as configure_logging
from workers.broker import setup

clock.configure_from_env()
_settings = Settings.from_env()
configure_logging(_settings)
runtime = setup(_settings)
broker = runtime.broker
