"""Deleting an account, exporting its data and restricting its processing, as the privacy
policy promises.

The export (`export`) is everything faktry keeps about the account, whoever's eyes it was kept
for: the tenant, its status and whether its processing is restricted, its people (with every
profile field, birthday and location included) and their web sessions (never a password hash or a
session token), API keys (never a key hash), the money side (the Stripe customer id, credit
lots with what bought them, holds, every ledger entry, the Stripe events about its purchases),
storage usage and reservations, files, jobs with their outputs and events, workflows with
their versions (node configurations), their runs with each step's result and the runs'
events (execution history), brand guidelines, video projects (with their last render),
webhook endpoints (not their secrets) with every message and attempt, the mails sent about the
account and their links' tokens (not their hashes), gallery entries (with their status and,
for those staff removed, the reason), the export archives asked for, the audit log of its
security events, and the moderation log entries about its prompts. The export archive
(`pipelines.exports`) holds this document, the same data as CSV and Markdown where people
read it that way, and the media files themselves.

Deletion (`delete_account`) removes the person and the content: the users (their personal
data) and their sessions, API keys, files (and their bytes in storage), jobs (their prompts
and parameters, events and outputs), workflows, their versions, runs, steps and events,
brand guidelines, video projects, webhook endpoints, their secrets and delivery logs, mails
and their tokens, export archives (and their zips), and gallery entries (unless the person
asked to keep published ones public: see `delete_account`).
Running workflow runs and jobs still running are canceled first, so their holds are
released. Credits left in lots are forfeited with ledger entries. What stays is
pseudonymous: the tenant id on the ledger, its lots and holds (kept seven years for legal
and tax reasons), and moderation log entries (kept at most twelve months for safety audits,
then swept).

Restriction (`restrict`, `restriction`) marks the tenant (`faktry.tenancy.set_restricted`):
no new job, batch, workflow run or render starts while it is set (409 ``account_restricted``,
nothing held), nothing is deleted, and reading, exporting and deleting the account still work.
Jobs and runs accepted before it finish, or the person cancels them; `restriction` counts
them so the answer can say so. Lifting it clears the mark; nothing else changed.

Redis holds traces of the account too: log-in throttles named by email, the submit rate and
running slots named by tenant, API key digests, fair admission's lists, weights and caps,
hand-over keys named by job. `forget` removes them; the caller runs it before its commit (a
Redis that is away fails the deletion, which can be asked for again) and once more after it
(what a request made in between). The only buckets left are those named by a client address
(log-in and sign-up throttles): an address is not the person's, and those buckets expire
within a minute.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from faktry import clock
from faktry.tenancy import ApiKey, Tenant, User, UserSession, VerifiedKeys, set_restricted
from pipelines import files, invitations
from pipelines.admission import Admission
from pipelines.audit import log as audit
from pipelines.brands import store as brands
from pipelines.brands.models import Brand
from pipelines.exports import store as exports
from pipelines.gallery import store as gallery
from pipelines.mail.models import AccountToken, MailMessage
from pipelines.models import FINISHED, Job, JobEvent, JobOutput, ModerationEntry
from pipelines.projects import store as projects
from pipelines.projects.models import Project
from pipelines.services import cancel, to_dict
from pipelines.uploads import service as uploads
from pipelines.uploads.models import Upload
from pipelines.webhooks import endpoints as webhook_endpoints
from pipelines.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookSigningKey
from pipelines.workflows import runs
from pipelines.workflows.models import RUNNING as RUN_RUNNING
from pipelines.workflows.models import Workflow, WorkflowEvent, WorkflowRun, WorkflowStep, WorkflowVersion
from quotas import ledger
from quotas.models import Account, CreditLot, Hold, LedgerEntry, StorageReservation, StripeEvent
from storage.models import File

#: The columns of the transactions' CSV (``GET /v1/account/transactions?format=csv`` and the
#: export archive's ``transactions.csv``).
TRANSACTION_CSV_FIELDS = ["id", "created_at", "kind", "available", "held", "debt", "lot_id", "job_id", "memo"]


def _stamp(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def lot_to_dict(lot: CreditLot) -> dict[str, Any]:
    return {
        "id": lot.id,
        "source": lot.source,
        "amount": lot.amount,
        "remaining": lot.remaining,
        "held": lot.held,
        "created_at": lot.created_at.isoformat(),
        "expires_at": lot.expires_at.isoformat(),
    }


def entry_to_dict(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "transaction",
        "created_at": entry.created_at.isoformat(),
        "kind": entry.kind,
        "available": entry.available,
        "held": entry.held,
        "debt": entry.debt,
        "lot_id": entry.lot_id,
        "job_id": entry.job_id,
        "memo": entry.memo,
    }


def restriction(session: Session, tenant_id: str) -> dict[str, Any]:
    """Whether the account's processing is restricted, since when, and how much work accepted
    before still runs (it finishes unless canceled)."""
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    count = select(func.count())
    jobs = count.select_from(Job).where(Job.tenant_id == tenant_id, Job.status.not_in(FINISHED))
    live = count.select_from(WorkflowRun).where(
        WorkflowRun.tenant_id == tenant_id, WorkflowRun.status == RUN_RUNNING
    )
    return {
        "object": "restriction",
        "restricted": tenant.restricted_at is not None,
        "restricted_at": _stamp(tenant.restricted_at),
        "unfinished_jobs": session.scalar(jobs) or 0,
        "running_workflow_runs": session.scalar(live) or 0,
    }


def restrict(session: Session, tenant_id: str, restricted: bool) -> dict[str, Any]:
    """Restrict the account's processing (``restricted``) or lift the restriction; the
    restriction as it stands now (see `restriction`)."""
    set_restricted(session, tenant_id, restricted)
    return restriction(session, tenant_id)


def export(session: Session, tenant_id: str) -> dict[str, Any]:
    """Everything faktry keeps about an account, as one JSON document (see the module's
    docstring for what that is, and `tests/web/test_account_privacy.py` for the proof that
    each table holding the tenant's rows is in it)."""
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    account = session.get(Account, tenant_id)
    funds = ledger.balance(session, tenant_id)
    lots = session.scalars(
        select(CreditLot).where(CreditLot.tenant_id == tenant_id).order_by(CreditLot.created_at, CreditLot.id)
    ).all()
    outputs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for out, file in session.execute(
        select(JobOutput, File)
        .join(File, File.id == JobOutput.file_id)
        .where(JobOutput.tenant_id == tenant_id)
    ):
        outputs[out.job_id].append({"name": out.name, **files.to_dict(file)})
    return {
        "object": "export",
        "exported_at": clock.now().isoformat(),
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "tier": tenant.tier,
            "status": tenant.status,
            "created_at": tenant.created_at.isoformat(),
            "restricted": tenant.restricted_at is not None,
            "restricted_at": _stamp(tenant.restricted_at),
        },
        "users": [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role,
                "is_staff": u.is_staff,
                "has_password": bool(u.password_hash),
                "first_name": u.first_name,
                "last_name": u.last_name,
                "company": u.company,
                "industry": u.industry,
                "website": u.website,
                "birthday": _stamp(u.birthday),
                "location": u.location,
                "created_at": u.created_at.isoformat(),
                "last_login_at": _stamp(u.last_login_at),
                "email_verified_at": _stamp(u.email_verified_at),
            }
            for u in session.scalars(select(User).where(User.tenant_id == tenant_id))
        ],
        "sessions": [
            {
                "id": s.id,
                "user_id": s.user_id,
                "created_at": s.created_at.isoformat(),
                "last_seen_at": _stamp(s.last_seen_at),
                "user_agent": s.user_agent,
                "address": s.address,
            }
            for s in session.scalars(select(UserSession).where(UserSession.tenant_id == tenant_id))
        ],
        "api_keys": [
            {
                "id": k.id,
                "user_id": k.user_id,
                "name": k.name,
                "prefix": k.prefix,
                "active": k.active,
                "created_at": k.created_at.isoformat(),
                "last_used_at": _stamp(k.last_used_at),
                "revoked_at": _stamp(k.revoked_at),
            }
            for k in session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id))
        ],
        "billing": {
            "stripe_customer_id": account.stripe_customer_id if account else None,
            "credits": {"unit": "millicredits", "available": funds.available, "held": funds.held},
            "debt": funds.debt,
        },
        "credit_lots": [{**lot_to_dict(lot), "reference": lot.reference} for lot in lots],
        "holds": [
            {
                "id": h.id,
                "job_id": h.job_id,
                "amount": h.amount,
                "captured": h.captured,
                "status": h.status,
                "created_at": h.created_at.isoformat(),
                "resolved_at": _stamp(h.resolved_at),
            }
            for h in session.scalars(select(Hold).where(Hold.tenant_id == tenant_id))
        ],
        "transactions": [
            entry_to_dict(e)
            for e in session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.tenant_id == tenant_id)
                .order_by(LedgerEntry.created_at, LedgerEntry.id)
            )
        ],
        "payments": _payments(session, account, lots),
        "storage": {
            "used_bytes": account.storage_used_bytes if account else 0,
            "reserved_bytes": account.storage_reserved_bytes if account else 0,
            "reservations": [
                {"id": r.id, "bytes": r.bytes, "created_at": r.created_at.isoformat()}
                for r in session.scalars(
                    select(StorageReservation).where(StorageReservation.tenant_id == tenant_id)
                )
            ],
        },
        "files": [files.to_dict(f) for f in session.scalars(select(File).where(File.tenant_id == tenant_id))],
        "uploads": [
            uploads.to_dict(u)
            for u in session.scalars(
                select(Upload).where(Upload.tenant_id == tenant_id).order_by(Upload.created_at, Upload.id)
            )
        ],
        "jobs": [
            {**to_dict(j), "outputs": outputs.get(j.id, [])}
            for j in session.scalars(select(Job).where(Job.tenant_id == tenant_id))
        ],
        "job_events": [
            {
                "id": e.id,
                "job_id": e.job_id,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "status": e.status,
                "attempt": e.attempt,
                "data": e.data,
            }
            for e in session.scalars(
                select(JobEvent).where(JobEvent.tenant_id == tenant_id).order_by(JobEvent.id)
            )
        ],
        **_workflows(session, tenant_id),
        "brands": [
            brands.to_dict(b)
            for b in session.scalars(
                select(Brand).where(Brand.tenant_id == tenant_id).order_by(Brand.created_at, Brand.id)
            )
        ],
        "projects": _projects(session, tenant_id),
        **_webhooks(session, tenant_id),
        **_mail(session, tenant_id),
        "gallery_entries": [gallery.export_dict(e) for e in gallery.of_tenant(session, tenant_id)],
        "export_archives": [
            exports.to_dict(a) for a in exports.list_archives(session, tenant_id, limit=None)
        ],
        "audit_log": [audit.to_dict(e) for e in audit.of_tenant(session, tenant_id)],
        "invitations": [invitations.to_dict(i) for i in invitations.listing(session, tenant_id, limit=None)],
        "moderation_log": [
            {
                "id": m.id,
                "at": m.at.isoformat(),
                "action": m.action,
                "category": m.category,
                "score": m.score,
                "source": m.source,
                "endpoint": m.endpoint,
                "model": m.model,
                "prompt": m.prompt,
                "reason": m.reason,
            }
            for m in session.scalars(
                select(ModerationEntry)
                .where(ModerationEntry.tenant_id == tenant_id)
                .order_by(ModerationEntry.at)
            )
        ],
    }


