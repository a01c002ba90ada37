"""The outbox: an event becomes one message per endpoint that wants it, in the event's own
transaction.

`record` is called by the one place each kind of event is written (job events in
`pipelines.lifecycle.event`, workflow run events in `pipelines.workflows.runs`, credits and
payments in `quotas`); the messages commit or roll back with the event, so an event that
committed is delivered even if its process dies the instant after. The ids of the messages
a transaction wrote are kept on the session and handed to the ``kick`` that `install`
registered, once the transaction has committed (the fast path: a delivery starts at once).
Whatever the kick loses, the scheduler's sweep of due messages finds (`delivery.due`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import hand_over_at_commit, memo, new_id
from pipelines.webhooks.models import WebhookEndpoint, WebhookMessage
from quotas.models import WEBHOOKS

log = logging.getLogger("faktry.webhooks")

#: Job event kinds (``job_events.kind``) that are sent, and their event type.
JOB_EVENTS = {
    "created": "job.created",
    "started": "job.started",
    "progress": "job.progress",
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "canceled": "job.canceled",
}
#: Workflow run event kinds (``workflow_events.kind``) that are sent, and their event type.
RUN_EVENTS = {
    "started": "workflow_run.started",
    "step_succeeded": "workflow_run.step_succeeded",
    "step_failed": "workflow_run.step_failed",
    "succeeded": "workflow_run.succeeded",
    "failed": "workflow_run.failed",
    "canceled": "workflow_run.canceled",
}
CREDITS_LOW = "credits.low"
PAYMENT_COMPLETED = "payment.completed"
ENDPOINT_DISABLED = "webhook_endpoint.disabled"
#: An export archive the account asked for is ready to download, or could not be built.
EXPORT_READY = "export.ready"
EXPORT_FAILED = "export.failed"
TEST = "webhook.test"
EVENT_TYPES = (
    *JOB_EVENTS.values(),
    *RUN_EVENTS.values(),
    CREDITS_LOW,
    PAYMENT_COMPLETED,
    ENDPOINT_DISABLED,
    EXPORT_READY,
    EXPORT_FAILED,
    TEST,
)

_KICK = "webhook_outbox"
_MESSAGE = insert(WebhookMessage)
Kick = Callable[[Sequence[str]], object]


def record(
    session: Session,
    tenant_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    seq: int = 0,
    subject_id: str | None = None,
    at: datetime | None = None,
    endpoint_id: str | None = None,
    new_subject: bool = False,
) -> list[str]:
    """Write the messages of one event: one per enabled endpoint of the tenant that takes
    ``event_type`` (and the per-job webhook of ``subject_id``, if it has one), or only to
    ``endpoint_id`` when given. ``new_subject`` says the subject was made in this very
    transaction, so it cannot have a webhook of its own yet. Returns the messages' ids."""
    if endpoint_id is not None:
        found = session.execute(
            select(WebhookEndpoint.events).where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.tenant_id == tenant_id,
                WebhookEndpoint.enabled.is_(True),
            )
        ).scalars()
        targets = [endpoint_id for events in found if not events or event_type in events]
    else:
        wanted = _endpoints(session, tenant_id, None if new_subject else subject_id)
        targets = [target for target, events in wanted if not events or event_type in events]
    if not targets:
        return []
    now = at or clock.now()
    payload = {"type": event_type, "timestamp": now.isoformat(), "seq": seq, "data": data}
    rows = [
        {
            "id": new_id("msg"), "tenant_id": tenant_id, "endpoint_id": target, "event_type": event_type,
            "seq": seq, "subject_id": subject_id, "payload": payload, "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now,
        }
        for target in targets
    ]  # fmt: skip
    session.connection().execute(_MESSAGE, rows)
    ids = [str(r["id"]) for r in rows]
    session.info.setdefault(_KICK, []).extend(ids)
    return ids


Targets = list[tuple[str, list[str]]]


