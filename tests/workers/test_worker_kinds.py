"""Every queue a message can be sent to is consumed by a worker kind: a deployment that runs
the Procfile's workers (``faktry worker --kind media`` and ``--kind ai``), or ``faktry up``,
serves every actor, webhook deliveries, export builds and mail included."""

from __future__ import annotations

from typing import Any

from faktry.cli import KINDS, _worker_shape
from pipelines.routing import all_queues


def test_every_declared_queue_is_consumed_by_a_worker_kind(runtime: Any) -> None:
    served = {queue for queues, _, _ in KINDS.values() for queue in queues}
    declared = set(runtime.broker.get_declared_queues())
    declared = {q for q in declared if not q.endswith(".DQ") and not q.endswith(".XQ")}
    assert declared - served == set()
    assert set(all_queues()) <= served


def test_the_ai_kind_delivers_webhooks_builds_export_archives_and_sends_mail(settings: Any) -> None:
    _, queues, _, threads = _worker_shape(settings, "ai", (), 0, 0)
    assert {"webhooks", "exports", "mail"} <= set(queues)
    assert threads > 1  # a slow receiver or a big archive does not hold up the other queues