def _webhooks(session: Session, tenant_id: str) -> dict[str, Any]:
    """Webhook endpoints (their secrets are credentials, never exported) and every message
    with its attempt log."""
    hooks = session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    ).all()
    messages = session.scalars(
        select(WebhookMessage)
        .where(WebhookMessage.tenant_id == tenant_id)
        .order_by(WebhookMessage.created_at, WebhookMessage.id)
    ).all()
    tries = webhook_endpoints.attempts(session, [m.id for m in messages])
    return {
        "webhook_endpoints": [{**webhook_endpoints.to_dict(h), "subject_id": h.subject_id} for h in hooks],
        "webhook_messages": [webhook_endpoints.message_dict(m, tries[m.id]) for m in messages],
        "webhook_signing_keys": [
            {"created_at": _stamp(k.created_at), "previous_until": _stamp(k.previous_until)}
            for k in session.scalars(
                select(WebhookSigningKey).where(WebhookSigningKey.tenant_id == tenant_id)
            )
        ],
    }


def _mail(session: Session, tenant_id: str) -> dict[str, Any]:
    """Every mail about the account, as sent, and the links' tokens (never their hashes)."""

    def rows(model: Any) -> Any:
        return session.scalars(
            select(model).where(model.tenant_id == tenant_id).order_by(model.created_at, model.id)
        )

    return {
        "mail_messages": [
            {
                "id": m.id,
                "to": m.to_address,
                "kind": m.kind,
                "subject": m.subject,
                "text": m.text_body,
                "status": m.status,
                "attempts": m.attempts,
                "transport": m.transport,
                "created_at": m.created_at.isoformat(),
                "sent_at": _stamp(m.sent_at),
            }
            for m in rows(MailMessage)
        ],
        "account_tokens": [
            {
                "id": t.id,
                "user_id": t.user_id,
                "purpose": t.purpose,
                "created_at": t.created_at.isoformat(),
                "expires_at": t.expires_at.isoformat(),
                "used_at": _stamp(t.used_at),
            }
            for t in rows(AccountToken)
        ],
    }


