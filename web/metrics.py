"""``/metrics``: the whole platform in Prometheus format, from whichever web process answers.

Everything comes from shared state (Redis counters and queues, the database), so the
figures are the same across every web and worker process. Protect it with
``FAKTRY_METRICS_TOKEN`` (sent as a bearer token) when the port is reachable from outside.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import func, select

from faktry.db import transaction
from faktry.errors import Unauthorized
from faktry.tenancy import constant_time_equal
from pipelines.metrics import render
from pipelines.models import RUNNING, Job
from pipelines.routing import PROVIDERS, all_queues
from quotas.models import Hold
from web import services
from workers.queues import stats

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Any:
    svc = services()
    token = svc.settings.metrics_token
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not constant_time_equal(sent, token):
            raise Unauthorized("a metrics token is required", code="unauthenticated")
    queues = stats(svc.redis, svc.settings.redis_namespace, all_queues())
    with transaction(svc.sessions) as session:
        running = dict(
            session.execute(
                select(Job.queue, func.count()).where(Job.status == RUNNING).group_by(Job.queue)
            ).all()
        )
        held = (
            session.scalar(select(func.coalesce(func.sum(Hold.amount), 0)).where(Hold.status == "held")) or 0
        )
    from pipelines.providers.breaker import CircuitBreaker

    breaker = CircuitBreaker(svc.redis, svc.settings.redis_namespace)  # only read here
    body = render(
        svc.metrics.read(),
        queues=[(q.queue, q.depth + q.delayed, q.oldest_age, 0) for q in queues],
        running={q: int(running.get(q, 0)) for q in all_queues()},
        breakers={p: breaker.state(p).open for p in PROVIDERS if p != "local"},
        credits_held=int(held),
    )
    return Response(body, mimetype="text/plain; version=0.0.4")
