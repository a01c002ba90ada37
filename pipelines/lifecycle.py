"""A job's lifecycle: every change of its status, in one place.

    queued ──claim──▶ running ──succeed──▶ succeeded
      ▲                │  │ └──finish───▶ failed | canceled
      └──retry/orphan──┘  └──park (waits upstream, no lease token)──▶ running

Every transition is one `fenced` update: ``UPDATE jobs SET … WHERE id = :job AND <fence>
RETURNING …``, where the fence is what must still be true for the change to be right (the
caller's lease token, the status it saw). Exactly one process wins each transition; the
others see None and leave the job alone. Each transition appends its event in the same
transaction.

`UnitOfWork` is the transaction a transition runs in, with hooks that run once it has
committed (send the job's message, count it, remove files): a rolled-back transaction
sends nothing, and a hook that fails costs nothing the reconciler does not repair.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import memo, transaction
from pipelines.models import CANCELED, QUEUED, RUNNING, SUCCEEDED, Job, JobEvent
from pipelines.webhooks import outbox
from quotas.models import WEBHOOKS, Account
from storage.models import File

log = logging.getLogger("faktry.lifecycle")

Hook = Callable[[], object]


class UnitOfWork:
    """One short transaction, and what to do once it has committed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._hooks: list[Hook] = []

    def after_commit(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def commit(self) -> None:
        """Commit the session, then run the hooks (the edge that owns the session calls it)."""
        self.session.commit()
        self.run_hooks()

    def run_hooks(self) -> None:
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                # The transaction is the truth: what a hook failed to do, the reconciler does.
                log.warning("an after-commit step failed", exc_info=True)


@contextmanager
def unit_of_work(sessions: sessionmaker[Session], *, tenant_id: str | None = None) -> Iterator[UnitOfWork]:
    """A `faktry.db.transaction` whose hooks run once it has committed (never after a
    rollback)."""
    with transaction(sessions, tenant_id=tenant_id) as session:
        uow = UnitOfWork(session)
        yield uow
    uow.run_hooks()


def transition(
    fence: ColumnElement[bool] | None, values: dict[str, Any], returning: Sequence[Any] = ()
) -> Update:
    """The fenced update of one transition: ``UPDATE jobs SET <values> WHERE id = :job AND
    <fence> RETURNING id, <returning>``. The transitions of every job's path are built once,
    at import, with `bindparam` for what changes per call: SQLAlchemy then reuses their
    compiled SQL without building and hashing a new statement each time."""
    stmt = update(Job).where(Job.id == bindparam("job"))
    if fence is not None:
        stmt = stmt.where(fence)
    return stmt.values(**values).returning(Job.id, *returning)


def fenced(
    session: Session,
    job_id: str,
    fence: ColumnElement[bool] | Update | None,
    values: dict[str, Any] | None = None,
    returning: Sequence[Any] = (),
    /,
    **params: Any,
) -> Row[Any] | None:
    """Change the job if the fence still holds; the returned row (the ``returning`` columns
    after the change) or None when another process changed it first. ``fence`` is either a
    `transition` built beforehand (with its ``params``) or the fence of a one-off change."""
    stmt = fence if isinstance(fence, Update) else transition(fence, values or {}, returning)
    # Core on the session's connection: no ORM bookkeeping for a row nobody holds in memory.
    row = session.connection().execute(stmt, {"job": job_id, **params}).first()
    if row is not None and "webhooks" in row._fields and row.webhooks is not None:
        memo(session)[(WEBHOOKS, row.tenant_id)] = row.webhooks
    return row


def event(
    session: Session, job_id: str, tenant_id: str, kind: str, status: str, attempt: int, /, **data: Any
) -> None:
    """Append one job event (Core, one statement built once: no object to track), and the
    webhook messages it makes, in the same transaction (`pipelines.webhooks.outbox`)."""
    at = clock.now()
    params = {
        "job_id": job_id,
        "tenant_id": tenant_id,
        "at": at,
        "kind": kind,
        "status": status,
        "attempt": attempt,
        "data": data,
    }
    if kind not in outbox.JOB_EVENTS:
        session.connection().execute(_EVENT, params)
        return
    seq = session.connection().execute(_EVENT_ID, params).scalar_one()
    outbox.job_event(session, seq, job_id, tenant_id, kind, status, attempt, data, at)


_EVENT = insert(JobEvent)
_EVENT_ID = insert(JobEvent).returning(JobEvent.id)


def held_by(token: str | None) -> ColumnElement[bool]:
    """The fence of an attempt: its lease token is still the job's (a parked job has none)."""
    return Job.lease_token.is_(None) if token is None else Job.lease_token == token


#: Whether the job's tenant has webhook endpoints, read with the change of the job itself,
#: so that the events of a tenant without any look for none (`webhooks.outbox`).
_WEBHOOKS = (
    select(Account.webhooks).where(Account.tenant_id == Job.tenant_id).scalar_subquery().label("webhooks")
)


def _of_input(column: Any, name: str) -> Any:
    """A column of the job's main input file (its tenant's own), read with the claim: None
    when the job has none or the file was deleted."""
    found = select(column).where(File.id == Job.input_file_id, File.tenant_id == Job.tenant_id)
    return found.scalar_subquery().label(name)


#: What a worker needs of a job to run it, read by the claim itself: the job, and its main
#: input file's storage key, kind and media facts (a job with more files reads the others
#: in the claim's transaction).
CLAIMED = (
    Job.tenant_id,
    Job.type,
    Job.params,
    Job.input,
    Job.input_file_id,
    Job.attempts,
    Job.model,
    Job.provider,
    Job.queue,
    Job.cancel_requested,
    Job.provider_request_id,
    Job.provider_state,
    Job.started_at,
    Job.cost_held,
    _WEBHOOKS,
    _of_input(File.storage_key, "input_key"),
    _of_input(File.kind, "input_kind"),
    _of_input(File.media, "input_media"),
)


_NOW = bindparam("now", type_=Job.updated_at.type)
_TOKEN = bindparam("token", type_=Job.lease_token.type)
_FINISHED = (Job.tenant_id, Job.type, Job.attempts, Job.started_at, Job.finished_at, Job.run_id, _WEBHOOKS)

_START = transition(
    (Job.status == QUEUED)
    | ((Job.status == RUNNING) & Job.lease_token.is_not(None) & (Job.lease_expires_at < _NOW)),
    {
        "status": RUNNING,
        "attempts": Job.attempts + 1,
        "lease_token": _TOKEN,
        "lease_expires_at": bindparam("until"),
        "started_at": _NOW,
        "updated_at": _NOW,
        "progress": 0.0,
    },
    CLAIMED,
)
_RESUME = transition(
    (Job.status == RUNNING) & Job.lease_token.is_(None),
    {"lease_token": _TOKEN, "lease_expires_at": bindparam("until"), "updated_at": _NOW},
    CLAIMED,
)


def claim(
    session: Session, job_id: str, token: str, now: datetime, lease_until: datetime
) -> tuple[Row[Any], bool] | None:
    """Take the job for one delivery: start a new attempt if it is queued or its worker's
    lease expired, else resume it if it waits upstream (parked, no lease token: the same
    attempt goes on). Returns the job's row and whether it resumed, or None."""
    started = fenced(session, job_id, _START, now=now, token=token, until=lease_until)
    if started is not None:
        event(session, job_id, started.tenant_id, "started", RUNNING, started.attempts)
        return started, False
    parked = fenced(session, job_id, _RESUME, now=now, token=token, until=lease_until)
    return (parked, True) if parked is not None else None


_SUCCEED = transition(
    (Job.lease_token == _TOKEN) & (Job.status == RUNNING),
    {
        "status": SUCCEEDED,
        "progress": 1.0,
        "finished_at": _NOW,
        "updated_at": _NOW,
        "lease_token": None,
        "lease_expires_at": None,
        "result": bindparam("outcome"),
        "error_code": None,
        "error_message": None,
        "cost_charged": bindparam("charged"),
    },
    _FINISHED,
)


def succeed(
    session: Session, job_id: str, token: str, now: datetime, result: dict[str, Any], charged: int
) -> Row[Any] | None:
    return fenced(session, job_id, _SUCCEED, token=token, now=now, outcome=result, charged=charged)


def _finish_by(fence: ColumnElement[bool]) -> Update:
    return transition(
        fence & (Job.status == RUNNING),
        {
            "status": bindparam("to"),
            "finished_at": _NOW,
            "updated_at": _NOW,
            "lease_token": None,
            "lease_expires_at": None,
            "error_code": bindparam("code"),
            "error_message": bindparam("message"),
            "cost_charged": 0,
        },
        _FINISHED,
    )


#: Finishing an attempt that holds its lease, and a parked job (no lease token).
_FINISH = _finish_by(Job.lease_token == _TOKEN)
_FINISH_PARKED = _finish_by(Job.lease_token.is_(None))


def finish(
    session: Session,
    job_id: str,
    token: str | None,
    now: datetime,
    status: str,
    code: str | None,
    message: str | None,
) -> Row[Any] | None:
    """Failed or canceled: nothing charged (the caller releases the hold)."""
    return fenced(
        session,
        job_id,
        _FINISH_PARKED if token is None else _FINISH,
        token=token,
        now=now,
        to=status,
        code=code,
        message=(message or "")[:500] or None,
    )


def back_to_queue(
    session: Session, job_id: str, token: str | None, now: datetime, **values: Any
) -> Row[Any] | None:
    """A transient failure, or a lost worker: the next delivery starts a new attempt."""
    return fenced(
        session,
        job_id,
        held_by(token) & (Job.status == RUNNING),
        {"status": QUEUED, "lease_token": None, "lease_expires_at": None, "updated_at": now, **values},
        (Job.tenant_id, Job.attempts),
    )


_CANCEL_QUEUED = transition(
    Job.status == QUEUED,
    {
        "status": CANCELED,
        "finished_at": _NOW,
        "updated_at": _NOW,
        "cancel_requested": True,
        "cost_charged": 0,
    },
    (Job.tenant_id, Job.attempts),
)


def cancel_queued(session: Session, job_id: str, now: datetime) -> Row[Any] | None:
    return fenced(session, job_id, _CANCEL_QUEUED, now=now)
