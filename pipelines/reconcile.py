"""The reconciler: one rule per job state for what a crash or a lost message left behind.

- queued, never sent (the process died between commit and send), or sent so long ago that
  the message must have been dropped: send it again;
- running with an expired lease (its worker died): if a cancel was asked for, cancel it,
  remove its partial outputs and release its hold; otherwise send it again, so a new
  attempt takes over (its hold stays: the job is still owed its work);
- finished (or vanished) with a hold still open: a failed, canceled or vanished job's hold
  is released, a succeeded job's is captured. Queued and running jobs keep their holds, so
  a job is never both re-enqueued and refunded.

Each pass also expires credit lots past their expiry, cancels storage reservations left by
processes that died mid-write, and applies Stripe events that were parked waiting for an
earlier one, and deletes moderation log entries older than 12 months.

It is safe to run in several processes at once: each job is taken by a conditional update
that only one of them wins, and the actor is idempotent, so an extra message is harmless.
Each pass looks at a bounded batch, oldest first, through indexed columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.config import Settings
from faktry.db import transaction
from pipelines import moderation
from pipelines.admission import AdmittingSender
from pipelines.models import CANCELED, FINISHED, QUEUED, RUNNING, SUCCEEDED, Job
from pipelines.services import Sender, record_event
from quotas import billing, ledger
from quotas.limits import sweep_reservations
from quotas.models import Hold
from storage.interface import Storage

log = logging.getLogger("faktry.reconcile")
BATCH = 500


RESERVATION_MAX_AGE = timedelta(hours=1)


@dataclass
class Report:
    resent: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    holds_resolved: list[str] = field(default_factory=list)
    lots_expired: int = 0
    reservations_swept: int = 0
    billing_events_applied: int = 0
    moderation_entries_deleted: int = 0
    admitted: int = 0


def reconcile(
    sessions: sessionmaker[Session], sender: Sender, storage: Storage, settings: Settings
) -> Report:
    report = Report()
    now = clock.now()
    unsent_before = now - timedelta(seconds=settings.requeue_after_seconds)
    dropped_before = now - timedelta(milliseconds=settings.message_max_age_ms)
    with transaction(sessions) as session:
        queued = session.execute(
            select(Job.id, Job.queue, Job.enqueued_at)
            .where(
                Job.status == QUEUED,
                or_(
                    (Job.enqueued_at.is_(None)) & (Job.created_at < unsent_before),
                    Job.enqueued_at < dropped_before,
                ),
            )
            .order_by(Job.created_at)
            .limit(BATCH)
        ).all()
        orphaned = session.execute(
            select(
                Job.id,
                Job.tenant_id,
                Job.queue,
                Job.cancel_requested,
                Job.lease_token,
                Job.provider_request_id,
            )
            .where(Job.status == RUNNING, Job.lease_expires_at < now)
            .order_by(Job.lease_expires_at)
            .limit(BATCH)
        ).all()

    for job_id, queue, enqueued_at in queued:
        if _mark_sent(sessions, job_id, QUEUED, enqueued_at, now):
            sender.send(queue, job_id)
            report.resent.append(job_id)

    for job_id, tenant_id, queue, cancel_requested, token, upstream in orphaned:
        # A job waiting on a provider is canceled by a worker, which can reach the provider.
        if cancel_requested and not upstream:
            if _cancel_orphan(sessions, job_id, token, now):
                storage.delete_prefix(f"t/{tenant_id}/jobs/{job_id}/")
                report.canceled.append(job_id)
        elif _requeue_orphan(sessions, job_id, token, now):
            sender.send(queue, job_id)
            report.resent.append(job_id)
    if isinstance(sender, AdmittingSender):
        report.admitted = _admission_sweep(sender)
    report.holds_resolved = _resolve_stale_holds(sessions)
    with transaction(sessions) as session:
        report.lots_expired = ledger.expire_lots(session)
    with transaction(sessions) as session:
        report.reservations_swept = sweep_reservations(session, RESERVATION_MAX_AGE)
    with transaction(sessions) as session:
        report.moderation_entries_deleted = moderation.sweep(session)
    with transaction(sessions) as session:
        # Stripe events that arrived before the event they depend on.
        report.billing_events_applied = billing.retry_parked(
            session,
            packs=billing.packs_from_json(settings.credit_packs),
            price_tiers=billing.price_tiers_from_json(settings.stripe_price_tiers),
        )
    if report.resent or report.canceled or report.holds_resolved or report.lots_expired:
        log.info(
            "reconciler: resent %d, canceled %d, holds resolved %d, lots expired %d",
            len(report.resent), len(report.canceled), len(report.holds_resolved), report.lots_expired,
        )  # fmt: skip
    return report


def _admission_sweep(sender: AdmittingSender) -> int:
    """Offer again what was admitted but never sent (its process died), then admit what fits."""
    for queue in sender.queues:
        for lost in sender.admission.unsent(queue, older_than=60.0):
            sender.send(queue, lost.job_id)
    return sender.pump_all()


def _resolve_stale_holds(sessions: sessionmaker[Session]) -> list[str]:
    with transaction(sessions) as session:
        stale = session.execute(
            select(Hold.job_id, Hold.tenant_id, Job.status, Job.cost_charged, Job.cost_estimated)
            .outerjoin(Job, Job.id == Hold.job_id)
            .where(Hold.status == "held", or_(Job.id.is_(None), Job.status.in_(FINISHED)))
            .limit(BATCH)
        ).all()
    resolved = []
    for job_id, tenant_id, status, charged, estimated in stale:
        with transaction(sessions) as session:
            if status == SUCCEEDED:
                done = ledger.capture(
                    session, tenant_id, job_id, charged if charged is not None else estimated
                )
            else:
                done = ledger.release(session, tenant_id, job_id)
            if done is not None:
                resolved.append(job_id)
    return resolved


def _mark_sent(sessions: sessionmaker[Session], job_id: str, status: str, seen: object, now: object) -> bool:
    with transaction(sessions) as session:
        cond = Job.enqueued_at.is_(None) if seen is None else Job.enqueued_at == seen
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == status, cond)
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
        won = getattr(result, "rowcount", 0) == 1
        if won:
            job = session.scalars(select(Job).where(Job.id == job_id)).one()
            record_event(session, job, "requeued", reason="message never sent or lost")
        return won


def _same_token(token: str | None) -> ColumnElement[bool]:
    # A job parked while it waits upstream has no lease token.
    return Job.lease_token.is_(None) if token is None else Job.lease_token == token


def _take_orphan(
    sessions: sessionmaker[Session], job_id: str, token: str | None, now: datetime, **values: object
) -> Job | None:
    """Move a running job whose lease expired (its worker died, or its poll got lost while
    it waited upstream) to ``values``; None when another process got to it first."""
    with transaction(sessions) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, _same_token(token), Job.lease_expires_at < now)
            .values(lease_token=None, lease_expires_at=None, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        if job.status == CANCELED:
            ledger.release(session, job.tenant_id, job_id)
            job.cost_charged = 0
            record_event(session, job, "canceled", reason="worker lost after cancel was requested")
        else:
            record_event(session, job, "requeued", reason="worker lost")
        session.expunge(job)
        return job


def _requeue_orphan(sessions: sessionmaker[Session], job_id: str, token: str | None, now: datetime) -> bool:
    """Hand an orphaned running job back to the queue; the next delivery starts a new attempt."""
    return _take_orphan(sessions, job_id, token, now, status=QUEUED, enqueued_at=now) is not None


def _cancel_orphan(sessions: sessionmaker[Session], job_id: str, token: str | None, now: datetime) -> bool:
    return _take_orphan(sessions, job_id, token, now, status=CANCELED, finished_at=now) is not None
