"""Submitting, reading and canceling jobs.

Services take a session (scoped to the caller's tenant by the edge), may flush and never
commit. A submitted job gets its message only after its row is committed: the edge calls
`dispatch` after the commit, and the reconciler sends whatever a crash left unsent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Row, bindparam, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faktry import clock
from faktry.db import new_id
from faktry.errors import Conflict, FaktryError, NotFound, ValidationError
from faktry.tenancy import refuse_if_restricted
from pipelines import files, jobtypes, lifecycle, pagination, urlinputs
from pipelines.brands.models import Brand
from pipelines.catalog import Catalog, Model, default_catalog
from pipelines.media.subtitles import COLOR, FONT_FAMILY
from pipelines.models import CANCELED, FAILED, FINISHED, QUEUED, RUNNING, STATUSES, Job, JobEvent, JobOutput
from pipelines.routing import RoutingLimits, route
from quotas import ledger
from quotas.limits import TierCache, check_duration
from quotas.pricing import PriceList
from storage.models import File

MAX_METADATA_BYTES = 4096


class Sender(Protocol):
    """Hands a job's id to the message broker on the named queue."""

    def send(self, queue: str, job_id: str) -> None: ...


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Policy:
    """What submitting needs besides the request: routing, prices, and for generation jobs
    the model catalog and which providers have keys (the others run on ``local``)."""

    routing: RoutingLimits
    prices: PriceList
    catalog: Catalog = field(default_factory=default_catalog)
    configured: frozenset[str] = frozenset()
    #: Tenants' tier limits, remembered for a few seconds (read on every submit).
    tiers: TierCache = field(default_factory=TierCache, compare=False)


@dataclass(frozen=True)
class Prepared:
    job_type: jobtypes.JobType
    params: dict[str, Any]
    inputs: dict[str, Any]
    metadata: dict[str, Any]
    input_file: Row[Any] | None  # its id, kind, size and media (`_INPUT_FILE`)
    price: int
    queue: str
    model: str | None = None
    provider: str | None = None


