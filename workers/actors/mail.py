"""The mail actor: thin. It hands the message id to `pipelines.mail.sender`.

Retries are the outbox's, not Dramatiq's (``max_retries=0``): a refused attempt leaves the
mail pending with its next attempt due, and the actor sends itself a delayed copy for then
(the fast path); the scheduler's sweep sends whatever that copy loses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq import Broker
from sqlalchemy.orm import Session, sessionmaker

from pipelines.mail import sender
from workers.actors.enqueue import send_ids

QUEUE = "mail"
ACTOR = "send_mail"


def declare(
    broker: Broker, sessions: sessionmaker[Session], policy: sender.Policy
) -> dramatiq.Actor[[str], None]:
    def send_mail(message_id: str) -> None:
        outcome = sender.deliver(sessions, policy, message_id)
        if outcome.status == "retry" and outcome.next_attempt_at is not None:
            send(broker, [message_id], at=outcome.next_attempt_at)

    declared: dramatiq.Actor[[str], None] = dramatiq.actor(
        broker=broker, queue_name=QUEUE, actor_name=ACTOR, max_retries=0
    )(send_mail)
    return declared


def send(broker: Broker, message_ids: Sequence[str], *, at: datetime | None = None) -> None:
    """Enqueue a send of each mail (at ``at``, if given)."""
    send_ids(broker, QUEUE, ACTOR, message_ids, at=at)


def kicker(broker: Broker) -> Any:
    """What `pipelines.mail.outbox.install` calls after a commit."""
    return lambda ids: send(broker, ids)
