"""Worker setup: the composition root of worker processes.

`setup` builds the broker, the database engine and storage after fork, declares every
queue and binds the actors to this broker (never to Dramatiq's implicit default).
`BrokerSender` is the `pipelines.services.Sender` that the web and the scheduler use to
enqueue a job's message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from pipelines.presence import BrokerCheck, Presence
from pipelines.routing import all_queues
from pipelines.runner import Context
from quotas.limits import TierCache
from quotas.pricing import PriceList
from quotas.ratelimit import RunningSlots
from storage import from_settings as storage_from_settings
from workers.actors.jobs import ADMITTED
from workers.middleware import HandOverKeys, JobLogContext, SweepTempAtBoot
from workers.wakeup import WakeUps, WakingRedisBroker

log = logging.getLogger("faktry.workers")
RUN_JOB = "run_job"


def make_broker(settings: Settings, redis_url: str) -> Broker:
    url = broker_url(settings, redis_url)
    broker: Broker
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
    else:
        # Idle consumers wait for a wake-up published on each enqueue (workers/wakeup.py).
        broker = WakingRedisBroker(
            url=url,
            namespace=settings.redis_namespace,
            heartbeat_timeout=settings.broker_heartbeat_ms,
            maintenance_chance=settings.broker_maintenance_chance,
            idle_check_ms=settings.worker_idle_check_ms,
        )
        # The wake-up goes in the enqueue's own round trip; so does the hand-over key when it
        # lives in the broker's Redis.
        broker.add_rider(WakeUps(broker.client, settings.redis_namespace, broker.hub))
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(JobLogContext())
    hand_over = HandOverKeys(Presence(short_calls(redis_url), settings.redis_namespace), RUN_JOB)
    if isinstance(broker, WakingRedisBroker) and url == redis_url:
        broker.add_rider(hand_over)
    else:
        broker.add_middleware(hand_over)
    for queue in all_queues():
        broker.declare_queue(queue)
    return broker


def broker_url(settings: Settings, redis_url: str) -> str:
    """The broker's URL: its own setting, else the platform's Redis."""
    return settings.broker_url or redis_url


def short_calls(redis_url: str) -> Any:
    """A Redis client for calls that never block: a Redis that stopped answering fails
    them within seconds (counted and retried) instead of holding a thread forever."""
    return redis_client(redis_url, socket_timeout=5)


class BrokerSender:
    """Enqueues ``run_job(job_id)`` on a named queue. Messages carry the id only.

    It also tells the reconciler which queued jobs the queue side still holds
    (`pipelines.presence`), so a lost message can be told from a job that merely waits."""

    def __init__(
        self, broker: Broker, presence: Presence | None = None, *, shares_redis: bool = False
    ) -> None:
        self.broker = broker
        if presence is None and isinstance(broker, RedisBroker):
            presence = Presence(broker.client, broker.namespace, redis_broker_check(broker))
        self.presence = presence
        #: Whether several messages can go in one round trip (`send_admitted`): the broker is
        #: the platform's Redis, where the hand-over keys ride with each enqueue.
        self.rides = shares_redis and isinstance(broker, WakingRedisBroker)

    def send(self, queue: str, job_id: str, *, admitted: bool = False) -> None:
        # The broker's HandOverKeys middleware notes the message as the job's hand-over.
        self.broker.enqueue(self._message(queue, job_id, admitted))

    def send_admitted(self, queue: str, job_ids: Sequence[str]) -> list[Exception | None]:
        """Enqueue admitted jobs in one round trip (only when `rides`). Returns, for each, the
        error that kept it out of the broker, or None."""
        assert isinstance(self.broker, WakingRedisBroker)
        outcomes = self.broker.enqueue_all([self._message(queue, job_id, True) for job_id in job_ids])
        return [outcome if isinstance(outcome, Exception) else None for outcome in outcomes]

    def _message(self, queue: str, job_id: str, admitted: bool) -> Message[Any]:
        if queue not in self.broker.get_declared_queues():
            self.broker.declare_queue(queue)
        # An admitted message holds one of its queue's admission places until a worker starts it.
        options = {ADMITTED: True} if admitted else {}
        return Message(queue_name=queue, actor_name=RUN_JOB, args=(job_id,), kwargs={}, options=options)

    def present(self, jobs: Sequence[tuple[str, str]]) -> set[str]:
        """Which of these queued ``(job id, queue)`` pairs something still holds (see
        `pipelines.presence`); every job counts as held when nothing can tell."""
        if self.presence is None:
            return {job_id for job_id, _ in jobs}
        return self.presence.present(jobs)


def redis_broker_check(broker: RedisBroker) -> BrokerCheck:
    """Whether Dramatiq's Redis broker still holds each message: waiting, delayed, or taken
    by a worker and not yet acknowledged (its body stays in ``<queue>.msgs`` until then)."""

    def check(messages: Sequence[tuple[str, str, str]]) -> list[bool]:
        # One MULTI: a message moving from the delay queue to its queue is in one or both.
        pipe = broker.client.pipeline(transaction=True)
        for _, queue, message_id in messages:
            pipe.hexists(f"{broker.namespace}:{queue}.msgs", message_id)
            pipe.hexists(f"{broker.namespace}:{queue}.DQ.msgs", message_id)
        found = pipe.execute()
        return [bool(found[2 * i] or found[2 * i + 1]) for i in range(len(messages))]

    return check


def make_sender(
    settings: Settings, broker: Broker, redis_url: str, sessions: Any, tiers: TierCache | None = None
) -> Any:
    """What dispatches new jobs: through fair admission unless it is turned off. ``tiers`` is
    the process's tier cache, so that forgetting a tenant's tier there reaches admission too."""
    # Hand-over keys live beside fair admission's lists, whichever Redis the broker uses.
    # RabbitMQ keeps its queues on disk: there the hand-over key alone is the evidence.
    check = redis_broker_check(broker) if isinstance(broker, RedisBroker) else None
    sender = BrokerSender(
        broker,
        Presence(short_calls(redis_url), settings.redis_namespace, check),
        shares_redis=broker_url(settings, redis_url) == redis_url,
    )
    if not settings.fair_admission:
        return sender
    admission = Admission(
        short_calls(redis_url), settings.redis_namespace, depth=settings.admission_depth,
        running_namespace=settings.redis_namespace,
    )  # fmt: skip
    return AdmittingSender(sender, admission, sessions, all_queues(), tiers)


@dataclass
class Runtime:
    settings: Settings
    broker: Broker
    context: Context
    embedded_redis: Embedded | None


def setup(settings: Settings) -> Runtime:
    from pipelines.exports import store as exports_store
    from pipelines.mail import outbox as mail_outbox
    from pipelines.mail import sender as mail_sender
    from pipelines.webhooks import delivery, outbox
    from pipelines.workflows import runs
    from workers.actors import exports, jobs, mail, webhooks

    redis_url, embedded = resolve_url(settings)
    broker = make_broker(settings, redis_url)
    dramatiq.set_broker(broker)
    engine = make_engine(settings.resolved_database_url, app_role=settings.database_app_role)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    context = Context(
        settings=settings,
        sessions=make_sessionmaker(engine),
        storage=storage_from_settings(settings),
        prices=PriceList.from_json(settings.prices),
        slots=RunningSlots(short_calls(redis_url), settings.redis_namespace),
        generation=generation.build(settings, short_calls(redis_url)),
        metrics=Metrics(short_calls(redis_url), settings.redis_namespace),
    )
    broker.add_middleware(SweepTempAtBoot(context.sessions, settings.tmp_dir, settings.tmp_idle_seconds))
    admitting = make_sender(settings, broker, redis_url, context.sessions, context.tiers)
    # A job that ends advances its workflow run: the run's next jobs go out like any submit.
    context.workflows = runs.Engine(context.sessions, runs.policy_from(settings, context.tiers), admitting)
    jobs.declare(broker, context, admitting if isinstance(admitting, AdmittingSender) else None)
    # Webhook messages written by this process's transactions start delivering at commit.
    webhooks.declare(broker, context.sessions, delivery.Policy.from_settings(settings))
    outbox.install(context.sessions, webhooks.kicker(broker))
    # Mail too: written in the transaction that decided it, sent once that commits.
    mail.declare(broker, context.sessions, mail_sender.Policy.from_settings(settings))
    mail_outbox.install(context.sessions, mail.kicker(broker))
    exports.declare(
        broker,
        context.sessions,
        context.storage,
        exports_store.Policy.from_settings(settings),
        settings.tmp_dir,
    )
    return Runtime(settings=settings, broker=broker, context=context, embedded_redis=embedded)
