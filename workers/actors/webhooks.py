"""The webhook delivery actor: thin. It hands the message id to `pipelines.webhooks.delivery`.

Retries are the outbox's, not Dramatiq's (``max_retries=0``): a failed attempt leaves the
message pending with its next attempt due, and the actor sends itself a delayed copy for
then (the fast path); the scheduler's sweep sends whatever that copy loses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq import Broker
from sqlalchemy.orm import Session, sessionmaker

from pipelines.webhooks import delivery
from workers.actors.enqueue import send_ids

QUEUE = "webhooks"
ACTOR = "deliver_webhook"

log = logging.getLogger("faktry.webhooks")


def declare(
    broker: Broker, sessions: sessionmaker[Session], policy: delivery.Policy
) -> dramatiq.Actor[[str], None]:
    def deliver_webhook(message_id: str) -> None:
        outcome = delivery.deliver(sessions, policy, message_id)
        if outcome.status == "retry" and outcome.next_attempt_at is not None:
            send(broker, [message_id], at=outcome.next_attempt_at)

    declared: dramatiq.Actor[[str], None] = dramatiq.actor(
        broker=broker, queue_name=QUEUE, actor_name=ACTOR, max_retries=0
    )(deliver_webhook)
    return declared


def send(broker: Broker, message_ids: Sequence[str], *, at: datetime | None = None) -> None:
    """Enqueue a delivery of each message (at ``at``, if given)."""
    send_ids(broker, QUEUE, ACTOR, message_ids, at=at)


def kicker(broker: Broker) -> Any:
    """What `pipelines.webhooks.outbox.install` calls after a commit."""
    return lambda ids: send(broker, ids)
