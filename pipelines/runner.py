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

import contextvars
import logging
import secrets
import shutil
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock, logs
from faktry.config import Settings
from faktry.db import transaction
from faktry.errors import Canceled, FaktryError
from faktry.tenancy import Tenant
from pipelines import files, jobtypes
from pipelines.media import detect
from pipelines.metrics import Metrics
from pipelines.models import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobOutput
from pipelines.providers.base import (
    Finished,
    Pending,
    ProviderError,
    ProviderRateLimited,
    Request,
    Submitted,
)
from pipelines.services import record_event
from pipelines.steps.base import Output, StepContext
from quotas import ledger
from quotas.limits import cancel_reservation, commit_reservation, reserve_storage, tier_limits
from quotas.pricing import PriceList
from quotas.ratelimit import RunningSlots

if TYPE_CHECKING:
    from pipelines.generation import Generation
from storage.interface import Storage
from storage.models import File

log = logging.getLogger("faktry.runner")


class Later(Exception):
    """Deliver this job's message again after ``delay_ms``, spending none of its retries."""

    def __init__(self, delay_ms: int, why: str) -> None:
        super().__init__(f"{why}; again in {delay_ms} ms")
        self.delay_ms = max(1, int(delay_ms))


class WaitForSlot(Later):
    """The tenant runs as many jobs as its tier allows, or the provider is at its budget or
    paused by its circuit breaker: look again after a while."""

    def __init__(self, delay_ms: int, why: str = "waiting for a slot") -> None:
        super().__init__(delay_ms, why)


class PollLater(Later):
    """The job waits on a queue-based provider: poll it again after a while. No worker
    thread is held meanwhile."""

    def __init__(self, delay_ms: int) -> None:
        super().__init__(delay_ms, "waiting upstream")


class RetryLater(Exception):
    """A transient failure: deliver the message again after a backoff (at least
    ``delay_ms`` when the provider said how long to wait)."""

    def __init__(self, code: str, message: str, delay_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.delay_ms = delay_ms


@dataclass
class Context:
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    prices: PriceList = field(default_factory=PriceList)
    #: Per-tenant running-job caps across all workers; None runs without caps (tests of
    #: the runner alone).
    slots: RunningSlots | None = None
    #: Providers, catalog, budgets and breakers for generation jobs.
    generation: Generation | None = None
    #: Platform-wide counters (Redis); None counts nothing.
    metrics: Metrics | None = None


@dataclass(frozen=True)
class Claim:
    job_id: str
    tenant_id: str
    token: str
    attempt: int
    #: A job that was waiting upstream, taken back to poll: the same attempt goes on.
    resumed: bool = False


def claim(ctx: Context, job_id: str) -> Claim | None:
    """Take the job for this delivery, or None when there is nothing to do: it finished,
    was canceled, or another worker holds a live lease on it."""
    now = clock.now()
    token = secrets.token_hex(16)
    lease_until = now + timedelta(seconds=ctx.settings.job_lease_seconds)
    with transaction(ctx.sessions) as session:
        parked = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, Job.lease_token.is_(None))
            .values(lease_token=token, lease_expires_at=lease_until, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(parked, "rowcount", 0) == 1:
            job = session.scalars(select(Job).where(Job.id == job_id)).one()
            return Claim(job.id, job.tenant_id, token, job.attempts, resumed=True)
        result = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
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
        # The heartbeat logs with the job's context (job, tenant, queue) too.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name=f"heartbeat-{claim.job_id}", daemon=True
        )

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
    """Run one delivery of ``job_id``'s message. Raises `RetryLater` for a transient error,
    and `Later` (`WaitForSlot`, `PollLater`) when the job must be looked at again later."""
    with logs.job_context(job_id=job_id):
        _run(ctx, job_id)


