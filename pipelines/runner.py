"""Running one delivery of a job's message.

The shape is: claim in one short transaction; do the slow work with no transaction open,
while the process's heartbeat thread renews the lease, saves progress and watches for cancel; then
record the outcome in another short transaction, fenced by the lease token. Temporary
files live in a per-attempt folder that is always removed.

Outcomes:
- success: outputs are stored under ``t/<tenant>/jobs/<job>/a<attempt>/`` and recorded;
  the files of any other attempt are removed, so exactly one set of outputs remains;
- a permanent error (bad media, bad params): the job fails with the error's stable code;
- a transient error: the job goes back to ``queued`` and `RetryLater` asks the caller's
  queue to deliver it again with backoff, until the attempts are spent;
- cancel: the step's processes are killed, partial outputs removed, the job ``canceled``.

A job whose input is a URL (``input.url``) has it fetched into the tenant's library first
(`pipelines.urlinputs`), and then runs on that file; a fetch that fails fails the job (or
retries it, when transient) like any other error of its attempt.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row, bindparam, insert, select
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock, logs
from faktry.config import Settings
from faktry.db import for_tenant, is_unavailable, new_id, transaction
from faktry.errors import Canceled, FaktryError
from pipelines import jobtypes, lifecycle, tempfiles, urlinputs
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
from pipelines.steps import media as media_steps
from pipelines.steps.base import Output, StepContext
from pipelines.webhooks import safehttp
from pipelines.workflows import runs
from quotas import ledger
from quotas.limits import StorageQuotaExceeded, TierCache, use_storage
from quotas.pricing import PriceList
from quotas.ratelimit import RunningSlots

if TYPE_CHECKING:
    from pipelines.generation import Generation
from storage.interface import Storage
from storage.models import File

log = logging.getLogger("faktry.runner")
T = TypeVar("T")


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
    #: Tenants' tier limits, remembered for a few seconds.
    tiers: TierCache = field(default_factory=TierCache)
    #: Advances a job's workflow run once its end is committed (`runs.Engine`); None leaves
    #: it to the reconciler.
    workflows: runs.Engine | None = None
    #: Resolves the host of a URL input (tests answer for names of their own).
    url_resolve: safehttp.Resolver = safehttp.system_resolve


@dataclass(frozen=True)
class Claim:
    job_id: str
    tenant_id: str
    token: str
    attempt: int
    #: A job that was waiting upstream, taken back to poll: the same attempt goes on.
    resumed: bool = False
    #: What was held for the job: the most it can be charged.
    held: int = 0


def claim(ctx: Context, job_id: str) -> Claim | None:
    """Take the job for this delivery, or None when there is nothing to do: it finished,
    was canceled, or another worker holds a live lease on it."""
    with transaction(ctx.sessions) as session:
        taken = _claim_in(session, ctx, job_id)
        return taken[0] if taken is not None else None


def _claim_in(session: Session, ctx: Context, job_id: str) -> tuple[Claim, Row[Any]] | None:
    now = clock.now()
    token = secrets.token_hex(16)
    lease_until = now + timedelta(seconds=ctx.settings.job_lease_seconds)
    taken = lifecycle.claim(session, job_id, token, now, lease_until)
    if taken is None:
        return None
    row, resumed = taken
    return Claim(job_id, row.tenant_id, token, row.attempts, resumed=resumed, held=row.cost_held or 0), row


class Heartbeat:
    """Renews the lease, saves progress and notices cancel requests, once a second.

    The beats of every running job of a process come from one thread (`_Beats`): a job
    starts no thread of its own, and an idle process's beating thread sleeps without a
    timeout. Once the ``with`` block has ended, no beat of the job runs or starts."""

    def __init__(self, ctx: Context, claim: Claim) -> None:
        self.ctx = ctx
        self.claim = claim
        self.progress = 0.0
        self.saved_progress = -1.0
        self.progress_event_at = float("-inf")
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self._active = False
        self._beating = threading.Lock()  # held during a beat; `__exit__` waits for it
        # The heartbeat logs with the job's context (job, tenant, queue) too.
        self._context = contextvars.copy_context()

    def __enter__(self) -> Heartbeat:
        self._active = True
        _beats().add(self, self.ctx.settings.job_heartbeat_seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        _beats().remove(self)
        with self._beating:
            self._active = False

    def _scheduled(self) -> None:
        """One beat, from the beating thread; none once the job's block has ended."""
        with self._beating:
            if not self._active:
                return
            try:
                self._context.run(self.beat)
            except Exception:  # a database hiccup must not kill the job; the next beat retries
                log.warning("heartbeat failed for %s", self.claim.job_id, exc_info=True)

    def report(self, fraction: float) -> None:
        self.progress = max(self.progress, min(max(fraction, 0.0), 1.0))

    def should_cancel(self) -> bool:
        return self.cancel.is_set() or self.lost.is_set()

    def beat(self) -> None:
        now = clock.now()
        values: dict[str, Any] = {
            "lease_expires_at": now + timedelta(seconds=self.ctx.settings.job_lease_seconds),
        }
        progress = self.progress
        moved = progress != self.saved_progress
        if moved:
            values["progress"] = progress
            values["updated_at"] = now
        with transaction(self.ctx.sessions) as session:
            row = lifecycle.fenced(
                session,
                self.claim.job_id,
                lifecycle.held_by(self.claim.token),
                values,
                (Job.cancel_requested,),
            )
            # A progress event (streams, webhooks) at most once a second per job.
            if (
                row is not None
                and moved
                and progress > 0
                and time.monotonic() - self.progress_event_at >= 1.0
            ):
                self.progress_event_at = time.monotonic()
                lifecycle.event(
                    session, self.claim.job_id, self.claim.tenant_id, "progress", RUNNING,
                    self.claim.attempt, progress=round(progress, 4),
                )  # fmt: skip
        if row is None:
            self.lost.set()
            return
        self.saved_progress = progress
        if row.cancel_requested:
            self.cancel.set()
        if self.ctx.slots is not None:
            self.ctx.slots.refresh(
                self.claim.tenant_id, self.claim.job_id, self.ctx.settings.job_lease_seconds
            )


