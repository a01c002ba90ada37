"""The reconciler: one rule per job state for what a crash or a lost message left behind.

- queued, and nothing on the queue side holds it any more (never sent because the process
  died between commit and send, or its message lost with a Redis restart, a dropped or
  dead-lettered message): send it again (`resend_lost`);
- running with an expired lease (its worker died): if a cancel was asked for, cancel it,
  remove its partial outputs and release its hold; otherwise send it again, so a new
  attempt takes over (its hold stays: the job is still owed its work);
- finished (or vanished) with a hold still open: a failed, canceled or vanished job's hold
  is released, a succeeded job's is captured. Queued and running jobs keep their holds, so
  a job is never both re-enqueued and refunded.
- a running workflow run whose advance was lost (its job ended, the process died before
  the after-commit call): advanced, from the database (`pipelines.workflows.runs.sweep`).

Each pass also expires credit lots past their expiry, expires uploads abandoned mid-way
and aborts S3 multipart uploads a crash left (`pipelines.uploads.sweep`), cancels storage
reservations left by processes that died mid-write (an upload's lasts as long as the
upload), and applies Stripe events that were parked waiting for an
earlier one, and deletes moderation log entries older than 12 months. Its retention
sweeps (`pipelines.retention`) fold ledger entries older than ``ledger_retention_days`` into
carried-forward entries and remove job outputs past their tier's ``output_retention_days``.

It is safe to run in several processes at once: each job is taken by a conditional update
that only one of them wins, and the actor is idempotent, so an extra message is harmless.
Each pass looks at a bounded batch, oldest first, through indexed columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.config import Settings
from faktry.db import transaction
from pipelines import lifecycle, moderation, retention, tempfiles
from pipelines.admission import AdmittingSender
from pipelines.models import CANCELED, FINISHED, QUEUED, RUNNING, SUCCEEDED, Job
from pipelines.services import Sender
from pipelines.uploads import service as upload_service
from pipelines.uploads import sweep as upload_sweep
from pipelines.workflows import runs
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
    uploads_expired: int = 0
    upload_orphans_aborted: int = 0
    billing_events_applied: int = 0
    moderation_entries_deleted: int = 0
    ledger_entries_deleted: int = 0
    ledger_entries_carried: int = 0
    outputs_removed: int = 0
    archives_expired: int = 0
    admitted: int = 0
    temp_removed: int = 0
    runs_advanced: list[str] = field(default_factory=list)


def reconcile(
    sessions: sessionmaker[Session], sender: Sender, storage: Storage, settings: Settings
) -> Report:
    report = Report()
    now = clock.now()
    report.resent.extend(resend_lost(sessions, sender, settings, now))
    with transaction(sessions) as session:
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
    report.temp_removed = tempfiles.sweep(sessions, settings.tmp_dir, idle_seconds=settings.tmp_idle_seconds)
    report.holds_resolved = _resolve_stale_holds(sessions)
    # Workflow runs whose advance was lost with its process (pipelines/workflows/runs.py).
    # Left alone as long as a lost message is: the after-commit call comes in milliseconds.
    report.runs_advanced = runs.sweep(
        runs.Engine(sessions, runs.policy_from(settings), sender),
        now,
        grace=timedelta(seconds=settings.requeue_after_seconds),
    )
    with transaction(sessions) as session:
        report.lots_expired = ledger.expire_lots(session)
    # Before the reservations: an expired upload gives its reservation back itself.
    uploads = upload_sweep.sweep(sessions, storage, upload_service.Policy.from_settings(settings))
    report.uploads_expired, report.upload_orphans_aborted = uploads.expired, uploads.orphans_aborted
    with transaction(sessions) as session:
        report.reservations_swept = sweep_reservations(session, RESERVATION_MAX_AGE)
    with transaction(sessions) as session:
        report.moderation_entries_deleted = moderation.sweep(session)
    swept = retention.sweep(sessions, storage, ledger_retention_days=settings.ledger_retention_days)
    report.ledger_entries_deleted = swept.ledger_entries_deleted
    report.ledger_entries_carried = swept.ledger_entries_carried
    report.outputs_removed = swept.outputs_removed
    report.archives_expired = swept.archives_expired
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


#: At most this many batches of queued jobs are checked in one pass.
MAX_BATCHES = 40


def resend_lost(
    sessions: sessionmaker[Session], sender: Sender, settings: Settings, now: datetime
) -> list[str]:
    """Send again every queued job whose message is lost, and only those.

    A queued job is looked at once its last hand-over (``enqueued_at``) is older than
    ``requeue_after_seconds``, or when it was never handed over at all. What the queue
    side still holds (`pipelines.presence`) has its stamp renewed, so a job waiting
    behind a long fair-share backlog is looked at again a window later, never sent twice;
    the others are sent again. With passes every ``sweep_interval_seconds``, a lost
    message is found within ``requeue_after_seconds + sweep_interval_seconds``."""
    present_of = getattr(sender, "present", None)
    cutoff = now - timedelta(seconds=settings.requeue_after_seconds)
    resent: list[str] = []
    for _ in range(MAX_BATCHES):
        with transaction(sessions) as session:
            stale = session.execute(
                select(Job.id, Job.queue, Job.enqueued_at)
                .where(
                    Job.status == QUEUED,
                    or_(
                        (Job.enqueued_at.is_(None)) & (Job.created_at < cutoff),
                        Job.enqueued_at < cutoff,
                    ),
                )
                .order_by(Job.enqueued_at.is_not(None), Job.enqueued_at, Job.created_at)
                .limit(BATCH)
            ).all()
        if not stale:
            break
        if present_of is not None:
            held = present_of([(row.id, row.queue) for row in stale])
        else:  # a sender that cannot tell: trust what it was handed, send what it never was
            held = {row.id for row in stale if row.enqueued_at is not None}
        if held:
            with transaction(sessions) as session:
                session.execute(
                    update(Job)
                    .where(Job.id.in_(held), Job.status == QUEUED)
                    .values(enqueued_at=now)
                    .execution_options(synchronize_session=False)
                )
        for job_id, queue, enqueued_at in stale:
            if job_id not in held and _mark_sent(sessions, job_id, QUEUED, enqueued_at, now):
                sender.send(queue, job_id)
                resent.append(job_id)
        if len(stale) < BATCH:
            break
    return resent


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
            .where(
                Hold.status == "held",
                or_(Job.id.is_(None), Job.status.in_(FINISHED)),
                # A workflow run's own hold is keyed by the run: `runs.sweep` looks after it.
                ~Hold.job_id.like("run\\_%", escape="\\"),
            )
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
        row = lifecycle.fenced(
            session,
            job_id,
            (Job.status == status) & cond,
            {"enqueued_at": now},
            (Job.tenant_id, Job.attempts),
        )
        if row is not None:
            lifecycle.event(
                session,
                job_id,
                row.tenant_id,
                "requeued",
                status,
                row.attempts,
                reason="message never sent or lost",
            )
        return row is not None


def _take_orphan(
    sessions: sessionmaker[Session], job_id: str, token: str | None, now: datetime, **values: object
) -> str | None:
    """Move a running job whose lease expired (its worker died, or its poll got lost while
    it waited upstream) to ``values``; None when another process got to it first."""
    with transaction(sessions) as session:
        row = lifecycle.fenced(
            session,
            job_id,
            (Job.status == RUNNING) & lifecycle.held_by(token) & (Job.lease_expires_at < now),
            {"lease_token": None, "lease_expires_at": None, "updated_at": now, **values},
            (Job.tenant_id, Job.attempts, Job.status, Job.run_id),
        )
        if row is None:
            return None
        if row.status == CANCELED:
            ledger.release(session, row.tenant_id, job_id)
            if row.run_id is not None:  # a workflow step ends with its job
                runs.job_ended(session, row.run_id, job_id, CANCELED, code="canceled")
            lifecycle.event(
                session, job_id, row.tenant_id, "canceled", CANCELED, row.attempts,
                reason="worker lost after cancel was requested",
            )  # fmt: skip
        else:
            lifecycle.event(
                session, job_id, row.tenant_id, "requeued", row.status, row.attempts, reason="worker lost"
            )
        return str(row.status)


def _requeue_orphan(sessions: sessionmaker[Session], job_id: str, token: str | None, now: datetime) -> bool:
    """Hand an orphaned running job back to the queue; the next delivery starts a new attempt."""
    return _take_orphan(sessions, job_id, token, now, status=QUEUED, enqueued_at=now) is not None


def _cancel_orphan(sessions: sessionmaker[Session], job_id: str, token: str | None, now: datetime) -> bool:
    return (
        _take_orphan(sessions, job_id, token, now, status=CANCELED, finished_at=now, cost_charged=0)
        is not None
    )