def _run(ctx: Context, job_id: str) -> None:
    admitted = _admit(ctx, job_id)
    if admitted is None:
        log.info("job %s: nothing to do for this delivery", job_id)
        return
    logs.bind(tenant_id=admitted.tenant_id)
    taken = claim(ctx, job_id)
    if taken is None:
        _release_slots_unless_running(ctx, admitted, job_id)
        log.info("job %s: nothing to do for this delivery", job_id)
        return
    log.info("%s attempt %d", "resumed" if taken.resumed else "started", taken.attempt)
    workdir = ctx.settings.tmp_dir / f"{taken.job_id}-a{taken.attempt}-{taken.token[:8]}"
    parked = False
    try:
        _run_claimed(ctx, taken, workdir)
    except PollLater:
        parked = True
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if parked:  # still running upstream: keep its slots until the next poll
            ttl = ctx.settings.job_lease_seconds + (ctx.generation.poll_seconds if ctx.generation else 0)
            _refresh_slots(ctx, admitted, job_id, ttl)
        else:
            _release_slots(ctx, admitted, job_id)


@dataclass(frozen=True)
class _Admitted:
    tenant_id: str
    #: The provider whose concurrency budget this job holds (None: no budget).
    provider: str | None


def _admit(ctx: Context, job_id: str) -> _Admitted | None:
    """Whether the job may start now: its tenant under the tier's cap of running jobs, its
    provider under its budget and not paused by the breaker. None if there is nothing to run."""
    with transaction(ctx.sessions) as session:
        row = session.execute(select(Job.tenant_id, Job.status, Job.provider).where(Job.id == job_id)).first()
        if row is None or row.status not in (QUEUED, RUNNING):
            return None
        tenant = session.get(Tenant, row.tenant_id)
        cap = tier_limits(session, tenant.tier if tenant else "free").max_concurrent_jobs
    gen = ctx.generation
    provider = row.provider if gen is not None and row.provider not in (None, "local") else None
    if provider is not None and gen is not None and gen.breaker is not None:
        state = gen.breaker.state(provider)
        if state.open:
            raise WaitForSlot(int(state.retry_in * 1000) + 50, f"{provider} is paused by its circuit breaker")
    ttl = ctx.settings.job_lease_seconds
    if ctx.slots is not None and not ctx.slots.acquire(row.tenant_id, job_id, limit=cap, ttl_seconds=ttl):
        raise WaitForSlot(ctx.settings.slot_wait_ms)
    if provider is not None and gen is not None and gen.slots is not None:
        budget = gen.budgets.get(provider, 0)
        if not gen.slots.acquire(gen.budget_key(provider), job_id, limit=budget, ttl_seconds=ttl):
            if ctx.slots is not None and row.status != RUNNING:
                ctx.slots.release(row.tenant_id, job_id)
            raise WaitForSlot(ctx.settings.slot_wait_ms, f"{provider} is at its concurrency budget")
    return _Admitted(str(row.tenant_id), provider)


def _release_slots(ctx: Context, admitted: _Admitted, job_id: str) -> None:
    if ctx.slots is not None:
        ctx.slots.release(admitted.tenant_id, job_id)
    gen = ctx.generation
    if admitted.provider is not None and gen is not None and gen.slots is not None:
        gen.slots.release(gen.budget_key(admitted.provider), job_id)


def _refresh_slots(ctx: Context, admitted: _Admitted, job_id: str, ttl: float) -> None:
    if ctx.slots is not None:
        ctx.slots.refresh(admitted.tenant_id, job_id, ttl)
    gen = ctx.generation
    if admitted.provider is not None and gen is not None and gen.slots is not None:
        gen.slots.refresh(gen.budget_key(admitted.provider), job_id, ttl)


def _release_slots_unless_running(ctx: Context, admitted: _Admitted, job_id: str) -> None:
    # A duplicate delivery shares the running attempt's slots (slots are per job): leave them.
    with transaction(ctx.sessions) as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status != RUNNING:
        _release_slots(ctx, admitted, job_id)