def prepare(session: Session, *, tenant_id: str, body: Any, policy: Policy) -> Prepared:
    """Validate a job request against its type, its input and the tenant's tier; route and
    price it. Every problem is a 422 naming its field."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", field="body")
    unknown = sorted(set(body) - {"type", "input", "params", "metadata"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0], code="unknown_field")
    job_type = jobtypes.get(body.get("type"))
    params, model = checked_params(job_type, body.get("params", {}), policy.catalog)
    inputs = job_type.validate_input(body.get("input"))
    url = urlinputs.check(inputs["url"]) if "url" in inputs and job_type.takes_url else None
    params, inputs = _with_brand(session, tenant_id, job_type, body.get("params", {}), params, inputs)
    metadata = _metadata(body.get("metadata", {}))
    # A slot is a field naming one file, or one item of a field naming a list of files.
    given = {
        slot: _input_file(session, tenant_id, file_id, f"input.{slot}")
        for slot, file_id in jobtypes.file_slots(job_type, inputs).items()
    }
    for slot, row in given.items():
        name = jobtypes.slot_field(slot)
        if not (
            job_type.accepts(row.kind, params) if name == "file_id" else row.kind in job_type.files[name]
        ):
            raise ValidationError(
                f"{job_type.name} does not take a {row.kind} input"
                + (f" with preset {params.get('preset')!r}" if "preset" in params else "")
                + (f" with output {params.get('output')!r}" if "output" in params else ""),
                field=f"input.{slot}",
                code="unsupported_input",
            )
    if job_type.check_files is not None:
        job_type.check_files(params, {slot: row.kind for slot, row in given.items()})
    main = given.get("file_id")
    if main is None and job_type.list_fields:  # a list's first file is the job's input file
        main = next(iter(given.values()), None)
    media = jobtypes.priced_media(
        job_type, {slot: dict(row.media or {}) for slot, row in given.items()}, params
    )
    limits = policy.tiers.limits(session, tenant_id)
    if url is not None and "duration" not in media:
        # Unknown until the worker fetches it: priced (and routed) as long as the tier lets an
        # input be; what is charged is the price of what it turned out to be.
        media = {**media, "duration": float(limits.max_duration_seconds)}
    check_duration(limits, media.get("duration"))
    text = str(inputs.get("text") or inputs.get("prompt") or "")
    if model is not None:
        provider, runs = policy.catalog.runs_on(model, policy.configured, job_type.name)
        price = policy.prices.estimate(job_type.name, params, media, rule=model.price, text=text)
        queue = f"{provider}.{runs.queue_size}"
        return Prepared(job_type, params, inputs, metadata, main, price, queue, model.id, provider)
    price = policy.prices.estimate(job_type.name, params, media)
    queue = route(
        provider=job_type.provider,
        input_bytes=main.size if main else (limits.max_upload_bytes if url is not None else 0),
        input_seconds=media.get("duration"),
        limits=policy.routing,
    )
    return Prepared(job_type, params, inputs, metadata, main, price, queue)


def checked_params(
    job_type: jobtypes.JobType, params_in: Any, catalog: Catalog
) -> tuple[dict[str, Any], Model | None]:
    """A job's params with their defaults applied, and for a generative type the catalog
    model ``params.model`` names, whose own schema validates the rest; or a 422 naming the
    field. Submits and workflow graphs (pipelines/workflows/graph.py) check params here."""
    if not job_type.generative:
        return job_type.validate(params_in), None
    model = catalog.get(params_in.get("model") if isinstance(params_in, dict) else None, job_type.name)
    return job_type.validate(params_in, model.params_schema), model


#: The caption params a brand styles, with where each comes from in the brand and its value
#: without a brand.
_CAPTION_STYLE: dict[str, tuple[str, str, str, re.Pattern[str]]] = {
    "font_family": ("typography", "body_font", "DejaVu Sans", FONT_FAMILY),
    "text_color": ("colors", "primary", "#FFFFFF", COLOR),
    "outline_color": ("colors", "accent", "#000000", COLOR),
}


def _with_brand(
    session: Session,
    tenant_id: str,
    job_type: jobtypes.JobType,
    given: Any,
    params: dict[str, Any],
    inputs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The params and input with ``params.brand_id`` resolved for the caller's tenant, and the
    resolved values written into the job (its caption style in params, its logo in
    ``input.logo_file_id``) so that the job runs, and replays, the same after the brand
    changes. Values the request sets itself win over the brand's.

    Here, in `prepare`, a single submit and a workflow step (at its launch) both resolve it;
    a workflow graph checks only the params' shape. Another tenant's brand answers
    ``422 brand_not_found`` like an unknown one; a watermark with neither a logo nor a brand
    with one answers ``422 no_logo``."""
    explicit = set(given) if isinstance(given, dict) else set()
    brand = None
    brand_id = params.get("brand_id")
    if brand_id is not None:
        found = session.get(Brand, brand_id) if brand_id.startswith("brd_") else None
        if found is None or found.tenant_id != tenant_id:
            raise ValidationError("no such brand", field="params.brand_id", code="brand_not_found")
        brand = found
    if job_type.name == "video.captions":
        params = dict(params)
        for name, (part, key, default, pattern) in _CAPTION_STYLE.items():
            if name in explicit:
                continue
            value = (getattr(brand, part) or {}).get(key) if brand is not None else None
            # A brand's font may be longer than a caption renderer's name limit: then the default.
            params[name] = value if isinstance(value, str) and pattern.fullmatch(value) else default
    if job_type.name == "video.watermark" and not inputs.get("logo_file_id"):
        if brand is None:
            raise ValidationError(
                "missing required input field 'logo_file_id' (or a params.brand_id with a logo)",
                field="input.logo_file_id",
            )
        if not brand.logo_file_id or not _is_file(session, tenant_id, brand.logo_file_id):
            raise ValidationError(
                "the brand has no logo in the library; give input.logo_file_id",
                field="params.brand_id",
                code="no_logo",
            )
        inputs = {**inputs, "logo_file_id": brand.logo_file_id}
    return params, inputs