class _Beats:
    """The one thread of a process that beats for its running jobs, each every
    ``job_heartbeat_seconds``. Beats run one after another: a beat is one short fenced
    update, and while the database stalls every job's beat would wait on it anyway."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[Heartbeat, tuple[float, float]] = {}  # heartbeat -> (next beat, interval)
        self._thread: threading.Thread | None = None
        #: When the waiting thread wakes next (inf: not until notified; -inf: it is not
        #: waiting, and looks at every due time before it waits again).
        self._wakes_at = math.inf
        #: How often the thread woke up (tests count them).
        self.wakes = 0

    def add(self, hb: Heartbeat, interval: float) -> None:
        with self._changed:
            at = time.monotonic() + interval
            self._due[hb] = (at, interval)
            if self._thread is None or not self._thread.is_alive():
                self._wakes_at = -math.inf
                self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
                self._thread.start()
            elif at < self._wakes_at:
                # Woken only to sleep less: a job that starts while the thread waits for an
                # earlier time (a beat, or that of a job that has ended since) is looked at
                # then, without a wake-up of its own.
                self._changed.notify()

    def remove(self, hb: Heartbeat) -> None:
        with self._changed:
            self._due.pop(hb, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    due = [hb for hb, (at, _) in self._due.items() if at <= now]
                    if due:
                        break
                    soonest = min((at for at, _ in self._due.values()), default=None)
                    self._wakes_at = math.inf if soonest is None else soonest
                    self._changed.wait(None if soonest is None else soonest - now)
                    self._wakes_at = -math.inf
                    self.wakes += 1
                for hb in due:
                    self._due[hb] = (now + self._due[hb][1], self._due[hb][1])
            for hb in due:
                hb._scheduled()


_beating: tuple[int, _Beats] | None = None
_beating_lock = threading.Lock()


def _beats() -> _Beats:
    """This process's beating thread (a forked child starts its own)."""
    global _beating
    with _beating_lock:
        if _beating is None or _beating[0] != os.getpid():
            _beating = (os.getpid(), _Beats())
        return _beating[1]


