"""Worker module for bench.redelivery: an actor that notes its start in Redis, then holds."""

import os
import time

import dramatiq
import redis

from faktry.config import Settings
from workers.broker import make_broker

settings = Settings.from_env()
broker = make_broker(settings, settings.redis_url)
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(settings.redis_url)


@dramatiq.actor(actor_name="hold", queue_name="local.small", max_retries=0)
def hold(tag: str) -> None:
    _client.rpush(f"{settings.redis_namespace}:starts:{tag}", f"{time.time()}:{os.getpid()}")
    time.sleep(600)