def _is_file(session: Session, tenant_id: str, file_id: str) -> bool:
    found = session.scalar(select(File.id).where(File.id == file_id, File.tenant_id == tenant_id))
    return found is not None


def quote(session: Session, *, tenant_id: str, body: Any, policy: Policy) -> dict[str, Any]:
    prepared = prepare(session, tenant_id=tenant_id, body=body, policy=policy)
    funds = ledger.balance(session, tenant_id)
    return {
        "object": "quote",
        "type": prepared.job_type.name,
        "model": prepared.model,
        "price": prepared.price,
        "currency": "millicredits",
        "available": funds.available,
        "sufficient": funds.available >= prepared.price and funds.debt == 0,
    }


def submit(
    session: Session,
    *,
    tenant_id: str,
    body: Any,
    idempotency_key: str | None,
    policy: Policy,
) -> Submitted:
    """Create the job, hold its price and stamp its hand-over, in the caller's transaction:
    all or nothing. The caller sends it (`dispatch`) once the transaction has committed; if
    that send is lost, the reconciler sends it again (pipelines/presence.py).

    Refused with 402 ``insufficient_credits`` (or ``account_in_debt``) having held nothing,
    and with 409 ``account_restricted`` while the account's processing is restricted (the
    same Idempotency-Key still answers the job it made before)."""
    if idempotency_key is not None and not (1 <= len(idempotency_key) <= 200):
        raise ValidationError("Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    digest = request_hash(body) if isinstance(body, dict) else ""
    if idempotency_key:
        existing = _by_idempotency_key(session, idempotency_key)
        if existing is not None:
            return _replay(existing, digest)
    refuse_if_restricted(session, tenant_id)  # a replay above answers what was made before
    p = prepare(session, tenant_id=tenant_id, body=body, policy=policy)
    try:
        job = create_job(session, tenant_id, p, p.metadata, idempotency_key=idempotency_key, digest=digest)
    except IntegrityError:
        # Another request with the same Idempotency-Key committed first.
        existing = _by_idempotency_key(session, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, digest)
    return Submitted(job, True)


def create_job(
    session: Session,
    tenant_id: str,
    p: Prepared,
    meta: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    digest: str = "",
    run_id: str | None = None,
    hold_from: str | None = None,
    job_id: str | None = None,
) -> Job:
    """The one way a prepared job comes to exist: its row (stamped as handed over), its
    hold and its ``created`` event, in the caller's transaction. A single submit holds its
    price from the account; a workflow run's step (``run_id``) moves it out of the run's own
    hold (``hold_from``, `quotas.ledger.split_hold`). With an Idempotency-Key the row is
    added in a savepoint, so a key another request took first raises `IntegrityError` with
    nothing else changed."""
    job = _new_job(tenant_id, p, meta, idempotency_key=idempotency_key, digest=digest)
    job.run_id = run_id
    if job_id is not None:  # chosen by the caller, to fence its own row with it first
        job.id = job_id
    if idempotency_key:
        with session.begin_nested():
            _insert_jobs(session, [job])
    else:
        _insert_jobs(session, [job])
    if hold_from is None:
        ledger.hold(session, tenant_id, job.id, p.price)
    else:
        ledger.split_hold(session, tenant_id, hold_from, job.id, p.price)
    lifecycle.event(session, job.id, tenant_id, "created", QUEUED, 0, queue=job.queue, price=p.price)
    return job


#: The most jobs one batch submit may carry.
MAX_BATCH = 1000


class BatchRefused(ValidationError):
    code = "batch_refused"


@dataclass(frozen=True)
class Batch:
    jobs: list[Job]
    created: bool


def submit_batch(
    session: Session, *, tenant_id: str, body: Any, idempotency_key: str | None, policy: Policy
) -> Batch:
    """Create every job of a batch, each with its own hold and id, in the caller's
    transaction: all of them or none. A refused item refuses the batch (422
    ``batch_refused`` listing every refused item with its index, field and code); credits
    short for the batch's total refuse it with 402 having held nothing. The same
    Idempotency-Key with the same body returns the same jobs. A restricted account is
    refused (409 ``account_restricted``)."""
    items = batch_items(body)
    if idempotency_key is not None and not (1 <= len(idempotency_key) <= 180):
        raise ValidationError(
            "Idempotency-Key must be 1 to 180 characters for a batch", field="Idempotency-Key"
        )
    digest = request_hash(body)
    keys = [f"batch:{idempotency_key}:{i}" for i in range(len(items))] if idempotency_key else []
    if keys:
        replayed = _batch_replay(session, keys, digest)
        if replayed is not None:
            return replayed
    refuse_if_restricted(session, tenant_id)
    prepared: list[Prepared] = []
    problems: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            prepared.append(prepare(session, tenant_id=tenant_id, body=item, policy=policy))
        except FaktryError as err:
            field = getattr(err, "field", None)
            problems.append(
                {
                    "index": i,
                    "code": err.code,
                    "message": err.message,
                    "field": f"jobs[{i}].{field}" if field else f"jobs[{i}]",
                }
            )
    if problems:
        raise BatchRefused(
            f"{len(problems)} of {len(items)} jobs were refused; nothing was submitted",
            field="jobs",
            details={"items": problems},
        )
    jobs = [
        _new_job(tenant_id, p, p.metadata, idempotency_key=keys[i] if keys else None, digest=digest)
        for i, p in enumerate(prepared)
    ]
    try:
        with session.begin_nested():
            _insert_jobs(session, jobs)
    except IntegrityError:
        replayed = _batch_replay(session, keys, digest) if keys else None
        if replayed is None:
            raise
        return replayed
    ledger.hold_many(session, tenant_id, [(job.id, job.cost_estimated) for job in jobs])
    now = clock.now()
    session.execute(
        insert(JobEvent),
        [
            {
                "job_id": job.id, "tenant_id": tenant_id, "at": now, "kind": "created", "status": QUEUED,
                "attempt": 0, "data": {"queue": job.queue, "price": job.cost_estimated},
            }
            for job in jobs
        ],
    )  # fmt: skip
    return Batch(jobs, True)


def batch_items(body: Any) -> list[Any]:
    """The job requests of a batch body, or a 422 naming what is wrong with its shape."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", field="body")
    unknown = sorted(set(body) - {"jobs"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0], code="unknown_field")
    items = body.get("jobs")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ValidationError(f"jobs must be a list of 1 to {MAX_BATCH} job requests", field="jobs")
    return items


def _batch_replay(session: Session, keys: list[str], digest: str) -> Batch | None:
    """The jobs an earlier batch with these keys made, or None if there was none."""
    found = {
        job.idempotency_key: job for job in session.scalars(select(Job).where(Job.idempotency_key.in_(keys)))
    }
    if not found:
        return None
    if len(found) != len(keys) or any(job.request_hash != digest for job in found.values()):
        raise ValidationError(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return Batch([found[key] for key in keys], False)


def _new_job(
    tenant_id: str, p: Prepared, meta: dict[str, Any], *, idempotency_key: str | None = None, digest: str = ""
) -> Job:
    now = clock.now()
    return Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        type=p.job_type.name,
        status=QUEUED,
        input_file_id=p.input_file.id if p.input_file else None,
        input=p.inputs,
        params=p.params,
        meta=meta,
        queue=p.queue,
        model=p.model,
        provider=p.provider,
        idempotency_key=idempotency_key,
        request_hash=digest,
        cost_estimated=p.price,
        cost_held=p.price,
        progress=0.0,
        attempts=0,
        cancel_requested=False,
        result={},
        provider_state={},
        created_at=now,
        updated_at=now,
        # Stamped as handed over now: if the send after the commit is lost, the reconciler
        # finds nothing holds it and sends it again.
        enqueued_at=now,
    )


#: (column key, attribute) of every column of a job's row.
_JOB_COLUMNS = tuple((attr.columns[0].key, attr.key) for attr in sa_inspect(Job).column_attrs)
_INSERT_JOBS = insert(Job)


def _insert_jobs(session: Session, jobs: list[Job]) -> None:
    """Insert new jobs' rows in one Core statement (a batch's too). The `Job` objects stay
    out of the session: what the answer shows is in them already, and nothing reloads them."""
    rows = [{column: getattr(job, attr) for column, attr in _JOB_COLUMNS} for job in jobs]
    session.connection().execute(_INSERT_JOBS, rows)


def _by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.idempotency_key == key)).first()


def _replay(job: Job, digest: str) -> Submitted:
    if job.request_hash != digest:
        raise ValidationError(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return Submitted(job, False)


def _metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError("metadata must be an object", field="metadata")
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON", field="metadata")
    return value


#: What a submit needs of an input file: the tenant's own only (the id came from the client).
_INPUT_FILE = select(File.id, File.kind, File.size, File.media, File.root_id).where(
    File.id == bindparam("file"), File.tenant_id == bindparam("tenant")
)


def _input_file(session: Session, tenant_id: str, file_id: Any, field: str) -> Row[Any]:
    row = session.connection().execute(_INPUT_FILE, {"file": str(file_id), "tenant": tenant_id}).first()
    if row is None:
        raise ValidationError("no such file", field=field, code="file_not_found")
    if row.root_id is not None or row.kind == "playlist":
        raise ValidationError("this file cannot be a job input", field=field, code="unsupported_input")
    return row


def replay(session: Session, original: Job, *, policy: Policy) -> Job:
    """A failed job's replay: a new job with the same request and a fresh hold. The first
    job keeps what it had (nothing charged, as every failure releases its hold)."""
    if original.status != FAILED:
        raise Conflict("only failed jobs can be replayed", code="not_failed")
    session.info["tenant_id"] = original.tenant_id  # the replay belongs to the job's tenant
    refuse_if_restricted(session, original.tenant_id)  # staff cannot run what the person stopped
    body = {"type": original.type, "input": original.input, "params": original.params}
    p = prepare(session, tenant_id=original.tenant_id, body=body, policy=policy)
    job = _new_job(original.tenant_id, p, {**(original.meta or {}), "replay_of": original.id})
    session.add(job)
    session.flush()
    ledger.hold(session, original.tenant_id, job.id, p.price)
    lifecycle.event(
        session,
        job.id,
        job.tenant_id,
        "created",
        QUEUED,
        0,
        queue=job.queue,
        price=p.price,
        replay_of=original.id,
    )
    return job


def dispatch(sender: Sender, jobs: Iterable[Job]) -> None:
    """Send each committed job's message (its hand-over was stamped with it). A send that
    is lost, or a process that dies first, is made good by the reconciler; the actor is
    idempotent, so a second message costs nothing."""
    send_jobs = getattr(sender, "send_jobs", None)
    if send_jobs is not None:  # fair admission: every job offered in one round trip
        send_jobs([(job.queue, job.id, job.tenant_id) for job in jobs])
        return
    for job in jobs:
        sender.send(job.queue, job.id)


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id) if job_id.startswith("job_") else None
    tenant = session.info.get("tenant_id")
    if job is None or (tenant is not None and job.tenant_id != tenant):
        raise NotFound("no such job", code="job_not_found")
    return job


def list_jobs(
    session: Session, *, status: str | None, cursor: str | None, limit: int
) -> tuple[list[Job], str | None]:
    stmt = select(Job)
    if status is not None:
        if status not in STATUSES:
            raise ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        stmt = stmt.where(Job.status == status)
    return pagination.page(session, stmt, created=Job.created_at, ident=Job.id, cursor=cursor, limit=limit)


def cancel(session: Session, job_id: str) -> Job:
    """Cancel a job: a queued one never runs; a running one is stopped by its worker,
    which notices within a heartbeat, kills its processes and removes partial outputs."""
    job = get_job(session, job_id)
    if job.status == CANCELED:
        return job
    if job.status in FINISHED:
        raise Conflict(f"the job has already {job.status}", code="job_finished")
    now = clock.now()
    if job.status == QUEUED and not job.provider_request_id:
        row = lifecycle.cancel_queued(session, job.id, now)
        if row is not None:
            ledger.release(session, job.tenant_id, job.id)
            if job.run_id is not None:  # a workflow step: it ends with its job
                from pipelines.workflows import runs

                runs.job_ended(session, job.run_id, job.id, CANCELED, code="canceled")
            lifecycle.event(
                session,
                job.id,
                job.tenant_id,
                "canceled",
                CANCELED,
                row.attempts,
                reason="canceled while queued",
            )
            session.refresh(job)
            return job
        session.refresh(job)
    # Running, or waiting to retry with a request at a provider: its worker cancels it
    # (there, too) at its next heartbeat or poll.
    if job.status in (QUEUED, RUNNING) and not job.cancel_requested:
        row = lifecycle.fenced(
            session,
            job.id,
            Job.status == job.status,
            {"cancel_requested": True, "updated_at": now},
            (Job.attempts,),
        )
        if row is not None:
            lifecycle.event(session, job.id, job.tenant_id, "cancel_requested", job.status, row.attempts)
        session.refresh(job)
    return job


def outputs_of(session: Session, job: Job) -> list[tuple[JobOutput, File]]:
    rows = session.execute(
        select(JobOutput, File).join(File, File.id == JobOutput.file_id).where(JobOutput.job_id == job.id)
    )
    return [(out, f) for out, f in rows]


def events_of(session: Session, job: Job) -> list[JobEvent]:
    return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)))


def _upstream(job: Job) -> dict[str, Any] | None:
    """Where a generation job stands at its provider, while it waits there."""
    state = job.provider_state or {}
    if not job.provider_request_id and not state.get("status"):
        return None
    return {
        "status": state.get("status"),
        "queue_position": state.get("queue_position"),
        "progress": state.get("progress"),
    }


def _input_of(job: Job) -> dict[str, Any]:
    """The job's input as submitted; for a URL input, with the file it was fetched into once
    it has been (``{"url": …, "file_id": …}``)."""
    if not job.input:
        return {"file_id": job.input_file_id} if job.input_file_id else {}
    if "url" in job.input and job.input_file_id:
        return {**job.input, "file_id": job.input_file_id}
    return dict(job.input)


def to_dict(job: Job, outputs: list[tuple[JobOutput, File]] | None = None) -> dict[str, Any]:
    def stamp(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": job.id,
        "object": "job",
        "type": job.type,
        "status": job.status,
        "progress": round(job.progress, 4),
        "attempts": job.attempts,
        "queue": job.queue,
        "input": _input_of(job),
        "model": job.model,
        "provider": job.provider,
        "upstream": _upstream(job),
        "params": job.params,
        "metadata": job.meta,
        "result": job.result or {},
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "cancel_requested": job.cancel_requested,
        "queue_position": None,
        "cost": {"estimated": job.cost_estimated, "held": job.cost_held, "charged": job.cost_charged},
        "outputs": [{"name": out.name, **files.to_dict(f)} for out, f in (outputs or [])],
        "created_at": stamp(job.created_at),
        "started_at": stamp(job.started_at),
        "finished_at": stamp(job.finished_at),
        "urls": {"self": f"/v1/jobs/{job.id}", "cancel": f"/v1/jobs/{job.id}/cancel"},
    }
