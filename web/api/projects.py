"""``/v1/projects``: a tenant's video projects; the timeline and workflow graph a project
renders with, its price, and its render, a workflow run (see pipelines/projects and
docs/projects.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import request

from faktry.errors import ValidationError
from pipelines import pagination
from pipelines.projects import compile, schema, store
from pipelines.workflows import graph
from quotas import ledger
from web import services
from web.api import blueprint
from web.api.workflow_runs import start_run, started_answer
from web.auth import authenticated, db, principal
from web.bodies import json_object


@blueprint.post("/projects")
@authenticated
def create_project() -> Any:
    sess = db()
    body = json_object(allowed=schema.FIELDS)
    project = store.create(
        sess, tenant_id=principal().tenant_id, body=body, catalog=services().policy.catalog
    )
    answer = store.to_dict(project)
    sess.commit()
    return answer, 201, {"Location": f"/v1/projects/{project.id}"}


@blueprint.get("/projects")
@authenticated
def list_projects() -> Any:
    sess = db()
    rows, next_cursor = store.list_projects(
        sess, cursor=request.args.get("cursor"), limit=pagination.parse_limit(request.args.get("limit"))
    )
    renders = store.renders(sess, rows)
    return {
        "object": "list",
        "data": [store.to_dict(p, renders[p.id]) for p in rows],
        "next_cursor": next_cursor,
    }


@blueprint.get("/projects/<project_id>")
@authenticated
def get_project(project_id: str) -> Any:
    sess = db()
    project = store.get(sess, project_id)
    return store.to_dict(project, store.renders(sess, [project])[project.id])


@blueprint.patch("/projects/<project_id>")
@authenticated
def update_project(project_id: str) -> Any:
    sess = db()
    project = store.get(sess, project_id)
    store.update(sess, project, json_object(allowed=schema.FIELDS), catalog=services().policy.catalog)
    answer = store.to_dict(project, store.renders(sess, [project])[project.id])
    sess.commit()
    return answer


@blueprint.delete("/projects/<project_id>")
@authenticated
def delete_project(project_id: str) -> Any:
    sess = db()
    store.delete(sess, store.get(sess, project_id))
    sess.commit()
    return "", 204


@blueprint.get("/projects/<project_id>/timeline")
@authenticated
def project_timeline(project_id: str) -> Any:
    """The graph a render would run now and the timeline its last step would play."""
    sess = db()
    project = store.get(sess, project_id)
    compiled = _compiled(sess, project)
    return {
        "object": "project_timeline",
        "project_id": project.id,
        "seconds": compiled.seconds,
        "file_ids": compiled.file_ids,
        "timeline": compiled.timeline,
        "graph": compiled.graph,
    }


@blueprint.post("/projects/<project_id>/quote")
@authenticated
def quote_project(project_id: str) -> Any:
    """The price of rendering the project now. Nothing is held."""
    sess = db()
    json_object(allowed=(), optional=True)
    project = store.get(sess, project_id)
    compiled = _compiled(sess, project)
    policy = services().policy
    tenant_id = principal().tenant_id
    with _named(compiled):
        parsed = graph.parse(compiled.graph, policy=policy, limits=policy.tiers.limits(sess, tenant_id))
        bound = graph.bind_inputs(sess, tenant_id, parsed, {})
    priced = graph.quote(parsed, bound, policy)
    funds = ledger.balance(sess, tenant_id)
    return {
        **priced.to_dict(),
        "object": "project_quote",
        "project_id": project.id,
        "seconds": compiled.seconds,
        "available": funds.available,
        "sufficient": funds.available >= priced.total and funds.debt == 0,
    }


@blueprint.post("/projects/<project_id>/render")
@authenticated
def render_project(project_id: str) -> Any:
    """Render the project: a workflow run of its compiled graph, started as any run is (the
    submit rate, moderation of every script and prompt, the whole quote held, an
    ``Idempotency-Key`` answering the run it started; an optional ``webhook`` for the run's
    events, as on ``POST /v1/workflow-runs``). ``202`` with the run."""
    sess = db()
    body = json_object(allowed=("reuse", "webhook"), optional=True)
    reuse = body.get("reuse", True)
    if not isinstance(reuse, bool):
        raise ValidationError("reuse must be true or false", field="reuse")
    project = store.get(sess, project_id)
    compiled = _compiled(sess, project)
    with _named(compiled):
        started = start_run(sess, {"reuse": reuse, "webhook": body.get("webhook")}, graph=compiled.graph)
    project.last_run_id = started.run.id
    return started_answer(sess, started)


def _compiled(sess: Any, project: Any) -> compile.Compiled:
    policy = services().policy
    return compile.compile_project(sess, project, catalog=policy.catalog, configured=policy.configured)


@contextmanager
def _named(compiled: compile.Compiled) -> Iterator[None]:
    """A refused graph names, as ``field``, the project field its first problem is about."""
    try:
        yield
    except graph.WorkflowInvalid as err:
        if err.problems:
            err.details["field"] = compile.project_field(err.problems[0], compiled)
        raise