def _forget_beats_in_child() -> None:
    # A fork copies the locks as they were: the child starts with fresh ones.
    global _beating, _beating_lock
    _beating, _beating_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_beats_in_child)


def attempt_prefix(c: Claim, attempt: int | None = None) -> str:
    return f"t/{c.tenant_id}/jobs/{c.job_id}/a{attempt or c.attempt}/"


@dataclass
class Ended:
    """What a delivery leaves its caller to do once it ends: give up the tenant's running
    slot (``slot_of``, the tenant's id), which the caller sends with its pump of fair
    admission (`pipelines.admission.Admission.admit_after`) in one round trip."""

    slot_of: str | None = None


def run(ctx: Context, job_id: str, ended: Ended | None = None) -> None:
    """Run one delivery of ``job_id``'s message. Raises `RetryLater` for a transient error,
    and `Later` (`WaitForSlot`, `PollLater`) when the job must be looked at again later.
    With ``ended``, the tenant's running slot of an attempt that ended is left to the caller
    (`Ended`); without it, it is given up here."""
    with logs.job_context(job_id=job_id):
        _run(ctx, job_id, ended)


def _run(ctx: Context, job_id: str, ended: Ended | None = None) -> None:
    # Claim, admit and read what the work needs in one short transaction: a job its
    # tenant's cap or its provider's budget holds back is rolled back untouched.
    with transaction(ctx.sessions) as session:
        taken = _claim_in(session, ctx, job_id)
        if taken is None:
            log.info("job %s: nothing to do for this delivery", job_id)
            return
        c, row = taken
        logs.bind(tenant_id=c.tenant_id)
        # The claim knew only the job's id (a privileged step); from here on, every statement
        # of this delivery acts for the job's tenant (on PostgreSQL, as the application role).
        session.info["tenant_id"] = c.tenant_id
        ctx = replace(ctx, sessions=for_tenant(ctx.sessions, c.tenant_id))
        admitted = _admit(ctx, session, c, row.provider)
        try:
            facts = _facts(session, row)
            session.commit()
        except BaseException:
            _release_slots(ctx, admitted, job_id)
            raise
    log.info("%s attempt %d", "resumed" if c.resumed else "started", c.attempt)
    workdir = tempfiles.attempt_dir(ctx.settings.tmp_dir, c.job_id, c.attempt, c.token)
    parked = False
    try:
        _run_claimed(ctx, c, workdir, facts)
    except PollLater:
        parked = True
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if parked:  # still running upstream: keep its slots until the next poll
            ttl = ctx.settings.job_lease_seconds + (ctx.generation.poll_seconds if ctx.generation else 0)
            _refresh_slots(ctx, admitted, job_id, ttl)
        else:
            _release_slots(ctx, admitted, job_id, ended)


@dataclass(frozen=True)
class _Admitted:
    tenant_id: str
    #: The provider whose concurrency budget this job holds (None: no budget).
    provider: str | None


def _admit(ctx: Context, session: Session, c: Claim, job_provider: str | None) -> _Admitted:
    """Whether the claimed job may start now: its tenant under the tier's cap of running
    jobs, its provider under its budget and not paused by the breaker. Raises
    `WaitForSlot` otherwise (the claim is then rolled back)."""
    gen = ctx.generation
    provider = job_provider if gen is not None and job_provider not in (None, "local") else None
    if provider is not None and gen is not None and gen.breaker is not None:
        state = gen.breaker.state(provider)
        if state.open:
            raise WaitForSlot(int(state.retry_in * 1000) + 50, f"{provider} is paused by its circuit breaker")
    ttl = ctx.settings.job_lease_seconds
    if ctx.slots is not None:
        cap = ctx.tiers.limits(session, c.tenant_id).max_concurrent_jobs
        if not ctx.slots.acquire(c.tenant_id, c.job_id, limit=cap, ttl_seconds=ttl):
            raise WaitForSlot(ctx.settings.slot_wait_ms)
    if provider is not None and gen is not None and gen.slots is not None:
        budget = gen.budgets.get(provider, 0)
        if not gen.slots.acquire(gen.budget_key(provider), c.job_id, limit=budget, ttl_seconds=ttl):
            if ctx.slots is not None and not c.resumed:
                ctx.slots.release(c.tenant_id, c.job_id)
            raise WaitForSlot(ctx.settings.slot_wait_ms, f"{provider} is at its concurrency budget")
    return _Admitted(c.tenant_id, provider)


