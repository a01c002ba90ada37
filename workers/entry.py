"""The broker module for Dramatiq's own command line: ``dramatiq workers.entry``.

``faktry worker`` does not use it: it runs and supervises `workers.process` instead. This
module stays for those who run Dramatiq's command line directly.
"""

from faktry import clock
from faktry.config import Settings
from faktry.logs import configure as configure_logging
from workers.broker import setup

clock.configure_from_env()
_settings = Settings.from_env()
configure_logging(_settings)
runtime = setup(_settings)
broker = runtime.broker
