"""Running one delivery of a job's message.

The shape is: claim in one short transaction; do the slow work with no transaction open,
while a heartbeat thread renews the lease, saves progress and watches for cancel; then
record the outcome in another short transaction, fenced by the lease token. Temporary
files live in a per-attempt folder that is always removed.

Outcomes:
- success: outputs are stored under ``t/<tenant>/jobs/<job>/a<attempt>/`` and recorded;
  the files of any other attempt are removed, so exactly one set of outputs remains;
- a permanent error (bad media, bad params): the job fails with the error's stable code;
- a transient error: the job goes back to ``queued`` and `RetryLater` asks the caller's
  queue to deliver it again with backoff, until the attempts are spent;
- cancel: the step's processes are killed, partial outputs removed, the job ``canceled``.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.config import Settings
from faktry.db import transaction
from faktry.errors import Canceled, FaktryError
from faktry.tenancy import Tenant
from pipelines import files, jobtypes
from pipelines.media import detect
from pipelines.models import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobOutput
from pipelines.services import record_event
from pipelines.steps.base import Output, StepContext
from quotas import ledger
from quotas.limits import cancel_reservation, commit_reservation, reserve_storage, tier_limits
from quotas.pricing import PriceList
from quotas.ratelimit import RunningSlots
from storage.interface import Storage
from storage.models import File

log = logging.getLogger("faktry.runner")


class WaitForSlot(Exception):
    """The tenant already runs as many jobs as its tier allows: look again after a while."""

    def __init__(self, delay_ms: int) -> None:
        super().__init__(f"tenant at its concurrent-job cap; retry in {delay_ms} ms")
        self.delay_ms = delay_ms


class RetryLater(Exception):
    """A transient failure: deliver the message again after a backoff."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class Context:
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    prices: PriceList = field(default_factory=PriceList)
    #: Per-tenant running-job caps across all workers; None runs without caps (tests of
    #: the runner alone).
    slots: RunningSlots | None = None


@dataclass(frozen=True)
class Claim:
    job_id: str
    tenant_id: str
    token: str
    attempt: int