@dataclass(frozen=True)
class _Facts:
    """What the slow part of a job needs, read in one short transaction."""

    type: str
    params: dict[str, Any]
    input: dict[str, Any]
    cancel_requested: bool
    model: str | None
    provider: str | None
    submitted: Submitted | None
    #: input field -> (storage key, kind, media facts); None when the file was deleted
    files: dict[str, tuple[str, str, dict[str, Any]] | None]


def _facts(ctx: Context, c: Claim) -> _Facts:
    with transaction(ctx.sessions) as session:
        job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
        job_type = jobtypes.get(job.type)
        wanted = dict(job.input or {})
        if job.input_file_id and "file_id" not in wanted:
            wanted["file_id"] = job.input_file_id
        found: dict[str, tuple[str, str, dict[str, Any]] | None] = {}
        for name in job_type.files:
            if name in wanted:
                row = session.get(File, wanted[name])
                found[name] = (row.storage_key, row.kind, dict(row.media or {})) if row else None
        submitted = (
            Submitted(job.provider_request_id, dict(job.provider_state or {}))
            if job.provider_request_id
            else None
        )
        return _Facts(
            type=job.type,
            params=dict(job.params),
            input=wanted,
            cancel_requested=job.cancel_requested,
            model=job.model,
            provider=job.provider,
            submitted=submitted,
            files=found,
        )


def _run_claimed(ctx: Context, c: Claim, workdir: Path) -> None:
    facts = _facts(ctx, c)
    if facts.cancel_requested:
        _cancel_upstream(ctx, facts)
        _discard(ctx, c)
        _finish(ctx, c, CANCELED, code=None, message=None)
        return
    if any(found is None for found in facts.files.values()):
        _finish(ctx, c, FAILED, code="input_missing", message="an input file was deleted")
        return
    if jobtypes.get(facts.type).generative:
        _run_generation(ctx, c, workdir, facts)
        return
    job_type = jobtypes.get(facts.type)
    params = facts.params
    main = facts.files.get("file_id")
    assert main is not None
    key, kind, media = main
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
    except Exception as err:
        _fail(ctx, c, err, reservation)
        return
    charge = ctx.prices.actual(
        job_type.name, params, media, [row.media for item in stored for row in item.rows[:1]]
    )
    _succeed(ctx, c, stored, result.result, charge=charge, reservation=reservation)


def _fail(
    ctx: Context, c: Claim, err: Exception, reservation: str | None, *, forget_upstream: bool = False
) -> None:
    """Record a failed attempt: canceled, failed with a stable code, or back to the queue."""
    _discard(ctx, c, reservation)
    if isinstance(err, Canceled):
        _finish(ctx, c, CANCELED, code=None, message=None)
    elif isinstance(err, ProviderRateLimited):
        delay = int(err.retry_after * 1000) if err.retry_after else None
        _retry_or_fail(ctx, c, err.code, err.message, delay_ms=delay)
    elif isinstance(err, FaktryError):
        if err.transient:
            _retry_or_fail(ctx, c, err.code, err.message, forget_upstream=forget_upstream)
        else:
            _finish(ctx, c, FAILED, code=err.code, message=err.message)
    else:
        log.error("job %s attempt %s: unexpected error", c.job_id, c.attempt, exc_info=err)
        _retry_or_fail(ctx, c, "internal_error", f"unexpected error: {type(err).__name__}")


# -- generation jobs -----------------------------------------------------------------------------


