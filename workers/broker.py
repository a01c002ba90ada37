"""Worker setup: the composition root of worker processes.

`setup` builds the broker, the database engine and storage after fork, declares every
queue and binds the actors to this broker (never to Dramatiq's implicit default).
`BrokerSender` is the `pipelines.services.Sender` that the web and the scheduler use to
enqueue a job's message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq import Broker, Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from faktry.config import Settings
from faktry.db import make_engine, make_sessionmaker
from faktry.redisconn import Embedded, resolve_url
from faktry.redisconn import client as redis_client
from pipelines import generation
from pipelines.admission import Admission, AdmittingSender
from pipelines.metrics import Metrics
from pipelines.routing import all_queues
from pipelines.runner import Context
from quotas.pricing import PriceList
from quotas.ratelimit import RunningSlots
from storage import from_settings as storage_from_settings
from workers.actors.jobs import ADMITTED
from workers.middleware import JobLogContext

log = logging.getLogger("faktry.workers")
RUN_JOB = "run_job"


def make_broker(settings: Settings, redis_url: str) -> Broker:
    url = settings.broker_url or redis_url
    broker: Broker
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
    else:
        broker = RedisBroker(
            url=url,
            namespace=settings.redis_namespace,
            heartbeat_timeout=settings.broker_heartbeat_ms,
            maintenance_chance=settings.broker_maintenance_chance,
        )
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(JobLogContext())
    for queue in all_queues():
        broker.declare_queue(queue)
    return broker


class BrokerSender:
    """Enqueues ``run_job(job_id)`` on a named queue. Messages carry the id only."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def send(self, queue: str, job_id: str, *, admitted: bool = False) -> None:
        if queue not in self.broker.get_declared_queues():
            self.broker.declare_queue(queue)
        # An admitted message holds one of its queue's admission places until a worker starts it.
        options = {ADMITTED: True} if admitted else {}
        message: Message[Any] = Message(
            queue_name=queue, actor_name=RUN_JOB, args=(job_id,), kwargs={}, options=options
        )
        self.broker.enqueue(message)


def make_sender(settings: Settings, broker: Broker, redis_url: str, sessions: Any) -> Any:
    """What dispatches new jobs: through fair admission unless it is turned off."""
    sender = BrokerSender(broker)
    if not settings.fair_admission:
        return sender
    admission = Admission(
        redis_client(redis_url), settings.redis_namespace, depth=settings.admission_depth,
        running_namespace=settings.redis_namespace,
    )  # fmt: skip
    return AdmittingSender(sender, admission, sessions, all_queues())


@dataclass
class Runtime:
    settings: Settings
    broker: Broker
    context: Context
    embedded_redis: Embedded | None


def setup(settings: Settings) -> Runtime:
    from workers.actors import jobs

    redis_url, embedded = resolve_url(settings)
    broker = make_broker(settings, redis_url)
    dramatiq.set_broker(broker)
    engine = make_engine(settings.resolved_database_url)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    context = Context(
        settings=settings,
        sessions=make_sessionmaker(engine),
        storage=storage_from_settings(settings),
        prices=PriceList.from_json(settings.prices),
        slots=RunningSlots(redis_client(redis_url), settings.redis_namespace),
        generation=generation.build(settings, redis_client(redis_url)),
        metrics=Metrics(redis_client(redis_url), settings.redis_namespace),
    )
    admitting = make_sender(settings, broker, redis_url, context.sessions)
    jobs.declare(broker, context, admitting if isinstance(admitting, AdmittingSender) else None)
    return Runtime(settings=settings, broker=broker, context=context, embedded_redis=embedded)