def _endpoints(session: Session, tenant_id: str, subject_id: str | None) -> Targets:
    """The enabled endpoints of the tenant, and of ``subject_id`` if given, as ``(id, event
    types)``. Read at most once per transaction for the tenant and once per subject, and
    not at all when a row this transaction read already says the tenant has none
    (``accounts.webhooks``, read with the account lock of a hold or the change of a job)."""
    seen = memo(session)
    if seen.get((WEBHOOKS, tenant_id)) is False:
        return []
    mine = (_ENDPOINTS, tenant_id)
    wide: Targets | None = seen.get(mine)
    own: Targets = seen.get((_ENDPOINTS, tenant_id, subject_id), []) if subject_id else []
    if wide is None or (subject_id and (_ENDPOINTS, tenant_id, subject_id) not in seen):
        stmt = select(WebhookEndpoint.id, WebhookEndpoint.events, WebhookEndpoint.subject_id).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True)
        )
        if wide is not None:  # only the subject's own are missing
            stmt = stmt.where(WebhookEndpoint.subject_id == subject_id)
        elif subject_id is None:
            stmt = stmt.where(WebhookEndpoint.subject_id.is_(None))
        else:
            mine_or_its = or_(WebhookEndpoint.subject_id.is_(None), WebhookEndpoint.subject_id == subject_id)
            stmt = stmt.where(mine_or_its)
        rows = session.execute(stmt).all()
        if wide is None:
            wide = seen[mine] = [(row.id, row.events) for row in rows if row.subject_id is None]
        if subject_id:
            own = seen[(_ENDPOINTS, tenant_id, subject_id)] = [
                (row.id, row.events) for row in rows if row.subject_id == subject_id
            ]
    return wide + own


def forget(session: Session, tenant_id: str) -> None:
    """Drop what this transaction read of the tenant's endpoints (it just changed them)."""
    seen = memo(session)
    for key in [k for k in seen if k[:2] in ((_ENDPOINTS, tenant_id), (WEBHOOKS, tenant_id))]:
        del seen[key]


_ENDPOINTS = "webhook.endpoints"


def install(sessions: sessionmaker[Session], kick: Kick) -> None:
    """Hand the ids of the messages each transaction of ``sessions`` wrote to ``kick`` once it
    has committed (nothing after a rollback; see `faktry.db.hand_over_at_commit`)."""
    hand_over_at_commit(sessions, _KICK, kick, log)


def job_event(
    session: Session, seq: int, job_id: str, tenant_id: str, kind: str, status: str, attempt: int,
    data: dict[str, Any], at: datetime,
) -> None:  # fmt: skip
    """The messages of one job event (`pipelines.lifecycle.event`), if its kind is sent."""
    event_type = JOB_EVENTS.get(kind)
    if event_type is not None:
        body = {"job_id": job_id, "status": status, "attempt": attempt, **data}
        made = kind == "created"
        record(session, tenant_id, event_type, body, seq=seq, subject_id=job_id, at=at, new_subject=made)
    price = data.get("price")
    if kind == "created" and isinstance(price, int) and price > 0:
        _credits_low(session, tenant_id, price, at)


#: ``credits.low`` is sent when a submit takes the available balance below this many
#: millicredits (10 credits).
CREDITS_LOW_BELOW = 10_000
_LOW_SENT = "webhook_credits_low_sent"


def _credits_low(session: Session, tenant_id: str, price: int, at: datetime) -> None:
    """``credits.low`` when the hold just taken for a job crossed the line (once per
    transaction, and only for tenants with an endpoint that takes it)."""
    seen = memo(session)
    if seen.get((_LOW_SENT, tenant_id)):
        return
    if not any(not events or CREDITS_LOW in events for _, events in _endpoints(session, tenant_id, None)):
        return
    from quotas import ledger

    available = ledger.balance(session, tenant_id).available
    if available < CREDITS_LOW_BELOW <= available + price:
        seen[(_LOW_SENT, tenant_id)] = True
        record(session, tenant_id, CREDITS_LOW, {"available": available, "below": CREDITS_LOW_BELOW}, at=at)


@contextmanager
def payments(session: Session) -> Iterator[None]:
    """Send ``payment.completed`` for every purchase of credits made inside the block, in its
    transaction (the Stripe webhook view wraps the event it applies)."""
    from quotas.models import CreditLot

    bought: list[Any] = []

    def seen(sess: Session, *_: Any) -> None:
        bought.extend(o for o in sess.new if isinstance(o, CreditLot) and o.source == "purchase")

    sa_event.listen(session, "before_flush", seen)
    try:
        yield
    finally:
        sa_event.remove(session, "before_flush", seen)
    session.flush()
    for lot in bought:
        record(
            session,
            lot.tenant_id,
            PAYMENT_COMPLETED,
            {
                "credits": lot.amount / 1000,
                "millicredits": lot.amount,
                "lot_id": lot.id,
                "reference": lot.reference,
            },
        )


def run_event(
    session: Session, seq: int, run_id: str, tenant_id: str, kind: str, node: str | None,
    item: int | None, data: dict[str, Any], at: datetime,
) -> None:  # fmt: skip
    """The messages of one workflow run event (`pipelines.workflows.runs`), if its kind is sent."""
    event_type = RUN_EVENTS.get(kind)
    if event_type is not None:
        body = {"run_id": run_id, "node": node, "item": item, **data}
        made = kind == "started"  # a run's first event, written with the run
        record(session, tenant_id, event_type, body, seq=seq, subject_id=run_id, at=at, new_subject=made)