def _projects(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    rows = list(
        session.scalars(
            select(Project).where(Project.tenant_id == tenant_id).order_by(Project.created_at, Project.id)
        )
    )
    renders = projects.renders(session, rows)
    return [projects.to_dict(p, renders[p.id]) for p in rows]


def _workflows(session: Session, tenant_id: str) -> dict[str, Any]:
    """Saved workflows and their versions, and every run with its steps and events."""

    def rows(model: Any, *order: Any) -> Any:
        return session.scalars(select(model).where(model.tenant_id == tenant_id).order_by(*order))

    return {
        "workflows": [
            {
                "id": w.id, "name": w.name, "description": w.description, "version": w.version,
                "created_at": w.created_at.isoformat(), "updated_at": w.updated_at.isoformat(),
            }
            for w in rows(Workflow, Workflow.created_at, Workflow.id)
        ],
        "workflow_versions": [
            {
                "id": v.id, "workflow_id": v.workflow_id, "version": v.version, "graph": v.graph,
                "created_at": v.created_at.isoformat(),
            }
            for v in rows(WorkflowVersion, WorkflowVersion.workflow_id, WorkflowVersion.version)
        ],
        "workflow_runs": [
            {**runs.to_dict(session, r, steps=False), "graph": r.graph}
            for r in rows(WorkflowRun, WorkflowRun.created_at, WorkflowRun.id)
        ],
        "workflow_steps": [
            {
                "id": st.id, "run_id": st.run_id, "node": st.node, "item": st.item, "status": st.status,
                "attempt": st.attempt, "job_id": st.job_id, "outputs": st.outputs, "cost": st.cost,
                "error_code": st.error_code, "error_message": st.error_message, "reused_from": st.reused_from,
                "started_at": _stamp(st.started_at), "finished_at": _stamp(st.finished_at),
            }
            for st in rows(WorkflowStep, WorkflowStep.run_id, WorkflowStep.node, WorkflowStep.item)
        ],
        "workflow_events": [
            {
                "id": e.id, "run_id": e.run_id, "at": e.at.isoformat(), "kind": e.kind, "node": e.node,
                "item": e.item, "data": e.data,
            }
            for e in rows(WorkflowEvent, WorkflowEvent.id)
        ],
    }  # fmt: skip


def _payments(session: Session, account: Account | None, lots: Sequence[CreditLot]) -> list[dict[str, Any]]:
    """The Stripe events faktry applied or keeps about this account's purchases: those about its
    Stripe customer, and those about a payment that bought one of its lots."""
    references = {lot.reference for lot in lots if lot.source == "purchase" and lot.reference}
    if account is not None and account.stripe_customer_id:
        references.add(account.stripe_customer_id)
    if not references:
        return []
    # Stripe's events are no tenant's rows (on PostgreSQL the tenant's role cannot read the
    # table): read as the privileged role, only those the account's own rows point at.
    tenant_id = session.info.pop("tenant_id", None)
    try:
        rows = session.scalars(
            select(StripeEvent).where(StripeEvent.reference.in_(references)).order_by(StripeEvent.received_at)
        ).all()
    finally:
        if tenant_id is not None:
            session.info["tenant_id"] = tenant_id
    return [
        {
            "id": e.id,
            "type": e.type,
            "status": e.status,
            "received_at": e.received_at.isoformat(),
            "event": json.loads(e.payload) if e.payload else None,
        }
        for e in rows
    ]


@dataclass(frozen=True)
class Traces:
    """What names a deleted account in Redis: its tenant id, its people's ids and emails, its
    API keys' ids and visible prefixes, its jobs' ids."""

    tenant_id: str
    emails: frozenset[str]
    ids: frozenset[str]
    key_ids: frozenset[str]

    def name(self, key: str) -> bool:
        """Whether the Redis key ``key`` is named by one of these traces: one of its
        ``:``- or ``|``-separated parts is an id, or it ends with ``:<email>`` (an email may
        hold a colon, and is never matched as a part of a longer one)."""
        if any(part in self.ids for part in _PARTS.split(key)):
            return True
        return any(key.endswith(":" + email) for email in self.emails)


_PARTS = re.compile(r"[:|]")


@dataclass(frozen=True)
class Deleted:
    """A deleted account: the storage prefixes to remove once the deletion has committed,
    and the traces `forget` removes from Redis."""

    prefixes: list[str]
    traces: Traces
    #: Single objects to remove too: the public copies of unpublished gallery entries.
    keys: list[str] = field(default_factory=list)


def delete_account(session: Session, tenant_id: str, *, keep_gallery_public: bool = False) -> Deleted | None:
    """Delete the account's people and content. While a job still runs it only asks it to
    stop and returns None: the caller commits that and asks again shortly.

    Gallery entries are unpublished (their public copies deleted with the account's files),
    unless the person chose ``keep_gallery_public``: then published ones stay public under
    their display name, no longer linked to the person (`pipelines.gallery.store`)."""
    running = False
    # Runs first: their waiting steps never start, their own holds are released.
    live = select(WorkflowRun.id).where(WorkflowRun.tenant_id == tenant_id, WorkflowRun.status == RUN_RUNNING)
    for run_id in session.scalars(live).all():
        runs.cancel(session, run_id)
    unfinished = select(Job).where(Job.tenant_id == tenant_id, Job.status.not_in(FINISHED))
    for job in session.scalars(unfinished).all():
        cancel(session, job.id)  # queued jobs end here, their holds released
        running = running or job.status not in FINISHED
    if running:
        return None
    traces = _traces(session, tenant_id)
    account = ledger.lock_account(session, tenant_id)
    for lot in session.scalars(
        select(CreditLot).where(CreditLot.tenant_id == tenant_id, CreditLot.remaining > 0)
    ):
        session.add(
            LedgerEntry(
                tenant_id=tenant_id, kind="adjustment", available=-lot.remaining, lot_id=lot.id,
                idempotency_key=f"account-deleted:{lot.id}", memo="forfeited: account deleted",
            )
        )  # fmt: skip
        lot.remaining = 0
    session.execute(delete(File).where(File.tenant_id == tenant_id, File.root_id.is_not(None)))
    session.execute(delete(File).where(File.tenant_id == tenant_id))
    session.execute(delete(JobEvent).where(JobEvent.tenant_id == tenant_id))
    session.execute(delete(JobOutput).where(JobOutput.tenant_id == tenant_id))
    session.execute(delete(Job).where(Job.tenant_id == tenant_id))
    for model in (WorkflowEvent, WorkflowStep, WorkflowRun, WorkflowVersion, Workflow):
        session.execute(delete(model).where(model.tenant_id == tenant_id))
    session.execute(delete(Project).where(Project.tenant_id == tenant_id))
    # Webhooks last: canceling the jobs above wrote messages too.
    for hook_model in (WebhookAttempt, WebhookMessage, WebhookEndpoint, WebhookSigningKey):
        session.execute(delete(hook_model).where(hook_model.tenant_id == tenant_id))
    session.execute(delete(Brand).where(Brand.tenant_id == tenant_id))
    gallery_keys = gallery.on_account_deleted(session, tenant_id, keep_public=keep_gallery_public)
    exports.delete_all(session, tenant_id)
    audit.delete_all(session, tenant_id)
    invitations.delete_all(session, tenant_id)
    # Mail last too: their addresses are the person's. A mail not sent yet is not sent.
    for mail_model in (MailMessage, AccountToken):
        session.execute(delete(mail_model).where(mail_model.tenant_id == tenant_id))
    # Their bytes go with the account's prefix; an S3 multipart upload left without its row
    # is aborted by the scheduler (pipelines/uploads/sweep.py).
    session.execute(delete(Upload).where(Upload.tenant_id == tenant_id))
    session.execute(delete(StorageReservation).where(StorageReservation.tenant_id == tenant_id))
    session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant_id))
    session.execute(delete(UserSession).where(UserSession.tenant_id == tenant_id))
    session.execute(delete(User).where(User.tenant_id == tenant_id))
    account.storage_used_bytes = 0
    account.storage_reserved_bytes = 0
    session.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(status="deleted", name="", restricted_at=None)
    )
    session.flush()
    return Deleted(
        prefixes=[f"t/{tenant_id}/", exports.storage_prefix(tenant_id)], traces=traces, keys=gallery_keys
    )