def _run_generation(ctx: Context, c: Claim, workdir: Path, facts: _Facts) -> None:
    """One step of a generation job: call a synchronous provider, or submit to (once) and
    poll a queue-based one, parking the job between polls without holding a thread."""
    gen = ctx.generation
    assert gen is not None, "generation jobs need Context.generation"
    provider = gen.providers.get(facts.provider or "")
    if provider is None or facts.model not in gen.catalog.models:
        _finish(
            ctx, c, FAILED, code="provider_unavailable", message="this model's provider is not configured"
        )
        return
    model = gen.catalog.models[facts.model]
    if facts.provider == "local" and model.provider != "local":
        model = gen.catalog.models[gen.catalog.offline[facts.type]]
    gen_dir = workdir / "gen"
    gen_dir.mkdir(parents=True)
    submitted = facts.submitted
    reservation: str | None = None
    try:
        with Heartbeat(ctx, c) as hb, ExitStack() as stack:
            paths = {
                name: stack.enter_context(ctx.storage.local_path(f[0]))
                for name, f in facts.files.items()
                if f
            }
            request = Request(
                job_id=c.job_id,
                job_type=facts.type,
                model=model,
                prompt=facts.input.get("prompt") or facts.input.get("text"),
                params={k: v for k, v in facts.params.items() if k != "model"},
                files=paths,
                work_dir=gen_dir,
                extra={"lyrics": facts.input.get("lyrics")},
            )
            if provider.queued:
                if submitted is None:
                    submitted = provider.submit(request)
                    _save_submission(ctx, c, submitted)
                state = provider.poll(request, submitted)
                if isinstance(state, Pending):
                    if gen.breaker is not None:
                        gen.breaker.success(provider.name)
                    _park(ctx, c, state)
                    raise PollLater(int(gen.poll_seconds * 1000))
                finished = state
            else:
                finished = provider.run(request)
            if gen.breaker is not None:
                gen.breaker.success(provider.name)
            if hb.should_cancel():
                raise Canceled("canceled")
            outputs = _place(finished, workdir / "out")
            reservation = _reserve(ctx, c, outputs)
            stored = _store_outputs(ctx, c, outputs)
    except PollLater:
        raise
    except Exception as err:
        if isinstance(err, ProviderError) and err.breaker and gen.breaker is not None:
            gen.breaker.failure(provider.name)
        if isinstance(err, ProviderError) and ctx.metrics is not None:
            ctx.metrics.provider_error(provider.name, err.code)
        if isinstance(err, Canceled) and submitted is not None:
            _cancel_upstream(ctx, facts, submitted)
        _fail(ctx, c, err, reservation, forget_upstream=getattr(err, "upstream_done", False))
        return
    media = (facts.files.get("file_id") or ("", "", {}))[2]
    text = str(facts.input.get("text") or facts.input.get("prompt") or "")
    charge = ctx.prices.actual(
        facts.type, facts.params, media, [row.media for item in stored for row in item.rows[:1]],
        rule=model.price, text=text,
    )  # fmt: skip
    _succeed(ctx, c, stored, finished.result, charge=charge, reservation=reservation)


def _place(finished: Finished, out_dir: Path) -> list[Output]:
    """Each provider output becomes a named output folder, as media steps produce them."""
    outputs = []
    for item in finished.outputs:
        root = out_dir / item.name
        root.mkdir(parents=True, exist_ok=True)
        target = root / item.path.name
        shutil.move(str(item.path), target)
        outputs.append(Output(name=item.name, root=root, paths=[target.name]))
    return outputs


