"""Sending one actor a message per id, now or at a time: what the outbox actors (webhook
deliveries, mail, export builds) share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dramatiq import Broker, Message

from faktry import clock


def send_ids(
    broker: Broker, queue: str, actor: str, ids: Sequence[str], *, at: datetime | None = None
) -> None:
    """Enqueue one message for each id on ``queue`` for ``actor`` (delayed until ``at``, if given)."""
    if queue not in broker.get_declared_queues():
        broker.declare_queue(queue)
    delay = None
    if at is not None:
        delay = max(0, int((at - clock.now()).total_seconds() * 1000))
    for item in ids:
        message: Message[Any] = Message(
            queue_name=queue, actor_name=actor, args=(item,), kwargs={}, options={}
        )
        broker.enqueue(message, delay=delay or None)