def _release_slots(ctx: Context, admitted: _Admitted, job_id: str, ended: Ended | None = None) -> None:
    if ctx.slots is not None:
        if ended is not None:
            ended.slot_of = admitted.tenant_id
        else:
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


@dataclass(frozen=True)
class _Facts:
    """What the slow part of a job needs, read by its claim."""

    type: str
    params: dict[str, Any]
    input: dict[str, Any]
    cancel_requested: bool
    model: str | None
    provider: str | None
    submitted: Submitted | None
    #: input field -> (storage key, kind, media facts); None when the file was deleted
    files: dict[str, tuple[str, str, dict[str, Any]] | None]


#: A job's input files: the tenant's own only (the id came from the job's input).
_INPUT_FILES = select(File.id, File.storage_key, File.kind, File.media).where(
    File.tenant_id == bindparam("tenant"), File.id.in_(bindparam("ids", expanding=True))
)


def _facts(session: Session, row: Row[Any]) -> _Facts:
    job_type = jobtypes.get(row.type)
    wanted = dict(row.input or {})
    if row.input_file_id and "file_id" not in wanted:
        wanted["file_id"] = row.input_file_id
    # Slots: "file_id", or "file_ids.0", "file_ids.1", ... for a field naming a list of files.
    slots = jobtypes.file_slots(job_type, wanted)
    stored = {}
    if row.input_file_id and row.input_key is not None:  # read by the claim itself
        stored[row.input_file_id] = (row.input_key, row.input_kind, dict(row.input_media or {}))
    others = sorted(set(slots.values()) - {row.input_file_id})
    if others:
        found = session.connection().execute(_INPUT_FILES, {"tenant": row.tenant_id, "ids": others})
        stored.update({f.id: (f.storage_key, f.kind, dict(f.media or {})) for f in found})
    submitted = (
        Submitted(row.provider_request_id, dict(row.provider_state or {}))
        if row.provider_request_id
        else None
    )
    return _Facts(
        type=row.type,
        params=dict(row.params),
        input=wanted,
        cancel_requested=bool(row.cancel_requested),
        model=row.model,
        provider=row.provider,
        submitted=submitted,
        files={slot: stored.get(file_id) for slot, file_id in slots.items()},
    )


