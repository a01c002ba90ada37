"""What the broker holds: depth and oldest message age per queue (Redis broker).

Reads Dramatiq's Redis layout: ``<namespace>:<queue>`` lists waiting message ids and
``<namespace>:<queue>.msgs`` holds the messages; delayed messages wait in ``<queue>.DQ``.
With RabbitMQ as the broker these figures come from RabbitMQ's own management instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from faktry import clock


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int
    delayed: int
    oldest_age: float | None


def stats(client: redis.Redis, namespace: str, queues: list[str]) -> list[QueueStats]:
    now_ms = clock.now().timestamp() * 1000
    out = []
    for queue in queues:
        key = f"{namespace}:{queue}"
        pipe = client.pipeline(transaction=False)
        pipe.llen(key)
        pipe.llen(f"{key}.DQ")
        pipe.lindex(key, 0)
        depth, delayed, first = pipe.execute()
        age = None
        if first is not None:
            raw = client.hget(f"{key}.msgs", first)
            if raw is not None:
                try:
                    age = max(0.0, (now_ms - float(json.loads(raw)["message_timestamp"])) / 1000)
                except (ValueError, KeyError, TypeError):
                    age = None
        out.append(QueueStats(queue, int(depth), int(delayed), age))
    return out
