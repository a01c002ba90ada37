"""Workflow runs: start, advance, cancel, retry.

A run is a snapshot of a graph and its inputs, one hold for its whole quote (keyed by the
run's id: `hold_key`), and one step row per node item. Each step runs as an ordinary job,
created through the same path as a single submit (`pipelines.services.create_job`), its
price moved out of the run's hold into the job's own (`quotas.ledger.split_hold`); from
there the job is held, captured or released like any other.

The run moves forward only when something happens to it, never by polling:

- `start` validates the graph and the inputs (`graph.parse`, `graph.bind_inputs`), holds the
  quote (402 with nothing started when short), creates the run and every step, and
  advances it in the same transaction;
- the runner's success and finish transactions mark the job's step in the same transaction
  (`job_ended`) and, once committed, call `Engine.advance`;
- `advance` locks the run row (``SELECT … FOR UPDATE``; SQLite's write lock), creates the
  jobs of steps whose inputs now exist, skips the steps that depend on a failed one, and
  finishes the run when nothing is left, releasing what is left of its hold;
- the reconciler (`sweep`) advances running runs whose after-commit call was lost.

A step's job is created at most once: the step's ``job_id`` is set by a fenced update
(``… WHERE id = :step AND job_id IS NULL``) in the transaction that creates the job, so a
second advance of the same run, in any process, finds nothing to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.config import Settings
from faktry.db import read_only
from faktry.errors import Conflict, FaktryError, NotFound, ValidationError
from faktry.tenancy import refuse_if_restricted
from pipelines import jobtypes, lifecycle, services
from pipelines.catalog import default_catalog
from pipelines.models import FINISHED, Job
from pipelines.models import SUCCEEDED as JOB_SUCCEEDED
from pipelines.routing import RoutingLimits
from pipelines.webhooks import outbox as webhook_outbox
from pipelines.workflows import graph as graphs
from pipelines.workflows.models import (
    CANCELED,
    FAILED,
    QUEUED,
    REUSED,
    RUNNING,
    SKIPPED,
    STEP_DONE,
    STEP_ENDED,
    STEP_RUNNING,
    SUCCEEDED,
    WAITING,
    WorkflowEvent,
    WorkflowRun,
    WorkflowStep,
)
from quotas import ledger
from quotas.limits import TierCache, TierLimits
from quotas.pricing import PriceList
from storage.models import File

log = logging.getLogger("faktry.workflows")

#: Step statuses whose job may still be queued or running.
IN_FLIGHT = (QUEUED, STEP_RUNNING)
#: Ended steps that break what depends on them.
BROKEN = (FAILED, CANCELED, SKIPPED)
#: A running run is advanced by the reconciler only once it has been left alone this long
#: (the after-commit call normally comes within milliseconds); the reconciler passes
#: ``requeue_after_seconds``.
SWEEP_GRACE = timedelta(seconds=30)
#: Runs the reconciler advances in one pass.
SWEEP_BATCH = 200

#: A running run's graph was checked against its tier when it started; re-reading the
#: snapshot later must not refuse it because the tier has changed since.
_ANY_TIER = TierLimits(
    name="any",
    storage_quota_bytes=0,
    max_upload_bytes=0,
    max_duration_seconds=10**9,
    max_concurrent_jobs=0,
    submits_per_minute=0,
    scheduling_weight=0,
    workflow_max_nodes=graphs.MAX_NODES,
    workflow_max_items=10**9,
)


def hold_key(run: WorkflowRun) -> str:
    """The key of the run's hold: the run id for the first attempt, ``<id>.<attempt>`` for
    each retry (every attempt gets a hold of its own)."""
    return run.id if run.attempt == 1 else f"{run.id}.{run.attempt}"


def policy_from(settings: Settings, tiers: TierCache | None = None) -> services.Policy:
    """The submit policy a worker or the scheduler advances runs with (the web builds the
    same one in web/__init__.py)."""
    from pipelines.generation import configured_providers

    return services.Policy(
        routing=RoutingLimits(settings.large_input_bytes, settings.large_input_seconds),
        prices=PriceList.from_json(settings.prices),
        catalog=default_catalog(),
        configured=configured_providers(settings),
        tiers=tiers or TierCache(),
    )


@dataclass(frozen=True)
class Started:
    run: WorkflowRun
    #: Jobs created in the caller's transaction: dispatch them once it has committed.
    jobs: list[Job]
    created: bool = True


# -- start ------------------------------------------------------------------------------------


def start(
    session: Session,
    *,
    tenant_id: str,
    graph: Any,
    inputs: Any,
    policy: services.Policy,
    workflow_id: str | None = None,
    version: int | None = None,
    reuse: bool = False,
    idempotency_key: str | None = None,
) -> Started:
    """Check, quote, hold and start a run in the caller's transaction, creating the jobs of
    the steps that can run at once. `graphs.WorkflowInvalid` (422) or `InsufficientCredits`
    (402) leave nothing behind once the caller rolls back; the same Idempotency-Key with the
    same request answers the run it started."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise ValidationError("Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")
    if not isinstance(reuse, bool):
        raise ValidationError("reuse must be true or false", field="reuse")
    digest = services.request_hash(
        {"graph": graph, "inputs": inputs, "workflow_id": workflow_id, "version": version, "reuse": reuse}
    )
    if idempotency_key:
        existing = _by_idempotency_key(session, tenant_id, idempotency_key)
        if existing is not None:
            return _replay(existing, digest)
    refuse_if_restricted(session, tenant_id)
    limits = policy.tiers.limits(session, tenant_id)
    checked = graphs.parse(graph, policy=policy, limits=limits)
    bound = graphs.bind_inputs(session, tenant_id, checked, inputs)
    quote = graphs.quote(checked, bound, policy)
    now = clock.now()
    run = WorkflowRun(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        version=version,
        graph=graph,
        inputs=inputs or {},
        status=RUNNING,
        quote=quote.total,
        charged=0,
        reuse=reuse,
        attempt=1,
        idempotency_key=idempotency_key,
        request_hash=digest,
        created_at=now,
        updated_at=now,
        started_at=now,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        existing = _by_idempotency_key(session, tenant_id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, digest)
    ledger.hold(session, tenant_id, run.id, quote.total)
    counts = graphs.items_of(checked, bound)
    session.execute(
        insert(WorkflowStep),
        [
            _step_row(run, name, item, quote.nodes[name].unit_price)
            for name in checked.order
            for item in range(counts[name])
        ],
    )
    _event(session, run, "started", quote=quote.total, nodes={n: counts[n] for n in checked.order})
    jobs = _advance_locked(session, run, checked, policy)
    return Started(run, jobs)


def _step_row(run: WorkflowRun, node: str, item: int, price: int) -> dict[str, Any]:
    return {
        "id": _new_step_id(),
        "run_id": run.id,
        "tenant_id": run.tenant_id,
        "node": node,
        "item": item,
        "status": WAITING,
        "attempt": run.attempt,
        "job_id": None,
        "outputs": [],
        "price": price,
        "cost": 0,
    }


def _new_step_id() -> str:
    from faktry.db import new_id

    return new_id("stp")


def _by_idempotency_key(session: Session, tenant_id: str, key: str) -> WorkflowRun | None:
    return session.scalars(
        select(WorkflowRun).where(WorkflowRun.tenant_id == tenant_id, WorkflowRun.idempotency_key == key)
    ).first()


def _replay(run: WorkflowRun, digest: str) -> Started:
    if run.request_hash != digest:
        raise ValidationError(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return Started(run, [], created=False)


# -- advance ----------------------------------------------------------------------------------


class Engine:
    """What advances runs outside a request: the worker's after-commit hooks and the
    reconciler. Each `advance` is its own transaction; the jobs it created are sent once it
    has committed (a lost send is made good by the reconciler, like any job's)."""

    def __init__(
        self, sessions: sessionmaker[Session], policy: services.Policy, sender: services.Sender
    ) -> None:
        self.sessions = sessions
        self.policy = policy
        self.sender = sender

    def advance(self, run_id: str, *, fold: bool = False, after: str | None = None) -> None:
        """Advance the run. ``after`` names the node whose step just ended: while other steps
        of that node are still waiting or under way, nothing can have become ready (its
        dependents need all of it) and the run cannot have ended, so the run is left alone
        without locking it. Checked after the step's end was committed, the last of the
        node's steps to commit always sees the others' ends and advances the run."""
        if after is not None and not fold:
            with read_only(self.sessions) as session:
                busy = session.connection().execute(_NODE_BUSY, {"run": run_id, "node": after}).first()
            if busy is not None:
                return
        with lifecycle.unit_of_work(self.sessions) as uow:
            made = advance(uow.session, run_id, self.policy, fold=fold)
            if made:
                uow.after_commit(lambda: services.dispatch(self.sender, made))


def advance(session: Session, run_id: str, policy: services.Policy, *, fold: bool = False) -> list[Job]:
    """Advance the run in the caller's transaction; the jobs created, to dispatch after the
    commit. ``fold`` first takes in steps whose job ended by a path that did not mark them
    (the reconciler's)."""
    run = _lock(session, run_id)
    if run is None:
        return []
    if fold:
        _fold_in(session, run)
    if run.status != RUNNING:
        return []
    try:
        checked = _checked(run, policy)
    except FaktryError as err:
        # The graph ran once; a catalog change may refuse it now. The run ends, nothing lost.
        log.warning("run %s: its graph no longer checks (%s); failing it", run.id, err.message)
        _fail_waiting(session, run, err.code, err.message)
        _finish(session, run)
        return []
    return _advance_locked(session, run, checked, policy)


#: Checked graphs of runs advanced lately, by run id. A run's graph never changes once it
#: has started, and checking it (every node's params against its schema) costs more than
#: the rest of an advance: a fan-out of a thousand items advances a thousand times.
_CHECKED: dict[str, tuple[int, graphs.Graph]] = {}
_CHECKED_LOCK = threading.Lock()
_CHECKED_MAX = 256


def _checked(run: WorkflowRun, policy: services.Policy) -> graphs.Graph:
    with _CHECKED_LOCK:
        found = _CHECKED.get(run.id)
    if found is not None and found[0] == id(policy):
        return found[1]
    checked = graphs.parse(run.graph, policy=policy, limits=_ANY_TIER)
    with _CHECKED_LOCK:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[run.id] = (id(policy), checked)
    return checked


def _lock(session: Session, run_id: str) -> WorkflowRun | None:
    return session.scalars(
        select(WorkflowRun)
        .where(WorkflowRun.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _tally(session: Session, run: WorkflowRun) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for node, status, n in session.execute(
        select(WorkflowStep.node, WorkflowStep.status, func.count())
        .where(WorkflowStep.run_id == run.id)
        .group_by(WorkflowStep.node, WorkflowStep.status)
    ):
        counts.setdefault(node, Counter())[status] = n
    return counts


def _advance_locked(
    session: Session, run: WorkflowRun, checked: graphs.Graph, policy: services.Policy
) -> list[Job]:
    """One pass over the nodes in dependency order; a step that ends at once (reused, or
    refused) is seen by the nodes after it in the same pass."""
    tally = _tally(session, run)
    made: list[Job] = []
    outputs_cache: dict[str, list[str]] = {}

    def done(name: str) -> bool:
        t = tally.get(name, Counter())
        return sum(t[s] for s in STEP_DONE) == sum(t.values())

    def broken(name: str) -> bool:
        return any(tally.get(name, Counter())[s] for s in BROKEN)

    for name in checked.order:
        node = checked.nodes[name]
        if not tally.get(name, Counter())[WAITING]:
            continue
        deps = node.depends_on()
        if any(broken(d) for d in deps):
            skipped = _skip_waiting(session, run, name)
            tally[name][WAITING] -= skipped
            tally[name][SKIPPED] += skipped
            _event(
                session, run, "step_skipped", node=name, items=skipped, reason="an input node did not succeed"
            )
            continue
        if not all(done(d) for d in deps):
            continue
        outputs = {d: outputs_cache.get(d) or _outputs_of(session, run, d) for d in deps}
        outputs_cache.update(outputs)
        _fit_items(session, run, node, outputs, tally)
        for step in _waiting(session, run, name):
            job, status = _launch(session, run, node, step, outputs, policy)
            if job is not None:
                made.append(job)
            tally[name][WAITING] -= 1
            tally[name][status] += 1
    if not any(t[s] for t in tally.values() for s in (WAITING, *IN_FLIGHT)):
        _finish(session, run)
    else:
        run.updated_at = clock.now()
    session.flush()
    return made


def _waiting(session: Session, run: WorkflowRun, node: str) -> list[WorkflowStep]:
    return list(
        session.scalars(
            select(WorkflowStep)
            .where(WorkflowStep.run_id == run.id, WorkflowStep.node == node, WorkflowStep.status == WAITING)
            .order_by(WorkflowStep.item)
        )
    )


def _outputs_of(session: Session, run: WorkflowRun, node: str) -> list[str]:
    """Every output of the node, item by item in order (a mapped node's outputs are the
    outputs of all its items)."""
    rows = session.execute(
        select(WorkflowStep.outputs)
        .where(WorkflowStep.run_id == run.id, WorkflowStep.node == node)
        .order_by(WorkflowStep.item)
    ).scalars()
    return [file_id for outputs in rows for file_id in (outputs or [])]


def _fit_items(
    session: Session,
    run: WorkflowRun,
    node: graphs.Node,
    outputs: dict[str, list[str]],
    tally: dict[str, Counter[str]],
) -> None:
    """A node that maps over another node's outputs has one step per output, now that they
    are known: steps are added, or the unused waiting ones removed, when the count differs
    from the one quoted (what the run's hold lacks is then held fresh as each job starts)."""
    ref = node.input.get(node.map) if node.map else None
    if not isinstance(ref, graphs.Ref) or ref.node is None:
        return
    want = len(outputs.get(ref.node, []))
    have = sum(tally[node.name].values())
    if want == have:
        return
    if want > have:
        price = session.scalar(
            select(WorkflowStep.price)
            .where(WorkflowStep.run_id == run.id, WorkflowStep.node == node.name)
            .limit(1)
        )
        session.execute(
            insert(WorkflowStep), [_step_row(run, node.name, item, price or 0) for item in range(have, want)]
        )
        tally[node.name][WAITING] += want - have
    else:
        session.execute(
            delete(WorkflowStep).where(
                WorkflowStep.run_id == run.id,
                WorkflowStep.node == node.name,
                WorkflowStep.item >= want,
                WorkflowStep.status == WAITING,
            )
        )
        tally[node.name][WAITING] -= have - want
    _event(session, run, "items", node=node.name, items=want, quoted=have)


def _resolve(run: WorkflowRun, node: graphs.Node, item: int, outputs: dict[str, list[str]]) -> dict[str, Any]:
    """The job's ``input``: literals as written, references replaced by file ids (a list
    written in the graph by the file ids of its items, in order)."""
    resolved: dict[str, Any] = {}
    for field_name, value in node.input.items():
        where = f"input.{field_name}"
        if isinstance(value, graphs.RefList):
            resolved[field_name] = [
                _file_of(run, one, None, outputs, f"{where}[{i}]") for i, one in enumerate(value.items)
            ]
        else:
            resolved[field_name] = _file_of(
                run, value, item if node.map == field_name else None, outputs, where
            )
    return resolved


def _file_of(
    run: WorkflowRun,
    value: graphs.Literal | graphs.Ref,
    item: int | None,
    outputs: dict[str, list[str]],
    where: str,
) -> Any:
    """What one value of the graph stands for in a job's input: a literal as written, a run
    input's file (the ``item``-th of a list the node maps over), a node's output (the
    ``item``-th of all of them, when mapped)."""
    if isinstance(value, graphs.Literal):
        return value.value
    if value.input is not None:
        given = (run.inputs or {}).get(value.input)
        return given[item] if item is not None and isinstance(given, list) else given
    assert value.node is not None
    produced = outputs.get(value.node, [])
    index = value.output if value.output is not None else item or 0
    if index >= len(produced):
        raise ValidationError(
            f"node {value.node!r} wrote {len(produced)} output(s); there is no output {index}",
            field=where,
            code="no_such_output",
        )
    return produced[index]


_FENCE_STEP = (
    update(WorkflowStep)
    .where(
        WorkflowStep.id == bindparam("step"), WorkflowStep.job_id.is_(None), WorkflowStep.status == WAITING
    )
    .values(
        job_id=bindparam("job"),
        status=QUEUED,
        reuse_key=bindparam("key"),
        started_at=bindparam("now"),
    )
)


def _launch(
    session: Session,
    run: WorkflowRun,
    node: graphs.Node,
    step: WorkflowStep,
    outputs: dict[str, list[str]],
    policy: services.Policy,
) -> tuple[Job | None, str]:
    """Create the step's job (or reuse an earlier output, or fail the step with the reason it
    cannot run); the job if one was created, and the step's status now."""
    try:
        resolved = _resolve(run, node, step.item, outputs)
        body = {"type": node.type, "params": node.params, "input": resolved}
        p = services.prepare(session, tenant_id=run.tenant_id, body=body, policy=policy)
    except FaktryError as err:
        _end_step(session, run, step, FAILED, code=err.code, message=err.message)
        return None, FAILED
    key = _reuse_key(session, run.tenant_id, node, p.params, resolved)
    if run.reuse and _reuse(session, run, step, key):
        return None, REUSED
    job_id = _new_job_id()
    try:
        with session.begin_nested():
            fenced = session.connection().execute(
                _FENCE_STEP, {"step": step.id, "job": job_id, "key": key, "now": clock.now()}
            )
            if fenced.rowcount != 1:
                return None, QUEUED  # another advance took this step first (never, under the run's lock)
            job = services.create_job(
                session,
                run.tenant_id,
                p,
                {"workflow_run": run.id, "node": node.name, "item": step.item},
                run_id=run.id,
                hold_from=hold_key(run),
                job_id=job_id,
            )
    except (ledger.InsufficientCredits, ledger.AccountInDebt) as err:
        _end_step(session, run, step, FAILED, code=err.code, message=err.message)
        return None, FAILED
    _event(session, run, "step_queued", node=node.name, item=step.item, job_id=job.id, price=p.price)
    return job, QUEUED


def _new_job_id() -> str:
    from faktry.db import new_id

    return new_id("job")


def _reuse_key(
    session: Session, tenant_id: str, node: graphs.Node, params: dict[str, Any], resolved: dict[str, Any]
) -> str:
    """SHA-256 of the job type, its params and its input, each input file by its checksum (a
    list of files, each of its items): equal keys mean the same work on the same bytes."""
    ids = [v for v in jobtypes.file_slots(node.job_type, resolved).values() if isinstance(v, str)]
    sums = (
        dict(
            session.execute(
                select(File.id, File.sha256).where(File.tenant_id == tenant_id, File.id.in_(ids))
            ).all()
        )
        if ids
        else {}
    )

    def by_checksum(value: Any) -> Any:
        if isinstance(value, list):
            return [by_checksum(v) for v in value]
        return {"sha256": sums.get(value)} if isinstance(value, str) else value

    described = {
        "type": node.type,
        "params": params,
        "input": {
            name: by_checksum(value) if name in node.job_type.files else value
            for name, value in resolved.items()
        },
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _reuse(session: Session, run: WorkflowRun, step: WorkflowStep, key: str) -> bool:
    """Take the outputs of a succeeded step of an earlier run with the same key, if its files
    are all still there; the step is ``reused`` and costs nothing."""
    candidates = session.execute(
        select(WorkflowStep.id, WorkflowStep.outputs)
        .where(
            WorkflowStep.tenant_id == run.tenant_id,
            WorkflowStep.reuse_key == key,
            WorkflowStep.status == SUCCEEDED,
            WorkflowStep.run_id != run.id,
        )
        .order_by(WorkflowStep.finished_at.desc())
        .limit(5)
    ).all()
    for found_id, found_outputs in candidates:
        outputs = list(found_outputs or [])
        present = (
            session.scalar(
                select(func.count())
                .select_from(File)
                .where(File.tenant_id == run.tenant_id, File.id.in_(outputs))
            )
            if outputs
            else 0
        )
        if present != len(outputs):
            continue
        now = clock.now()
        taken = session.connection().execute(
            update(WorkflowStep)
            .where(WorkflowStep.id == step.id, WorkflowStep.status == WAITING, WorkflowStep.job_id.is_(None))
            .values(
                status=REUSED, outputs=outputs, reuse_key=key, reused_from=found_id, cost=0,
                started_at=now, finished_at=now,
            )
        )  # fmt: skip
        if taken.rowcount == 1:
            _event(session, run, "step_reused", node=step.node, item=step.item, reused_from=found_id)
        return True
    return False


def _end_step(
    session: Session, run: WorkflowRun, step: WorkflowStep, status: str, *, code: str, message: str
) -> None:
    done = session.connection().execute(
        update(WorkflowStep)
        .where(WorkflowStep.id == step.id, WorkflowStep.status == WAITING)
        .values(status=status, error_code=code, error_message=message[:500], finished_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 1:
        _event(
            session, run, f"step_{status}", node=step.node, item=step.item, code=code, message=message[:300]
        )


def _skip_waiting(session: Session, run: WorkflowRun, node: str) -> int:
    return int(
        session.connection()
        .execute(
            update(WorkflowStep)
            .where(WorkflowStep.run_id == run.id, WorkflowStep.node == node, WorkflowStep.status == WAITING)
            .values(status=SKIPPED, finished_at=clock.now())
        )
        .rowcount
    )


def _fail_waiting(session: Session, run: WorkflowRun, code: str, message: str) -> None:
    session.execute(
        update(WorkflowStep)
        .where(WorkflowStep.run_id == run.id, WorkflowStep.status == WAITING)
        .values(status=FAILED, error_code=code, error_message=message[:500], finished_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def _finish(session: Session, run: WorkflowRun) -> None:
    """Nothing waits or runs any more: the run succeeded if every step did (or reused an
    output), else it failed; what is left of its hold goes back."""
    statuses = _tally(session, run)
    every = Counter[str]()
    for t in statuses.values():
        every.update(t)
    now = clock.now()
    run.status = SUCCEEDED if sum(every[s] for s in STEP_DONE) == sum(every.values()) else FAILED
    failed = session.scalar(
        select(WorkflowStep.error_code)
        .where(WorkflowStep.run_id == run.id, WorkflowStep.status == FAILED)
        .order_by(WorkflowStep.finished_at)
        .limit(1)
    )
    run.error_code = None if run.status == SUCCEEDED else (failed or "step_failed")
    run.charged = int(
        session.scalar(
            select(func.coalesce(func.sum(WorkflowStep.cost), 0)).where(WorkflowStep.run_id == run.id)
        )
        or 0
    )
    run.finished_at = now
    run.updated_at = now
    released = ledger.release(session, run.tenant_id, hold_key(run))
    _event(
        session, run, run.status, charged=run.charged, released=released.amount if released else 0,
        steps=dict(every),
    )  # fmt: skip


# -- the job path ------------------------------------------------------------------------------

_STEP_ENDED = (
    update(WorkflowStep)
    .where(
        WorkflowStep.run_id == bindparam("run"),
        WorkflowStep.job_id == bindparam("job"),
        WorkflowStep.status.in_(IN_FLIGHT),
    )
    .values(
        status=bindparam("to"),
        outputs=bindparam("made"),
        cost=bindparam("charged"),
        error_code=bindparam("code"),
        error_message=bindparam("message"),
        finished_at=bindparam("now"),
    )
    .returning(WorkflowStep.tenant_id, WorkflowStep.node, WorkflowStep.item)
)
_EVENT = insert(WorkflowEvent)
#: A step of the node that has not ended (see `Engine.advance`).
_NODE_BUSY = (
    select(WorkflowStep.id)
    .where(
        WorkflowStep.run_id == bindparam("run"),
        WorkflowStep.node == bindparam("node"),
        WorkflowStep.status.in_((WAITING, *IN_FLIGHT)),
    )
    .limit(1)
)


def job_ended(
    session: Session,
    run_id: str,
    job_id: str,
    status: str,
    *,
    outputs: Iterable[str] = (),
    cost: int = 0,
    code: str | None = None,
    message: str | None = None,
) -> str | None:
    """Mark the step whose job ended, in the transaction that ended the job (the runner's,
    or a cancel's); the step's node, or None if no step was marked. The run itself is advanced once that
    transaction has committed (`Engine.advance`), or by the reconciler."""
    now = clock.now()
    row = (
        session.connection()
        .execute(
            _STEP_ENDED,
            {
                "run": run_id, "job": job_id, "to": status, "made": list(outputs), "charged": cost,
                "code": code, "message": (message or "")[:500] or None, "now": now,
            },
        )
        .first()
    )  # fmt: skip
    if row is None:
        return None
    data: dict[str, Any] = {"job_id": job_id}
    if status == SUCCEEDED:
        data["cost"] = cost
    if code:
        data["code"] = code
    _append(session, run_id, row.tenant_id, f"step_{status}", row.node, row.item, data, now)
    return str(row.node)


def _fold_in(session: Session, run: WorkflowRun) -> None:
    """Steps still marked queued or running whose job has ended by a path that did not mark
    them (a worker lost after a cancel, an operator): they end as their job did."""
    rows = session.execute(
        select(WorkflowStep.job_id, Job.status, Job.cost_charged, Job.error_code, Job.error_message)
        .join(Job, Job.id == WorkflowStep.job_id)
        .where(WorkflowStep.run_id == run.id, WorkflowStep.status.in_(IN_FLIGHT), Job.status.in_(FINISHED))
    ).all()
    for job_id, status, charged, code, message in rows:
        outputs: list[str] = []
        if status == JOB_SUCCEEDED:
            from pipelines.models import JobOutput

            outputs = list(
                session.scalars(
                    select(JobOutput.file_id).where(JobOutput.job_id == job_id).order_by(JobOutput.id)
                )
            )
        job_ended(
            session,
            run.id,
            str(job_id),
            status,
            outputs=outputs,
            cost=charged or 0,
            code=code,
            message=message,
        )


def _event(
    session: Session,
    run: WorkflowRun,
    kind: str,
    *,
    node: str | None = None,
    item: int | None = None,
    **data: Any,
) -> None:
    _append(session, run.id, run.tenant_id, kind, node, item, data, clock.now())


def _append(
    session: Session, run_id: str, tenant_id: str, kind: str, node: str | None, item: int | None,
    data: dict[str, Any], at: datetime,
) -> None:  # fmt: skip
    """Append one run event, and the webhook messages it makes, in the same transaction."""
    params = {
        "run_id": run_id, "tenant_id": tenant_id, "at": at, "kind": kind, "node": node, "item": item,
        "data": data,
    }  # fmt: skip
    if kind not in webhook_outbox.RUN_EVENTS:
        session.connection().execute(_EVENT, params)
        return
    seq = session.connection().execute(_EVENT.returning(WorkflowEvent.id), params).scalar_one()
    webhook_outbox.run_event(session, seq, run_id, tenant_id, kind, node, item, data, at)


# -- cancel and retry --------------------------------------------------------------------------


def get_run(session: Session, run_id: str) -> WorkflowRun:
    run = session.get(WorkflowRun, run_id) if isinstance(run_id, str) and run_id.startswith("run_") else None
    tenant = session.info.get("tenant_id")
    if run is None or (tenant is not None and run.tenant_id != tenant):
        raise NotFound("no such workflow run", code="workflow_run_not_found")
    return run


def cancel(session: Session, run_id: str) -> WorkflowRun:
    """Cancel a run: waiting steps never start, queued jobs are canceled and running ones
    stopped as `pipelines.services.cancel` does, and the run's hold is released at once
    (each job's own hold is released as its job ends). Canceling a canceled run changes
    nothing; a finished run answers 409."""
    get_run(session, run_id)
    run = _lock(session, run_id)
    assert run is not None
    if run.status == CANCELED:
        return run
    if run.status != RUNNING:
        raise Conflict(f"the run has already {run.status}", code="workflow_run_finished")
    now = clock.now()
    waiting = (
        session.connection()
        .execute(
            update(WorkflowStep)
            .where(WorkflowStep.run_id == run.id, WorkflowStep.status == WAITING)
            .values(status=CANCELED, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        .rowcount
    )
    in_flight = session.execute(
        select(WorkflowStep.job_id, Job.status)
        .join(Job, Job.id == WorkflowStep.job_id)
        .where(WorkflowStep.run_id == run.id, WorkflowStep.status.in_(IN_FLIGHT))
    ).all()
    _event(session, run, "cancel_requested", waiting=waiting, jobs=len(in_flight))
    # Running jobs first: asking them to stop takes no money lock, so a worker finishing
    # one of them meanwhile never waits on this transaction's account lock.
    for job_id, _ in sorted(in_flight, key=lambda row: row[1] != "running"):
        with contextlib.suppress(Conflict):  # it finished meanwhile and marked its step
            services.cancel(session, str(job_id))
    released = ledger.release(session, run.tenant_id, hold_key(run))
    run.status = CANCELED
    run.finished_at = now
    run.updated_at = now
    run.charged = int(
        session.scalar(
            select(func.coalesce(func.sum(WorkflowStep.cost), 0)).where(WorkflowStep.run_id == run.id)
        )
        or 0
    )
    _event(session, run, CANCELED, released=released.amount if released else 0)
    session.flush()
    return run


def retry(session: Session, run_id: str, policy: services.Policy) -> Started:
    """Run a failed run again from its failed steps: the same run, one attempt more.
    Succeeded and reused steps keep their outputs and are not charged again; failed,
    canceled and skipped steps wait again, under a fresh hold for their share of the quote
    (402 with nothing changed when short)."""
    get_run(session, run_id)
    run = _lock(session, run_id)
    assert run is not None
    if run.status != FAILED:
        raise Conflict("only a failed run can be retried", code="workflow_run_not_failed")
    refuse_if_restricted(session, run.tenant_id)
    limits = policy.tiers.limits(session, run.tenant_id)
    checked = graphs.parse(run.graph, policy=policy, limits=limits)
    bound = graphs.bind_inputs(session, run.tenant_id, checked, run.inputs)
    quote = graphs.quote(checked, bound, policy)
    again = Counter[str](
        dict(
            session.execute(
                select(WorkflowStep.node, func.count())
                .where(WorkflowStep.run_id == run.id, WorkflowStep.status.not_in(STEP_DONE))
                .group_by(WorkflowStep.node)
            ).all()
        )
    )
    amount = sum(quote.nodes[name].unit_price * n for name, n in again.items() if name in quote.nodes)
    run.attempt += 1
    ledger.hold(session, run.tenant_id, hold_key(run), amount)
    session.execute(
        update(WorkflowStep)
        .where(WorkflowStep.run_id == run.id, WorkflowStep.status.not_in(STEP_DONE))
        .values(
            status=WAITING, job_id=None, outputs=[], cost=0, error_code=None, error_message=None,
            started_at=None, finished_at=None, attempt=run.attempt,
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    now = clock.now()
    run.status = RUNNING
    run.quote = amount
    run.error_code = None
    run.finished_at = None
    run.updated_at = now
    _event(session, run, "retried", attempt=run.attempt, quote=amount, steps=dict(again))
    jobs = _advance_locked(session, run, checked, policy)
    return Started(run, jobs)


# -- the reconciler ----------------------------------------------------------------------------


def sweep(engine: Engine, now: datetime | None = None, *, grace: timedelta = SWEEP_GRACE) -> list[str]:
    """Advance running runs that something should have advanced and nothing did (the
    after-commit call lost with its process): a step ended after the run last moved, no
    step in flight at all, or a step whose job ended without marking it. Also releases
    run holds left open by runs that are over. Bounded per pass; each run is advanced in
    its own transaction, under its lock, so several schedulers may sweep at once."""
    now = now or clock.now()
    cutoff = now - grace
    with engine.sessions() as session:
        ended_since = (
            select(WorkflowStep.id)
            .where(
                WorkflowStep.run_id == WorkflowRun.id,
                WorkflowStep.finished_at.is_not(None),
                WorkflowStep.finished_at > WorkflowRun.updated_at,
            )
            .exists()
        )
        in_flight = (
            select(WorkflowStep.id)
            .where(WorkflowStep.run_id == WorkflowRun.id, WorkflowStep.status.in_(IN_FLIGHT))
            .exists()
        )
        unmarked = (
            select(WorkflowStep.id)
            .join(Job, Job.id == WorkflowStep.job_id)
            .where(
                WorkflowStep.run_id == WorkflowRun.id,
                WorkflowStep.status.in_(IN_FLIGHT),
                Job.status.in_(FINISHED),
            )
            .exists()
        )
        due = list(
            session.scalars(
                select(WorkflowRun.id)
                .where(
                    WorkflowRun.status == RUNNING,
                    WorkflowRun.updated_at < cutoff,
                    or_(ended_since, ~in_flight, unmarked),
                )
                .order_by(WorkflowRun.updated_at)
                .limit(SWEEP_BATCH)
            )
        )
        session.rollback()
    advanced = []
    for run_id in due:
        try:
            engine.advance(run_id, fold=True)
            advanced.append(run_id)
        except Exception:
            log.warning("run %s: could not advance it; next pass", run_id, exc_info=True)
    _release_stale_holds(engine.sessions)
    return advanced


def _release_stale_holds(sessions: sessionmaker[Session]) -> None:
    """A run's hold outlives it only if a crash came between; release such holds."""
    from quotas.models import Hold

    with sessions() as session:
        open_holds = session.execute(
            select(Hold.job_id, Hold.tenant_id)
            .where(Hold.status == "held", Hold.job_id.like("run\\_%", escape="\\"))
            .limit(SWEEP_BATCH)
        ).all()
        session.rollback()
    for key, tenant_id in open_holds:
        run_id = key.partition(".")[0]
        with lifecycle.unit_of_work(sessions) as uow:
            run = uow.session.get(WorkflowRun, run_id)
            if run is not None and run.status == RUNNING and hold_key(run) == key:
                continue
            ledger.release(uow.session, tenant_id, key)


# -- reading -----------------------------------------------------------------------------------


def _stamp(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def to_dict(session: Session, run: WorkflowRun, *, steps: bool = True) -> dict[str, Any]:
    """The run as the API shows it: its status and money, and each node's steps with their
    status, job, outputs, cost and timings (a queued step whose job has started shows as
    running)."""
    answer: dict[str, Any] = {
        "id": run.id,
        "object": "workflow_run",
        "workflow_id": run.workflow_id,
        "version": run.version,
        "status": run.status,
        "attempt": run.attempt,
        "reuse": run.reuse,
        "inputs": run.inputs,
        "cost": {"quoted": run.quote, "charged": run.charged},
        "error": {"code": run.error_code} if run.error_code else None,
        "created_at": _stamp(run.created_at),
        "started_at": _stamp(run.started_at),
        "finished_at": _stamp(run.finished_at),
        "urls": {
            "self": f"/v1/workflow-runs/{run.id}",
            "events": f"/v1/workflow-runs/{run.id}/events",
            "cancel": f"/v1/workflow-runs/{run.id}/cancel",
            "retry": f"/v1/workflow-runs/{run.id}/retry",
        },
    }
    if not steps:
        return answer
    rows = list(
        session.scalars(
            select(WorkflowStep)
            .where(WorkflowStep.run_id == run.id)
            .order_by(WorkflowStep.node, WorkflowStep.item)
        )
    )
    queued = [r.job_id for r in rows if r.status == QUEUED and r.job_id]
    jobs = (
        {
            job_id: (status, started)
            for job_id, status, started in session.execute(
                select(Job.id, Job.status, Job.started_at).where(Job.id.in_(queued))
            )
        }
        if queued
        else {}
    )
    nodes: dict[str, Any] = {
        name: {"status": WAITING, "steps": []} for name in (run.graph or {}).get("nodes", {})
    }
    for r in rows:
        status, started = r.status, r.started_at
        if r.status == QUEUED and r.job_id in jobs and jobs[r.job_id][0] == "running":
            status, started = STEP_RUNNING, jobs[r.job_id][1]
        node = nodes.setdefault(r.node, {"status": WAITING, "steps": []})
        node["steps"].append(
            {
                "item": r.item,
                "status": status,
                "attempt": r.attempt,
                "job_id": r.job_id,
                "outputs": list(r.outputs or []),
                "cost": r.cost,
                "error": {"code": r.error_code, "message": r.error_message} if r.error_code else None,
                "reused_from": r.reused_from,
                "started_at": _stamp(started),
                "finished_at": _stamp(r.finished_at),
            }
        )
    for node in nodes.values():
        node["status"] = _node_status([s["status"] for s in node["steps"]])
        node["items"] = len(node["steps"])
        node["cost"] = sum(s["cost"] for s in node["steps"])
    answer["nodes"] = nodes
    return answer


def _node_status(statuses: list[str]) -> str:
    """One word for a node from its items': the least advanced that matters."""
    if not statuses:
        return WAITING
    for status in (FAILED, CANCELED, SKIPPED, STEP_RUNNING, QUEUED, WAITING):
        if status in statuses:
            return status
    return REUSED if all(s == REUSED for s in statuses) else SUCCEEDED


def events(session: Session, run: WorkflowRun, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(WorkflowEvent)
        .where(WorkflowEvent.run_id == run.id, WorkflowEvent.id > after)
        .order_by(WorkflowEvent.id)
        .limit(limit)
    )
    return [
        {"id": e.id, "at": _stamp(e.at), "kind": e.kind, "node": e.node, "item": e.item, "data": e.data or {}}
        for e in rows
    ]


__all__ = [
    "STEP_ENDED",
    "Engine",
    "Started",
    "advance",
    "cancel",
    "events",
    "get_run",
    "hold_key",
    "job_ended",
    "policy_from",
    "retry",
    "start",
    "sweep",
    "to_dict",
]