def _run_claimed(ctx: Context, c: Claim, workdir: Path, facts: _Facts) -> None:
    if facts.cancel_requested:
        _cancel_upstream(ctx, facts)
        _discard(ctx, c)
        _finish(ctx, c, CANCELED, code=None, message=None)
        return
    if "url" in facts.input and facts.files.get("file_id") is None:
        # Not fetched yet (or fetched by an earlier attempt into a file since deleted).
        try:
            with Heartbeat(ctx, c) as hb:
                facts = _fetch_url_input(ctx, c, workdir, facts)
                if hb.should_cancel():
                    raise Canceled("canceled")
        except Exception as err:
            _fail(ctx, c, err)
            return
    if any(found is None for found in facts.files.values()):
        _finish(ctx, c, FAILED, code="input_missing", message="an input file was deleted")
        return
    if jobtypes.get(facts.type).generative:
        _run_generation(ctx, c, workdir, facts)
        return
    job_type = jobtypes.get(facts.type)
    params = facts.params
    # A job over a list of files has its first as the main input.
    main = facts.files.get("file_id") or next(iter(facts.files.values()), None)
    assert main is not None
    key, kind, _ = main
    media = jobtypes.priced_media(
        job_type, {slot: f[2] for slot, f in facts.files.items() if f is not None}, params
    )
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True)
    duration = float(media.get("duration") or 0.0)
    timeout = max(ctx.settings.ffmpeg_timeout_min, duration * ctx.settings.ffmpeg_timeout_factor)
    try:
        with Heartbeat(ctx, c) as hb, ExitStack() as stack:
            input_path = stack.enter_context(ctx.storage.local_path(key, into=workdir))
            others = {
                name: stack.enter_context(ctx.storage.local_path(f[0], into=workdir))
                for name, f in facts.files.items()
                if name != "file_id" and "." not in name and f is not None
            }
            # The items of a list field, each file fetched once however often it is listed.
            lists: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
            list_kinds: dict[str, list[str]] = {}
            fetched = {key: input_path}
            for slot, f in facts.files.items():
                if "." in slot and f is not None:
                    if f[0] not in fetched:
                        fetched[f[0]] = stack.enter_context(ctx.storage.local_path(f[0], into=workdir))
                    lists.setdefault(jobtypes.slot_field(slot), []).append((fetched[f[0]], f[2]))
                    list_kinds.setdefault(jobtypes.slot_field(slot), []).append(f[1])
            step_ctx = StepContext(
                input_path=input_path,
                input_kind=kind,
                input_media=main[2],
                out_dir=out_dir,
                params=params,
                timeout=timeout,
                on_progress=hb.report,
                should_cancel=hb.should_cancel,
                probe_timeout=ctx.settings.probe_timeout,
                max_image_pixels=ctx.settings.max_image_pixels,
                memory_limit_bytes=ctx.settings.ffmpeg_memory_limit_bytes,
                inputs=others,
                lists=lists,
                list_kinds=list_kinds,
            )
            result = job_type.run(step_ctx)
            if hb.should_cancel():
                raise Canceled("canceled")
            stored = _store_outputs(ctx, c, result.outputs)
    except Exception as err:
        _fail(ctx, c, err)
        return
    charge = ctx.prices.actual(job_type.name, params, media, [item.rows[0]["media"] for item in stored])
    _succeed(ctx, c, stored, result.result, charge=charge)


def _fetch_url_input(ctx: Context, c: Claim, workdir: Path, facts: _Facts) -> _Facts:
    """Fetch the job's ``input.url`` into the tenant's library (`pipelines.urlinputs`) and
    point the job at the file (fenced by this attempt's lease); the facts it then runs on."""
    job_type = jobtypes.get(facts.type)
    with transaction(ctx.sessions) as session:
        limits = ctx.tiers.limits(session, c.tenant_id)

    def record(session: Session, file_id: str) -> None:
        values = {"input_file_id": file_id, "updated_at": clock.now()}
        if lifecycle.fenced(session, c.job_id, lifecycle.held_by(c.token), values, (Job.id,)) is None:
            raise Canceled("this attempt lost its lease while it fetched its input")

    got = urlinputs.fetch(
        ctx.sessions,
        ctx.storage,
        ctx.settings,
        tenant_id=c.tenant_id,
        url=str(facts.input["url"]),
        workdir=workdir / "url",
        limits=limits,
        accepts=lambda kind: job_type.accepts(kind, facts.params),
        record=record,
        resolve=ctx.url_resolve,
    )
    return replace(
        facts,
        input={**facts.input, "file_id": got.file_id},
        files={**facts.files, "file_id": (got.storage_key, got.kind, got.media)},
    )


