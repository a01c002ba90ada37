"""``/v1/admin``: operators' views. Staff only; everyone else gets 403."""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

from flask import request
from sqlalchemy import func, or_, select

from faktry import clock
from faktry.errors import Forbidden, NotFound, ValidationError
from faktry.tenancy import Tenant, User
from pipelines import services as jobs
from pipelines.audit import log as audit
from pipelines.gallery import store as gallery
from pipelines.models import FAILED, FINISHED, RUNNING, Job, ModerationEntry
from pipelines.routing import all_queues
from quotas import ledger
from quotas.limits import tier_limits
from quotas.models import Account
from web import services
from web.api import blueprint, requested_page
from web.api.account import lot_to_dict
from web.auth import authenticated, db, principal
from web.bodies import json_object
from web.errors import best_effort
from web.submits import announce
from workers.queues import stats

log = logging.getLogger("faktry.admin")


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
    if action and action not in ("blocked", "flagged", "removed"):
        raise ValidationError("action must be blocked, flagged or removed", field="action")
    rows, next_cursor = requested_page(sess, stmt, created=ModerationEntry.at, ident=ModerationEntry.id)
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
                "reason": e.reason,
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
    rows, next_cursor = requested_page(sess, stmt, created=Job.created_at, ident=Job.id)
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
    audit.record(sess, job.tenant_id, "staff_job_replayed", who=principal(), staff=True, target=original.id,
                 address=request.remote_addr, data={"replay": job.id})  # fmt: skip
    sess.commit()
    announce(job)
    # From memory: once the replay and its hold are committed the answer is a 202.
    return {**jobs.to_dict(job), "tenant_id": job.tenant_id}, 202


def _credits(funds: ledger.Balance) -> dict[str, int]:
    return {"available": funds.available, "held": funds.held, "debt": funds.debt}


@blueprint.get("/admin/tenants")
@authenticated
def list_tenants() -> Any:
    """Every tenant, newest first, with its owner, credits and storage. ``q`` is a tenant id,
    or part of a tenant's name or of its owner's email; ``tier`` keeps one tier."""
    _staff_only()
    sess = db()
    sess.info.pop("tenant_id", None)  # operators see every tenant
    stmt = select(Tenant)
    q = request.args.get("q", "").strip()
    if q:
        owners = select(User.tenant_id).where(User.role == "owner", User.email.icontains(q, autoescape=True))
        stmt = stmt.where(
            or_(Tenant.id == q, Tenant.name.icontains(q, autoescape=True), Tenant.id.in_(owners))
        )
    if request.args.get("tier"):
        stmt = stmt.where(Tenant.tier == request.args["tier"])
    rows, next_cursor = requested_page(sess, stmt, created=Tenant.created_at, ident=Tenant.id)
    ids = [t.id for t in rows]
    emails: dict[str, str] = {}
    for tenant_id, email in sess.execute(
        select(User.tenant_id, User.email)
        .where(User.tenant_id.in_(ids), User.role == "owner")
        .order_by(User.created_at.desc(), User.id.desc())
    ):
        emails[tenant_id] = email  # the first owner wins: it comes last
    accounts = {a.tenant_id: a for a in sess.scalars(select(Account).where(Account.tenant_id.in_(ids)))}
    funds = ledger.balances(sess, ids)
    quotas = {tier: tier_limits(sess, tier).storage_quota_bytes for tier in {t.tier for t in rows}}
    data = []
    for t in rows:
        account = accounts.get(t.id)
        data.append(
            {
                "object": "tenant",
                "id": t.id,
                "name": t.name,
                "tier": t.tier,
                "created_at": t.created_at.isoformat(),
                "owner_email": emails.get(t.id),
                "credits": _credits(funds[t.id]),
                "storage": {
                    "used_bytes": account.storage_used_bytes if account else 0,
                    "quota_bytes": quotas[t.tier],
                },
            }
        )
    return {"object": "list", "data": data, "next_cursor": next_cursor}


@blueprint.post("/admin/tenants/<tenant_id>/credits")
@authenticated
def grant_credits(tenant_id: str) -> Any:
    """Grant credits to a tenant as a new lot, like ``faktry credits grant``; the same
    ``Idempotency-Key`` grants once (a repeat answers 200 with ``lot: null``)."""
    _staff_only()
    body = json_object(allowed={"credits", "reason"})
    sess = db()
    sess.info.pop("tenant_id", None)  # the tenant granted to is not the operator's
    lot = ledger.grant(
        sess,
        tenant_id,
        body.get("credits"),  # any JSON value: `ledger.grant` checks it
        body.get("reason"),
        key=request.headers.get("Idempotency-Key"),
    )
    credits = _credits(ledger.balance(sess, tenant_id))  # read before the commit, not after
    if lot is not None:
        granted = {"millicredits": lot.amount, "reason": lot.reference}
        audit.record(sess, tenant_id, "staff_credits_granted", who=principal(), staff=True, target=lot.id,
                     address=request.remote_addr, data=granted)  # fmt: skip
    sess.commit()
    if lot is not None:
        # Who granted what stays in the operators' log (the ledger holds no staff identity).
        log.info(
            "staff user %s granted %d millicredits to %s as %s: %s",
            principal().user_id, lot.amount, tenant_id, lot.id, lot.reference,
        )  # fmt: skip
    return {
        "object": "grant",
        "tenant_id": tenant_id,
        "lot": lot_to_dict(lot) if lot is not None else None,
        "credits": credits,
    }, (200 if lot is None else 201)


@blueprint.post("/admin/gallery/<entry_id>/remove")
@authenticated
def remove_gallery_entry(entry_id: str) -> Any:
    """Remove a gallery entry for a policy violation: hidden from the gallery at once, its
    public copy deleted, the ``reason`` kept on the entry and in the moderation log. Removing
    a removed entry changes nothing and logs nothing again."""
    _staff_only()
    body = json_object(allowed={"reason"})
    sess = db()
    sess.info.pop("tenant_id", None)  # the entry is another tenant's
    entry, key = gallery.remove(sess, entry_id, body.get("reason"))
    if key is not None:
        why = {"reason": entry.removed_reason}
        audit.record(sess, entry.tenant_id, "staff_gallery_entry_removed", who=principal(), staff=True,
                     target=entry.id, address=request.remote_addr, data=why)  # fmt: skip
    answer = {
        **gallery.public_dict(entry),
        "status": entry.status,
        "removed_reason": entry.removed_reason,
        "removed_at": entry.removed_at.isoformat() if entry.removed_at else None,
    }
    sess.commit()
    if key is not None:
        log.info(
            "staff user %s removed gallery entry %s: %s", principal().user_id, entry_id, entry.removed_reason
        )
        with best_effort("gallery entry %s removed: its copy %s not deleted", entry_id, key):
            services().storage.delete(key)
    return answer
