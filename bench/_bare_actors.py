"""Worker module for the bare-Dramatiq side of bench.throughput and bench.latency.

The same broker as faktry's workers (`workers.broker.make_broker`, same settings), with
actors that do nothing but tell the benchmark they ran: ``noop`` counts, ``stamp`` notes
when it started.
"""

import time

import dramatiq
import redis

from faktry.config import Settings
from workers.broker import make_broker

settings = Settings.from_env()
broker = make_broker(settings, settings.redis_url)
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(settings.redis_url)
DONE = f"{settings.redis_namespace}:bench:done"
STAMPS = f"{settings.redis_namespace}:bench:stamps"


@dramatiq.actor(actor_name="noop", queue_name="local.small", max_retries=0)
def noop() -> None:
    _client.incr(DONE)


@dramatiq.actor(actor_name="stamp", queue_name="local.small", max_retries=0)
def stamp(i: int) -> None:
    _client.rpush(STAMPS, f"{i} {time.time()!r}")