def _save_submission(ctx: Context, c: Claim, submitted: Submitted) -> None:
    """Save the provider's request id before waiting on it (fenced), so a redelivered
    message re-attaches to the same request instead of paying for a second one."""
    with transaction(ctx.sessions) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == c.job_id, Job.lease_token == c.token)
            .values(
                provider_request_id=submitted.request_id,
                provider_state={**submitted.state, "status": "SUBMITTED"},
                updated_at=clock.now(),
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            raise Canceled("this attempt lost its lease before it could record the provider's request")
        job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
        record_event(
            session, job, "submitted_upstream", provider=job.provider, request_id=submitted.request_id
        )


def _park(ctx: Context, c: Claim, state: Pending) -> None:
    """Let go of the job while it waits upstream: no lease token (any delivery may resume
    it), and a lease deadline after which the reconciler resends it if its poll got lost."""
    gen = ctx.generation
    assert gen is not None
    now = clock.now()
    until = now + timedelta(seconds=gen.poll_seconds + ctx.settings.job_lease_seconds)
    with transaction(ctx.sessions) as session:
        job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
        before = dict(job.provider_state or {})
        upstream = {
            "status": state.status,
            "queue_position": state.queue_position,
            "progress": state.progress,
        }
        values: dict[str, Any] = {
            "provider_state": {**before, **upstream},
            "lease_token": None,
            "lease_expires_at": until,
            "updated_at": now,
        }
        if state.progress is not None:
            values["progress"] = max(0.0, min(0.99, float(state.progress)))
        # Fenced like every outcome: a takeover since the claim keeps its own lease.
        parked = session.execute(
            update(Job)
            .where(Job.id == c.job_id, Job.lease_token == c.token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(parked, "rowcount", 0) == 1 and before.get("status") != state.status:
            session.refresh(job)
            record_event(session, job, "upstream", status=state.status, queue_position=state.queue_position)


def _cancel_upstream(ctx: Context, facts: _Facts, submitted: Submitted | None = None) -> None:
    submitted = submitted or facts.submitted
    gen = ctx.generation
    if submitted is None or gen is None:
        return
    provider = gen.providers.get(facts.provider or "")
    if provider is None:
        return
    try:
        provider.cancel(submitted)
    except FaktryError:
        log.warning("job: the provider did not take the cancel of %s", submitted.request_id, exc_info=True)


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
    log.info("succeeded: %d output(s), charged %d millicredits", len(stored), job.cost_charged or 0)
    _count(ctx, job)
    # Attempts that died before recording may have left files; only this attempt's stay.
    for attempt in range(1, c.attempt):
        ctx.storage.delete_prefix(attempt_prefix(c, attempt))


def _count(ctx: Context, job: Job) -> None:
    if ctx.metrics is None:
        return
    took = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
    try:
        ctx.metrics.job_finished(job.type, job.status, took)
    except Exception:  # metrics must never fail a job
        log.warning("could not count a finished job", exc_info=True)


def _discard(ctx: Context, c: Claim, reservation: str | None = None) -> None:
    ctx.storage.delete_prefix(attempt_prefix(c))
    if reservation is not None:
        with transaction(ctx.sessions) as session:
            cancel_reservation(session, reservation)


def _retry_or_fail(
    ctx: Context,
    c: Claim,
    code: str,
    message: str,
    *,
    delay_ms: int | None = None,
    forget_upstream: bool = False,
) -> None:
    if c.attempt >= ctx.settings.max_retries + 1:
        _finish(ctx, c, FAILED, code=code, message=message)
        return
    values: dict[str, Any] = {
        "status": QUEUED, "lease_token": None, "lease_expires_at": None, "updated_at": clock.now(),
    }  # fmt: skip
    if forget_upstream:  # the upstream request ended in failure: the next attempt submits anew
        values.update(provider_request_id=None, provider_state={})
    with transaction(ctx.sessions) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == c.job_id, Job.lease_token == c.token, Job.status == RUNNING)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
            record_event(session, job, "retrying", code=code, message=message)
    raise RetryLater(code, message, delay_ms)


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
        finished = getattr(result, "rowcount", 0) == 1
        if finished:
            # Failures (bad input included), cancels and platform errors charge nothing.
            ledger.release(session, c.tenant_id, c.job_id)
            job = session.scalars(select(Job).where(Job.id == c.job_id)).one()
            job.cost_charged = 0
            record_event(session, job, status, **({"code": code} if code else {}))
            log.info("%s%s", status, f" ({code})" if code else "")
            _count(ctx, job)
    if finished:
        # No outputs stay: neither this attempt's nor those of attempts that died earlier.
        ctx.storage.delete_prefix(f"t/{c.tenant_id}/jobs/{c.job_id}/")