def _fail(ctx: Context, c: Claim, err: Exception, *, forget_upstream: bool = False) -> None:
    """Record a failed attempt: canceled, failed with a stable code, or back to the queue."""
    _discard(ctx, c)
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
    try:
        with Heartbeat(ctx, c) as hb, ExitStack() as stack:
            paths = {
                name: stack.enter_context(ctx.storage.local_path(f[0], into=workdir))
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
            if facts.type == "speech.transcribe":  # its subtitles, from the text (or segments)
                heard = (facts.files.get("file_id") or ("", "", {}))[2].get("duration")
                outputs.append(media_steps.transcript_output(finished.result, heard, workdir / "out"))
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
        _fail(ctx, c, err, forget_upstream=getattr(err, "upstream_done", False))
        return
    media = (facts.files.get("file_id") or ("", "", {}))[2]
    text = str(facts.input.get("text") or facts.input.get("prompt") or "")
    charge = ctx.prices.actual(
        facts.type, facts.params, media, [item.rows[0]["media"] for item in stored],
        rule=model.price, text=text,
    )  # fmt: skip
    _succeed(ctx, c, stored, finished.result, charge=charge)


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
        row = lifecycle.fenced(
            session,
            c.job_id,
            lifecycle.held_by(c.token),
            {
                "provider_request_id": submitted.request_id,
                "provider_state": {**submitted.state, "status": "SUBMITTED"},
                "updated_at": clock.now(),
            },
            (Job.provider, Job.status),
        )
        if row is None:
            raise Canceled("this attempt lost its lease before it could record the provider's request")
        lifecycle.event(
            session, c.job_id, c.tenant_id, "submitted_upstream", row.status, c.attempt,
            provider=row.provider, request_id=submitted.request_id,
        )  # fmt: skip


def _park(ctx: Context, c: Claim, state: Pending) -> None:
    """Let go of the job while it waits upstream: no lease token (any delivery may resume
    it), and a lease deadline after which the reconciler resends it if its poll got lost."""
    gen = ctx.generation
    assert gen is not None
    now = clock.now()
    until = now + timedelta(seconds=gen.poll_seconds + ctx.settings.job_lease_seconds)
    with transaction(ctx.sessions) as session:
        before = dict(session.scalar(select(Job.provider_state).where(Job.id == c.job_id)) or {})
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
        parked = lifecycle.fenced(session, c.job_id, lifecycle.held_by(c.token), values, (Job.status,))
        if parked is not None and before.get("status") != state.status:
            lifecycle.event(
                session, c.job_id, c.tenant_id, "upstream", parked.status, c.attempt,
                status=state.status, queue_position=state.queue_position,
            )  # fmt: skip


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


@dataclass
class _Stored:
    """An output kept in storage: its name and its files' rows (the root's first), as the
    success transaction inserts them."""

    name: str
    rows: list[dict[str, Any]]


def _store_outputs(ctx: Context, c: Claim, outputs: list[Output]) -> list[_Stored]:
    """Describe each output file, then move it into storage, which hashes it on the way: the
    file is read once for its bytes (ffprobe reads only what it needs to describe it)."""
    stored: list[_Stored] = []
    for output in outputs:
        rows: list[dict[str, Any]] = []
        for rel in output.paths:
            path = output.root / rel
            content_type, kind, media = _describe(output, rel, ctx.settings)
            key = attempt_prefix(c) + f"{output.name}/{rel}"
            kept = ctx.storage.store_file(key, path, content_type=content_type, move=True)
            rows.append(
                {
                    "id": new_id("fil"),
                    "tenant_id": c.tenant_id,
                    "origin": "output",
                    "storage_key": key,
                    "size": kept.size,
                    "total_size": kept.size,
                    "file_count": 1,
                    "content_type": content_type,
                    "kind": kind,
                    "sha256": kept.sha256,
                    "media": media,
                    "filename": Path(rel).name,
                    "job_id": c.job_id,
                    "root_id": None,
                    "relpath": rel if len(output.paths) > 1 else None,
                    "created_at": clock.now(),
                }
            )
        stored.append(_Stored(output.name, rows))
    return stored


_BY_SUFFIX = {
    ".m3u8": ("application/vnd.apple.mpegurl", "playlist"),
    ".ts": ("video/mp2t", "video"),
}


def _describe(output: Output, rel: str, settings: Settings) -> tuple[str, str, dict[str, Any]]:
    """The content type, kind and media facts of an output's file: what the step that wrote
    it knows (`Output.known`), else found by sniffing and probing it."""
    known = output.known.get(rel)
    if known is not None:
        return known.content_type, known.kind, known.media
    path = output.root / rel
    by_suffix = _BY_SUFFIX.get(path.suffix)
    if by_suffix is not None:  # members of an output the server wrote itself
        return by_suffix[0], by_suffix[1], {}
    sniffed, info = detect.inspect(
        path, timeout=settings.probe_timeout, max_image_pixels=settings.max_image_pixels
    )
    return sniffed.content_type, sniffed.kind, info.to_dict()


def _succeed(ctx: Context, c: Claim, stored: list[_Stored], result: dict[str, Any], *, charge: int) -> None:
    """Record success in one fenced transaction: the job, its outputs, their bytes in the
    storage quota, the charge and the event (tried again while the database is unreachable:
    the work is done and must not be lost). Over the quota, it fails and keeps nothing."""
    try:
        finished = _settle(ctx, lambda: _record_success(ctx, c, stored, result, charge))
    except StorageQuotaExceeded as err:
        _discard(ctx, c)
        _finish(ctx, c, FAILED, code=err.code, message=err.message)
        return
    if finished is not None:
        log.info("succeeded: %d output(s), charged %d millicredits", len(stored), finished)


def _record_success(
    ctx: Context, c: Claim, stored: list[_Stored], result: dict[str, Any], charge: int
) -> int | None:
    """The success transaction; what it charged, or None if it recorded nothing. Counting
    the job and removing the files of attempts that died before it happen once it has
    committed."""
    now = clock.now()
    with lifecycle.unit_of_work(ctx.sessions) as uow:
        session = uow.session
        charged = min(max(0, charge), c.held)
        row = lifecycle.succeed(session, c.job_id, c.token, now, result, charged)
        if row is None:
            done = session.execute(select(Job.status, Job.attempts).where(Job.id == c.job_id)).first()
            session.rollback()
            if done is not None and done.status == SUCCEEDED and done.attempts == c.attempt:
                # This attempt's success was committed; only the answer to it was lost.
                return None
            log.warning("job %s attempt %s lost its lease; discarding its outputs", c.job_id, c.attempt)
            _discard(ctx, c)
            return None
        if row.run_id is not None:  # a workflow step: it ends with its job, in this transaction
            outputs = [item.rows[0]["id"] for item in stored if item.rows]
            node = runs.job_ended(session, row.run_id, c.job_id, SUCCEEDED, outputs=outputs, cost=charged)
            _advance_after(ctx, uow, row.run_id, node)
        nbytes = sum(f["size"] for item in stored for f in item.rows)
        if nbytes:
            use_storage(
                session, c.tenant_id, nbytes, ctx.tiers.limits(session, c.tenant_id).storage_quota_bytes
            )
        ledger.capture(session, c.tenant_id, c.job_id, charged)
        if stored:
            _insert_outputs(session, c, stored)
        lifecycle.event(
            session,
            c.job_id,
            c.tenant_id,
            "succeeded",
            SUCCEEDED,
            c.attempt,
            outputs=len(stored),
            charged=charged,
        )
        uow.after_commit(lambda: _count(ctx, row.type, SUCCEEDED, row.started_at, row.finished_at))
        # Attempts that died before recording may have left files; only this attempt's stay.
        if c.attempt > 1:
            uow.after_commit(lambda: _remove_earlier_attempts(ctx, c))
    return charged


def _insert_outputs(session: Session, c: Claim, stored: list[_Stored]) -> None:
    """The outputs' file rows (each root before its members) and the job's outputs: two
    statements, whatever the number of files."""
    files: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for item in stored:
        root, *members = item.rows
        root["total_size"] = sum(r["size"] for r in item.rows)
        root["file_count"] = len(item.rows)
        for m in members:
            m["root_id"] = root["id"]
        files.extend(item.rows)
        outputs.append(
            {
                "id": new_id("out"),
                "job_id": c.job_id,
                "tenant_id": c.tenant_id,
                "name": item.name,
                "file_id": root["id"],
                "attempt": c.attempt,
            }
        )
    conn = session.connection()
    conn.execute(_INSERT_FILES, files)
    conn.execute(_INSERT_OUTPUTS, outputs)


_INSERT_FILES = insert(File)
_INSERT_OUTPUTS = insert(JobOutput)


def _remove_earlier_attempts(ctx: Context, c: Claim) -> None:
    for attempt in range(1, c.attempt):
        ctx.storage.delete_prefix(attempt_prefix(c, attempt))


def _count(ctx: Context, job_type: str, status: str, started: Any, finished: Any) -> None:
    if ctx.metrics is None:
        return
    took = (finished - started).total_seconds() if finished and started else None
    try:
        ctx.metrics.job_finished(job_type, status, took)
    except Exception:  # metrics must never fail a job
        log.warning("could not count a finished job", exc_info=True)


def _discard(ctx: Context, c: Claim) -> None:
    ctx.storage.delete_prefix(attempt_prefix(c))


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
    values: dict[str, Any] = {}
    if forget_upstream:  # the upstream request ended in failure: the next attempt submits anew
        values.update(provider_request_id=None, provider_state={})

    def back_to_queue() -> None:
        with transaction(ctx.sessions) as session:
            if lifecycle.back_to_queue(session, c.job_id, c.token, clock.now(), **values) is not None:
                lifecycle.event(
                    session, c.job_id, c.tenant_id, "retrying", QUEUED, c.attempt, code=code, message=message
                )

    _settle(ctx, back_to_queue)
    raise RetryLater(code, message, delay_ms)


def _finish(ctx: Context, c: Claim, status: str, *, code: str | None, message: str | None) -> None:
    if _settle(ctx, lambda: _record_finish(ctx, c, status, code=code, message=message)):
        log.info("%s%s", status, f" ({code})" if code else "")


def _record_finish(ctx: Context, c: Claim, status: str, *, code: str | None, message: str | None) -> bool:
    with lifecycle.unit_of_work(ctx.sessions) as uow:
        session = uow.session
        row = lifecycle.finish(session, c.job_id, c.token, clock.now(), status, code, message)
        if row is None:
            return False
        if row.run_id is not None:  # a workflow step: it ends with its job, in this transaction
            node = runs.job_ended(session, row.run_id, c.job_id, status, code=code, message=message)
            _advance_after(ctx, uow, row.run_id, node)
        # Failures (bad input included), cancels and platform errors charge nothing.
        ledger.release(session, c.tenant_id, c.job_id)
        lifecycle.event(
            session, c.job_id, c.tenant_id, status, status, c.attempt, **({"code": code} if code else {})
        )
        uow.after_commit(lambda: _count(ctx, row.type, status, row.started_at, row.finished_at))
        # No outputs stay: neither this attempt's nor those of attempts that died earlier.
        uow.after_commit(lambda: ctx.storage.delete_prefix(f"t/{c.tenant_id}/jobs/{c.job_id}/"))
    return True


def _advance_after(ctx: Context, uow: lifecycle.UnitOfWork, run_id: str, node: str | None) -> None:
    """Once the job's end is committed, advance its run (a lost call is the reconciler's)."""
    engine = ctx.workflows
    if engine is not None:
        uow.after_commit(lambda: engine.advance(run_id, after=node))


def _settle(ctx: Context, record: Callable[[], T]) -> T:
    """Run one transaction that records an outcome, trying it again after a short pause
    (doubling) while the database is unreachable; past the last try the error goes up and
    the message's redelivery, then the lease's expiry, take over."""
    pause = ctx.settings.db_retry_seconds
    for left in range(ctx.settings.db_retry_attempts - 1, -1, -1):
        try:
            return record()
        except Exception as err:
            if not left or not is_unavailable(err):
                raise
            log.warning("database unavailable while recording an outcome; again in %.2fs", pause)
            if ctx.metrics is not None:
                ctx.metrics.dependency_error("worker", "database")
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")
