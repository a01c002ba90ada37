"""Workflow runs: start one (of a saved workflow, or of an inline graph), read it and its
events, list a workflow's runs, cancel, retry. The engine is pipelines/workflows/runs.py."""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.errors import ValidationError
from pipelines import pagination
from pipelines.lifecycle import UnitOfWork
from pipelines.webhooks import endpoints as webhook_endpoints
from pipelines.workflows import runs, store
from pipelines.workflows.models import WorkflowRun
from web import services
from web.api import blueprint, requested_page
from web.api.jobs import _moderate, _rate_limit, announce_all, job_webhook
from web.auth import authenticated, db, principal
from web.bodies import json_object


@blueprint.post("/workflows/<workflow_id>/runs")
@authenticated
def run_workflow(workflow_id: str) -> Any:
    """Run a saved workflow (its current version, or ``version``) on ``inputs``."""
    sess = db()
    workflow = store.get(sess, workflow_id)
    body = json_object(allowed=("inputs", "version", "reuse", "webhook"))
    saved = store.version(sess, workflow, body.get("version"))
    return _start(sess, body, graph=saved.graph, workflow_id=workflow.id, version=saved.version)


@blueprint.post("/workflow-runs")
@authenticated
def run_inline() -> Any:
    """Run a graph sent with the request (nothing is saved but the run's own snapshot)."""
    sess = db()
    body = json_object(allowed=("graph", "inputs", "reuse", "webhook"))
    if "graph" not in body:
        raise ValidationError("graph is required", field="graph")
    return _start(sess, body, graph=body["graph"])


def _start(sess: Any, body: dict[str, Any], *, graph: Any, **saved: Any) -> Any:
    return started_answer(sess, start_run(sess, body, graph=graph, **saved))


def start_run(sess: Any, body: dict[str, Any], *, graph: Any, **saved: Any) -> runs.Started:
    """Start a run of ``graph`` for the caller, as every way of starting one does: one submit
    of the tier's submit rate, every node's prompts past moderation, then `runs.start` (the
    request's ``Idempotency-Key`` answering the run it started). The run is left for the
    caller to commit (`started_answer`). A ``webhook`` in the body is the run's own
    (pipelines/webhooks), attached when the run is new."""
    hook = job_webhook(body.get("webhook"))
    # A run is one submit for the tier's submit rate, whatever its number of jobs.
    _rate_limit(sess)
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    for spec in nodes.values() if isinstance(nodes, dict) else ():
        if isinstance(spec, dict):
            _moderate(sess, {k: spec.get(k) for k in ("type", "input", "params")})
    started = runs.start(
        sess,
        tenant_id=principal().tenant_id,
        graph=graph,
        inputs=body.get("inputs", {}),
        policy=services().policy,
        reuse=body.get("reuse", False),
        idempotency_key=request.headers.get("Idempotency-Key"),
        **saved,
    )
    if started.created and hook is not None:
        webhook_endpoints.attach(sess, started.run.tenant_id, started.run.id, hook)
    return started


def started_answer(sess: Any, started: runs.Started) -> Any:
    """Commit the started run and answer ``202`` with it; its first jobs are sent after the
    commit."""
    answer = runs.to_dict(sess, started.run)
    uow = UnitOfWork(sess)
    if started.jobs:
        made = started.jobs
        uow.after_commit(lambda: announce_all(made))
    uow.commit()
    return answer, 202, {"Location": f"/v1/workflow-runs/{started.run.id}"}


@blueprint.get("/workflow-runs/<run_id>")
@authenticated
def get_run(run_id: str) -> Any:
    sess = db()
    return runs.to_dict(sess, runs.get_run(sess, run_id))


@blueprint.get("/workflow-runs/<run_id>/events")
@authenticated
def run_events(run_id: str) -> Any:
    """The run's events in order; ``after`` (an event id) and ``limit`` page through them."""
    sess = db()
    run = runs.get_run(sess, run_id)
    after = request.args.get("after")
    if after is not None and (not after.isascii() or not after.isdigit() or len(after) > 18):
        raise ValidationError("after must be an event id", field="after")
    limit = pagination.parse_limit(request.args.get("limit"), default=100)
    data = runs.events(sess, run, after=int(after or 0), limit=limit)
    return {
        "object": "list",
        "data": data,
        "next_after": data[-1]["id"] if len(data) == limit else None,
    }


@blueprint.get("/workflows/<workflow_id>/runs")
@authenticated
def list_runs(workflow_id: str) -> Any:
    """A workflow's runs, newest first, paged like jobs (``cursor``, ``limit``)."""
    sess = db()
    workflow = store.get(sess, workflow_id)
    rows, next_cursor = requested_page(
        sess,
        _runs_of(workflow.id),
        created=WorkflowRun.created_at,
        ident=WorkflowRun.id,
    )
    return {
        "object": "list",
        "data": [runs.to_dict(sess, run, steps=False) for run in rows],
        "next_cursor": next_cursor,
    }


def _runs_of(workflow_id: str) -> Any:
    from sqlalchemy import select

    return select(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id)


@blueprint.post("/workflow-runs/<run_id>/cancel")
@authenticated
def cancel_run(run_id: str) -> Any:
    sess = db()
    json_object(allowed=(), optional=True)
    run = runs.cancel(sess, run_id)
    answer = runs.to_dict(sess, run)
    sess.commit()
    return answer


@blueprint.post("/workflow-runs/<run_id>/retry")
@authenticated
def retry_run(run_id: str) -> Any:
    """Run a failed run again from its failed steps, under a new hold for what reruns."""
    sess = db()
    json_object(allowed=(), optional=True)
    started = runs.retry(sess, run_id, services().policy)
    answer = runs.to_dict(sess, started.run)
    uow = UnitOfWork(sess)
    if started.jobs:
        made = started.jobs
        uow.after_commit(lambda: announce_all(made))
    uow.commit()
    return answer, 202
