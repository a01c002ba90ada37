"""Where a queued job's message is, as far as Redis knows: the reconciler's evidence.

The database says a job is ``queued``; only the queue side knows whether anything will
ever deliver it. Every hand-over writes one short key, ``<namespace>:at:<job id>``:

- ``a``: offered to fair admission, waiting in its tenant's list;
- ``s``: admitted, being sent to the broker (the admission sweep re-offers it if the
  process that admitted it died before sending);
- ``m:<message id>``: handed to the broker. With the Redis broker the reconciler also
  checks that the broker still holds that message (waiting, delayed or being worked on);
  RabbitMQ keeps its queues on disk, so the key alone is the evidence there.

The key and what it points at live in the same Redis: when Redis is restarted empty,
both are gone, and the reconciler sends the job again. A key that is found (a job
healthy behind a long backlog) has its lifetime renewed, so it outlives any wait; keys
of finished jobs expire by themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: How long a hand-over key lives unless a check finds it again.
TTL_SECONDS = 3600

#: (job id, queue, message id) → whether the broker still holds that message.
BrokerCheck = Callable[[Sequence[tuple[str, str, str]]], list[bool]]


def key_prefix(namespace: str) -> str:
    return f"{namespace}:at:"


class Presence:
    def __init__(self, client: Any, namespace: str, broker_check: BrokerCheck | None = None) -> None:
        self.client = client
        self.prefix = key_prefix(namespace)
        self.broker_check = broker_check

    def handed_to_broker(self, job_id: str, message_id: str, *, client: Any = None) -> None:
        """Note the broker message that now holds the job (``client``: a pipeline to send it
        with, else this presence's own client)."""
        (client or self.client).set(self.prefix + job_id, f"m:{message_id}", ex=TTL_SECONDS)

    def present(self, jobs: Sequence[tuple[str, str]]) -> set[str]:
        """The ids, among ``(job id, queue)`` pairs, of jobs something still holds.

        Raises Redis's errors: with Redis away nothing can be told, and nothing should be
        sent again on a guess."""
        if not jobs:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for job_id, _ in jobs:
            pipe.get(self.prefix + job_id)
        marks = pipe.execute()
        found: set[str] = set()
        in_broker: list[tuple[str, str, str]] = []
        for (job_id, queue), mark in zip(jobs, marks, strict=True):
            if mark is None:
                continue
            value = mark.decode() if isinstance(mark, bytes) else str(mark)
            if value.startswith("m:") and self.broker_check is not None:
                in_broker.append((job_id, queue, value[2:]))
            else:
                found.add(job_id)
        if in_broker and self.broker_check is not None:
            held = self.broker_check(in_broker)
            found.update(job_id for (job_id, _, _), yes in zip(in_broker, held, strict=True) if yes)
        if found:
            pipe = self.client.pipeline(transaction=False)
            for job_id in found:
                pipe.expire(self.prefix + job_id, TTL_SECONDS)
            pipe.execute()
        return found