def _traces(session: Session, tenant_id: str) -> Traces:
    users = session.execute(select(User.id, User.email).where(User.tenant_id == tenant_id)).all()
    keys = session.execute(select(ApiKey.id, ApiKey.prefix).where(ApiKey.tenant_id == tenant_id)).all()
    job_ids = session.scalars(select(Job.id).where(Job.tenant_id == tenant_id)).all()
    return Traces(
        tenant_id=tenant_id,
        emails=frozenset(email for _, email in users),
        ids=frozenset(
            [tenant_id, *(u for u, _ in users), *(k for k, _ in keys), *(p for _, p in keys), *job_ids]
        ),
        key_ids=frozenset(k for k, _ in keys),
    )


def forget(client: Any, namespace: str, traces: Traces, *, queues: Iterable[str]) -> int:
    """Remove the account's traces from Redis (see the module's docstring); returns how many
    keys were deleted. Raises the client's error when Redis cannot be reached.

    Keys named by a trace are found by one scan of the namespace, so a key a new feature names
    by tenant, person, key or job is removed without changing this. Traces kept inside shared
    keys are removed by their owners: API key digests (`VerifiedKeys.forget`, whose entries are
    named by a digest) and fair admission's per-queue order, weights and caps
    (`Admission.forget_tenant`)."""
    verified = VerifiedKeys(client, namespace, ttl_seconds=1.0)
    for key_id in sorted(traces.key_ids):
        verified.forget(key_id)
    Admission(client, namespace, depth=0, running_namespace=namespace).forget_tenant(
        traces.tenant_id, list(queues)
    )
    names: list[Any] = []
    for raw in client.scan_iter(match=_glob_escape(namespace) + ":*", count=1000):
        if traces.name(raw.decode() if isinstance(raw, bytes) else str(raw)):
            names.append(raw)
    for start in range(0, len(names), 500):
        client.delete(*names[start : start + 500])
    return len(names)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
