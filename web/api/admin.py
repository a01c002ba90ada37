"""``/v1/admin``: operators' views. Staff only; everyone else gets 403."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from flask import request
from sqlalchemy import func, select

from faktry import clock
from faktry.errors import Forbidden, NotFound, ValidationError
from pipelines import pagination
from pipelines import services as jobs
from pipelines.models import FAILED, FINISHED, RUNNING, Job, ModerationEntry
from pipelines.routing import all_queues
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from workers.queues import stats


def _staff_only() -> None:
    if not principal().is_staff:
        raise Forbidden("this is for faktry staff only", code="staff_only")


@blueprint.get("/admin/moderation")
@authenticated
def moderation_log() -> Any:
    """Flagged and blocked prompts, newest first; filter by category, action or tenant."""
    _staff_only()
    sess = db()
    sess.info.pop("tenant_id", None)  # operators see every tenant's entries
    stmt = select(ModerationEntry)
    for name in ("category", "action", "tenant_id"):
        value = request.args.get(name)
        if value:
            stmt = stmt.where(getattr(ModerationEntry, name) == value)
    action = request.args.get("action")
    if action and action not in ("blocked", "flagged"):
        raise ValidationError("action must be blocked or flagged", field="action")
    rows, next_cursor = pagination.page(
        sess,
        stmt,
        created=ModerationEntry.at,
        ident=ModerationEntry.id,
        cursor=request.args.get("cursor"),
        limit=pagination.parse_limit(request.args.get("limit")),
    )
    return {
        "object": "list",
        "data": [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "tenant_id": e.tenant_id,
                "action": e.action,
                "category": e.category,
                "score": e.score,
                "source": e.source,
                "endpoint": e.endpoint,
                "model": e.model,
                "prompt": e.prompt,
            }
            for e in rows
        ],
        "next_cursor": next_cursor,
    }


@blueprint.get("/admin/queues")
@authenticated
def queues() -> Any:
    """Per queue: depth, oldest age, running jobs, recent throughput and a scaling hint."""
    _staff_only()
    svc = services()
    sess = db()
    sess.info.pop("tenant_id", None)
    now = clock.now()
    window = timedelta(minutes=5)
    recent = sess.execute(
        select(Job.queue, Job.started_at, Job.finished_at)
        .where(Job.status.in_(FINISHED), Job.updated_at >= now - window)
        .limit(5000)
    ).all()
    running = dict(
        sess.execute(select(Job.queue, func.count()).where(Job.status == RUNNING).group_by(Job.queue)).all()
    )
    target = svc.settings.drain_target_seconds
    data = []
    for q in stats(svc.redis, svc.settings.redis_namespace, all_queues()):
        done = [(s, f) for queue, s, f in recent if queue == q.queue and s and f]
        took = [(f - s).total_seconds() for s, f in done]
        avg = sum(took) / len(took) if took else None
        waiting = q.depth + q.delayed
        # Workers that drain what waits within the target, at the recent time per job.
        needed = math.ceil(waiting * avg / target) if avg and waiting else (1 if waiting else 0)
        data.append(
            {
                "queue": q.queue,
                "depth": q.depth,
                "delayed": q.delayed,
                "oldest_age_seconds": q.oldest_age,
                "running": int(running.get(q.queue, 0)),
                "finished_last_5m": len(done),
                "throughput_per_minute": round(len(done) / 5, 2),
                "avg_duration_seconds": round(avg, 3) if avg is not None else None,
                "scaling_hint": {"workers_needed": needed, "drain_target_seconds": target},
            }
        )
    return {"object": "list", "data": data}


@blueprint.get("/admin/dead-letters")
@authenticated
def dead_letters() -> Any:
    """Failed jobs of every tenant, newest first, with their error: what a replay would retry."""
    _staff_only()
    sess = db()
    sess.info.pop("tenant_id", None)
    stmt = select(Job).where(Job.status == FAILED)
    if request.args.get("tenant_id"):
        stmt = stmt.where(Job.tenant_id == request.args["tenant_id"])
    if request.args.get("code"):
        stmt = stmt.where(Job.error_code == request.args["code"])
    rows, next_cursor = pagination.page(
        sess,
        stmt,
        created=Job.created_at,
        ident=Job.id,
        cursor=request.args.get("cursor"),
        limit=pagination.parse_limit(request.args.get("limit")),
    )
    return {
        "object": "list",
        "data": [{**jobs.to_dict(j), "tenant_id": j.tenant_id} for j in rows],
        "next_cursor": next_cursor,
    }


@blueprint.post("/admin/jobs/<job_id>/replay")
@authenticated
def replay(job_id: str) -> Any:
    """Replay a failed job as a new job with a fresh hold; the failed one is never charged."""
    _staff_only()
    svc = services()
    sess = db()
    sess.info.pop("tenant_id", None)
    original = sess.get(Job, job_id) if job_id.startswith("job_") else None
    if original is None:
        raise NotFound("no such job", code="job_not_found")
    job = jobs.replay(sess, original, policy=svc.policy)
    sess.commit()
    svc.metrics.job_created(job.type)
    jobs.dispatch(svc.sessions, svc.sender, [job])
    sess.refresh(job)
    return {**jobs.to_dict(job), "tenant_id": job.tenant_id}, 202