def claim(ctx: Context, job_id: str) -> Claim | None:
    """Take the job for this delivery, or None when there is nothing to do: it finished,
    was canceled, or another worker holds a live lease on it."""
    now = clock.now()
    token = secrets.token_hex(16)
    lease_until = now + timedelta(seconds=ctx.settings.job_lease_seconds)
    with transaction(ctx.sessions) as session:
        result = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.cancel_requested.is_(False),
                (Job.status == QUEUED) | ((Job.status == RUNNING) & (Job.lease_expires_at < now)),
            )
            .values(
                status=RUNNING,
                attempts=Job.attempts + 1,
                lease_token=token,
                lease_expires_at=lease_until,
                started_at=now,
                updated_at=now,
                progress=0.0,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        record_event(session, job, "started")
        return Claim(job_id=job.id, tenant_id=job.tenant_id, token=token, attempt=job.attempts)


class Heartbeat:
    """Renews the lease, saves progress and notices cancel requests, once a second."""

    def __init__(self, ctx: Context, claim: Claim) -> None:
        self.ctx = ctx
        self.claim = claim
        self.progress = 0.0
        self.saved_progress = -1.0
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{claim.job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, fraction: float) -> None:
        self.progress = max(self.progress, min(max(fraction, 0.0), 1.0))

    def should_cancel(self) -> bool:
        return self.cancel.is_set() or self.lost.is_set()

    def _loop(self) -> None:
        interval = self.ctx.settings.job_heartbeat_seconds
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:  # a database hiccup must not kill the job; the next beat retries
                log.warning("heartbeat failed for %s", self.claim.job_id, exc_info=True)

    def beat(self) -> None:
        now = clock.now()
        values: dict[str, Any] = {
            "lease_expires_at": now + timedelta(seconds=self.ctx.settings.job_lease_seconds),
        }
        progress = self.progress
        if progress != self.saved_progress:
            values["progress"] = progress
            values["updated_at"] = now
        with transaction(self.ctx.sessions) as session:
            result = session.execute(
                update(Job)
                .where(Job.id == self.claim.job_id, Job.lease_token == self.claim.token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                self.lost.set()
                return
            self.saved_progress = progress
            if session.scalar(select(Job.cancel_requested).where(Job.id == self.claim.job_id)):
                self.cancel.set()
        if self.ctx.slots is not None:
            self.ctx.slots.refresh(
                self.claim.tenant_id, self.claim.job_id, self.ctx.settings.job_lease_seconds
            )


def attempt_prefix(c: Claim, attempt: int | None = None) -> str:
    return f"t/{c.tenant_id}/jobs/{c.job_id}/a{attempt or c.attempt}/"


def run(ctx: Context, job_id: str) -> None:
    """Run one delivery of ``job_id``'s message. Raises `RetryLater` for a transient error
    and `WaitForSlot` when the tenant is at its tier's cap of concurrently running jobs."""
    tenant_id = _admit(ctx, job_id)
    if tenant_id is None:
        log.info("job %s: nothing to do for this delivery", job_id)
        return
    taken = claim(ctx, job_id)
    if taken is None:
        _release_slot_unless_running(ctx, tenant_id, job_id)
        log.info("job %s: nothing to do for this delivery", job_id)
        return
    workdir = ctx.settings.tmp_dir / f"{taken.job_id}-a{taken.attempt}-{taken.token[:8]}"
    try:
        _run_claimed(ctx, taken, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if ctx.slots is not None:
            ctx.slots.release(taken.tenant_id, taken.job_id)


def _admit(ctx: Context, job_id: str) -> str | None:
    """The job's tenant if the job may start now; None if there is nothing to run."""
    with transaction(ctx.sessions) as session:
        row = session.execute(select(Job.tenant_id, Job.status).where(Job.id == job_id)).first()
        if row is None or row.status not in (QUEUED, RUNNING):
            return None
        tenant = session.get(Tenant, row.tenant_id)
        cap = tier_limits(session, tenant.tier if tenant else "free").max_concurrent_jobs
    if ctx.slots is not None and not ctx.slots.acquire(
        row.tenant_id, job_id, limit=cap, ttl_seconds=ctx.settings.job_lease_seconds
    ):
        raise WaitForSlot(ctx.settings.slot_wait_ms)
    return str(row.tenant_id)


def _release_slot_unless_running(ctx: Context, tenant_id: str, job_id: str) -> None:
    # A duplicate delivery shares the running attempt's slot (slots are per job): leave it.
    if ctx.slots is None:
        return
    with transaction(ctx.sessions) as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status != RUNNING:
        ctx.slots.release(tenant_id, job_id)


def _run_claimed(ctx: Context, c: Claim, workdir: Path) -> None:
    with transaction(ctx.sessions) as session:
        job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
        job_type = jobtypes.get(job.type)
        params = dict(job.params)
        source = session.get(File, job.input_file_id) if job.input_file_id else None
        source_facts = (source.storage_key, source.kind, dict(source.media or {})) if source else None
    if source_facts is None:
        _finish(ctx, c, FAILED, code="input_missing", message="the input file was deleted")
        return
    key, kind, media = source_facts
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True)
    duration = float(media.get("duration") or 0.0)
    timeout = max(ctx.settings.ffmpeg_timeout_min, duration * ctx.settings.ffmpeg_timeout_factor)
    reservation: str | None = None
    try:
        with Heartbeat(ctx, c) as hb, ctx.storage.local_path(key) as input_path:
            step_ctx = StepContext(
                input_path=input_path,
                input_kind=kind,
                input_media=media,
                out_dir=out_dir,
                params=params,
                timeout=timeout,
                on_progress=hb.report,
                should_cancel=hb.should_cancel,
                probe_timeout=ctx.settings.probe_timeout,
                max_image_pixels=ctx.settings.max_image_pixels,
            )
            result = job_type.run(step_ctx)
            if hb.should_cancel():
                raise Canceled("canceled")
            reservation = _reserve(ctx, c, result.outputs)
            stored = _store_outputs(ctx, c, result.outputs)
    except Canceled:
        _discard(ctx, c, reservation)
        _finish(ctx, c, CANCELED, code=None, message=None)
        return
    except FaktryError as err:
        _discard(ctx, c, reservation)
        if err.transient:
            _retry_or_fail(ctx, c, err.code, err.message)
        else:
            _finish(ctx, c, FAILED, code=err.code, message=err.message)
        return
    except Exception as err:
        _discard(ctx, c, reservation)
        log.exception("job %s attempt %s: unexpected error", c.job_id, c.attempt)
        _retry_or_fail(ctx, c, "internal_error", f"unexpected error: {type(err).__name__}")
        return
    charge = ctx.prices.actual(
        job_type.name, params, media, [row.media for item in stored for row in item.rows[:1]]
    )
    _succeed(ctx, c, stored, result.result, charge=charge, reservation=reservation)


def _reserve(ctx: Context, c: Claim, outputs: list[Output]) -> str | None:
    """Reserve the outputs' bytes in the tenant's storage quota before writing them; over
    quota, the job fails with ``storage_quota_exceeded`` and keeps nothing."""
    total = sum((output.root / rel).stat().st_size for output in outputs for rel in output.paths)
    if total == 0:
        return None
    with transaction(ctx.sessions) as session:
        tenant = session.get(Tenant, c.tenant_id)
        quota = tier_limits(session, tenant.tier if tenant else "free").storage_quota_bytes
        return reserve_storage(session, c.tenant_id, total, quota).id


@dataclass
class _Stored:
    name: str
    rows: list[File]


def _store_outputs(ctx: Context, c: Claim, outputs: list[Output]) -> list[_Stored]:
    stored: list[_Stored] = []
    for output in outputs:
        rows: list[File] = []
        for rel in output.paths:
            path = output.root / rel
            content_type, kind, media = _describe(path, ctx.settings)
            sha, size = files.sha256_of(path)
            key = attempt_prefix(c) + f"{output.name}/{rel}"
            ctx.storage.put_file(key, path, content_type=content_type)
            rows.append(
                File(
                    tenant_id=c.tenant_id,
                    origin="output",
                    storage_key=key,
                    size=size,
                    total_size=size,
                    content_type=content_type,
                    kind=kind,
                    sha256=sha,
                    media=media,
                    filename=Path(rel).name,
                    job_id=c.job_id,
                    relpath=rel if len(output.paths) > 1 else None,
                )
            )
        stored.append(_Stored(output.name, rows))
    return stored


_BY_SUFFIX = {
    ".m3u8": ("application/vnd.apple.mpegurl", "playlist"),
    ".ts": ("video/mp2t", "video"),
}


def _describe(path: Path, settings: Settings) -> tuple[str, str, dict[str, Any]]:
    known = _BY_SUFFIX.get(path.suffix)
    if known is not None:  # members of an output the server wrote itself
        return known[0], known[1], {}
    sniffed, info = detect.inspect(
        path, timeout=settings.probe_timeout, max_image_pixels=settings.max_image_pixels
    )
    return sniffed.content_type, sniffed.kind, info.to_dict()


def _succeed(
    ctx: Context,
    c: Claim,
    stored: list[_Stored],
    result: dict[str, Any],
    *,
    charge: int,
    reservation: str | None,
) -> None:
    """Record success, charge the job and count its bytes, all in one fenced transaction."""
    now = clock.now()
    with transaction(ctx.sessions) as session:
        fenced = session.execute(
            update(Job)
            .where(Job.id == c.job_id, Job.lease_token == c.token, Job.status == RUNNING)
            .values(
                status=SUCCEEDED,
                progress=1.0,
                finished_at=now,
                updated_at=now,
                lease_token=None,
                lease_expires_at=None,
                result=result,
                error_code=None,
                error_message=None,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(fenced, "rowcount", 0) != 1:
            session.rollback()
            log.warning("job %s attempt %s lost its lease; discarding its outputs", c.job_id, c.attempt)
            _discard(ctx, c, reservation)
            return
        held = ledger.capture(session, c.tenant_id, c.job_id, charge)
        if reservation is not None:
            commit_reservation(session, reservation)
        for item in stored:
            root, *members = item.rows
            root.total_size = sum(r.size for r in item.rows)
            root.file_count = len(item.rows)
            session.add(root)
            session.flush()
            for m in members:
                m.root_id = root.id
                session.add(m)
            session.add(
                JobOutput(
                    job_id=c.job_id, tenant_id=c.tenant_id, name=item.name, file_id=root.id, attempt=c.attempt
                )
            )
        job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
        job.cost_charged = held.captured if held is not None else 0
        record_event(session, job, "succeeded", outputs=len(stored), charged=job.cost_charged)
    # Attempts that died before recording may have left files; only this attempt's stay.
    for attempt in range(1, c.attempt):
        ctx.storage.delete_prefix(attempt_prefix(c, attempt))


def _discard(ctx: Context, c: Claim, reservation: str | None = None) -> None:
    ctx.storage.delete_prefix(attempt_prefix(c))
    if reservation is not None:
        with transaction(ctx.sessions) as session:
            cancel_reservation(session, reservation)


def _retry_or_fail(ctx: Context, c: Claim, code: str, message: str) -> None:
    if c.attempt >= ctx.settings.max_retries + 1:
        _finish(ctx, c, FAILED, code=code, message=message)
        return
    with transaction(ctx.sessions) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == c.job_id, Job.lease_token == c.token, Job.status == RUNNING)
            .values(status=QUEUED, lease_token=None, lease_expires_at=None, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
            record_event(session, job, "retrying", code=code, message=message)
    raise RetryLater(code, message)


def _finish(ctx: Context, c: Claim, status: str, *, code: str | None, message: str | None) -> None:
    now = clock.now()
    with transaction(ctx.sessions) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == c.job_id, Job.lease_token == c.token, Job.status == RUNNING)
            .values(
                status=status,
                finished_at=now,
                updated_at=now,
                lease_token=None,
                lease_expires_at=None,
                error_code=code,
                error_message=(message or "")[:500] or None,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            # Failures (bad input included), cancels and platform errors charge nothing.
            ledger.release(session, c.tenant_id, c.job_id)
            job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
            job.cost_charged = 0
            record_event(session, job, status, **({"code": code} if code else {}))
