"""The job actor: thin. It hands the job id to the runner and lets Dramatiq retry
`RetryLater` with backoff, and whatever escapes the runner (a database or Redis blink);
every other outcome is recorded on the job by the runner."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq import Broker
from dramatiq.common import q_name
from dramatiq.middleware import CurrentMessage

from faktry.db import is_unavailable
from pipelines import runner
from pipelines.routing import all_queues

#: The message option workers.broker.BrokerSender sets on messages fair admission let through.
ADMITTED = "faktry_admitted"

DAY_MS = 24 * 3600 * 1000
log = logging.getLogger("faktry.workers")


def _dependency(exc: BaseException) -> str:
    if is_unavailable(exc):
        return "database"
    if isinstance(exc, redis.RedisError):
        return "redis"
    return "other"


def declare(broker: Broker, context: runner.Context, admitting: Any = None) -> dramatiq.Actor[[str], None]:
    settings = context.settings
    # The runner caps attempts itself and fails the job with its code when they are spent,
    # so Dramatiq's own limit is only a backstop.
    backstop = settings.max_retries + 2

    def retry_when(retries: int, exc: BaseException) -> bool:
        # Besides the runner's own transient errors, anything that escapes it (the database
        # or Redis away while admitting, claiming or recording) is tried again: the job's
        # row is the truth, and a later delivery finds it as it is.
        if not isinstance(exc, runner.RetryLater | dramatiq.Retry) and context.metrics is not None:
            context.metrics.dependency_error("worker", _dependency(exc))
        return retries < backstop

    # The pump after a job gives up its tenant's running slot in its own round trip when
    # admission counts the slots where the runner keeps them.
    admission = getattr(admitting, "admission", None)
    slots_with_pump = (
        admission is not None
        and context.slots is not None
        and admission.running_prefix == context.slots.key("")
    )

    def run_job(job_id: str) -> None:
        message = CurrentMessage.get_current_message()
        first_delivery = (
            message is not None and message.options.get(ADMITTED) and not message.options.get("retries")
        )
        if admitting is not None and message is not None and first_delivery:
            admitting.admission.started(message.queue_name)
        ended = runner.Ended() if slots_with_pump and message is not None else None
        try:
            _run(job_id, ended)
        finally:
            if admitting is not None:
                # A place on this queue, and perhaps the tenant's running slot, may have
                # freed up: pump this queue (and wherever the tenant waited out its cap;
                # pipelines/admission.py). With Redis away this waits for the next pump (a
                # later job, or the scheduler), and the slot for its lease to run out.
                try:
                    if message is None:
                        admitting.pump_all()
                    else:
                        slot_of = ended.slot_of if ended is not None else None
                        admitting.finished(q_name(message.queue_name), job_id, slot_of=slot_of)
                except redis.RedisError:
                    log.warning("could not pump admission; the scheduler will", exc_info=True)
                    if context.metrics is not None:
                        context.metrics.dependency_error("worker", "redis")
                    _release_alone(ended, job_id)

    def _release_alone(ended: runner.Ended | None, job_id: str) -> None:
        """The running slot the failed pump was to give up, given up on its own (a blip may
        have hit the pump alone); else its lease runs out."""
        if ended is None or ended.slot_of is None or context.slots is None:
            return
        try:
            context.slots.release(ended.slot_of, job_id)
        except redis.RedisError:
            log.warning("could not give up the running slot of %s; its lease will run out", job_id)

    def _run(job_id: str, ended: runner.Ended | None) -> None:
        try:
            runner.run(context, job_id, ended)
        except runner.Later as later:
            # A fresh delayed copy, not a Retry: waiting for a slot or polling a provider
            # spends none of the job's retries.
            message = CurrentMessage.get_current_message()
            if message is None:
                raise
            # The copy is the same admitted job coming back: it takes no admission place.
            options = {k: v for k, v in message.options.items() if k != ADMITTED}
            broker.enqueue(message.copy(options=options), delay=later.delay_ms)
        except runner.RetryLater as retry:
            if retry.delay_ms is None:
                raise
            # The provider said how long to wait (Retry-After): wait at least that.
            raise dramatiq.Retry(str(retry), delay=retry.delay_ms) from retry

    decorate = dramatiq.actor(
        broker=broker,
        actor_name="run_job",
        queue_name=all_queues()[0],
        retry_when=retry_when,
        min_backoff=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
        # ffmpeg and provider calls carry their own timeouts; Dramatiq's TimeLimit cannot
        # interrupt a subprocess, so it is only a last resort here.
        time_limit=DAY_MS,
        max_age=settings.message_max_age_ms,
    )
    return decorate(run_job)
