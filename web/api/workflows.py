"""``/v1/workflows``: save, list, read, version and delete workflow graphs; price a graph for
given inputs; the ready-made templates. (Runs are in web/api/workflow_runs.py.)"""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.errors import ValidationError
from pipelines import pagination
from pipelines.workflows import graph, store, templates
from quotas import ledger
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.bodies import json_object


def _limits(sess: Any) -> Any:
    return services().policy.tiers.limits(sess, principal().tenant_id)


@blueprint.post("/workflows")
@authenticated
def create_workflow() -> Any:
    sess = db()
    body = json_object(allowed=("name", "description", "graph"))
    workflow, version = store.create(
        sess, tenant_id=principal().tenant_id, body=body, policy=services().policy, limits=_limits(sess)
    )
    answer = store.to_dict(workflow, version, [version])
    sess.commit()
    return answer, 201, {"Location": f"/v1/workflows/{workflow.id}"}


@blueprint.get("/workflows")
@authenticated
def list_workflows() -> Any:
    rows, next_cursor = store.list_workflows(
        db(), cursor=request.args.get("cursor"), limit=pagination.parse_limit(request.args.get("limit"))
    )
    return {"object": "list", "data": [store.to_dict(w) for w in rows], "next_cursor": next_cursor}


@blueprint.get("/workflows/<workflow_id>")
@authenticated
def get_workflow(workflow_id: str) -> Any:
    sess = db()
    workflow = store.get(sess, workflow_id)
    number = _version_arg(request.args.get("version"))
    return store.to_dict(workflow, store.version(sess, workflow, number), store.versions(sess, workflow))


def _version_arg(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise ValidationError("version must be a whole number from 1", field="version")
    return int(raw)


@blueprint.post("/workflows/<workflow_id>/versions")
@authenticated
def add_workflow_version(workflow_id: str) -> Any:
    sess = db()
    workflow = store.get(sess, workflow_id)
    body = json_object(allowed=("graph", "description"))
    made = store.add_version(sess, workflow, body=body, policy=services().policy, limits=_limits(sess))
    answer = store.to_dict(workflow, made, store.versions(sess, workflow))
    sess.commit()
    return answer, 201, {"Location": f"/v1/workflows/{workflow.id}?version={made.version}"}


@blueprint.delete("/workflows/<workflow_id>")
@authenticated
def delete_workflow(workflow_id: str) -> Any:
    sess = db()
    store.delete_workflow(sess, store.get(sess, workflow_id))
    sess.commit()
    return "", 204


@blueprint.post("/workflows/quote")
@authenticated
def quote_workflow() -> Any:
    """The price of a run: of an inline ``graph``, or of a saved workflow (its current
    version, or ``version``), for the given ``inputs``. Nothing is held."""
    sess = db()
    body = json_object(allowed=("graph", "workflow_id", "version", "inputs"))
    if ("graph" in body) == ("workflow_id" in body):
        raise ValidationError("send either graph or workflow_id", field="graph")
    if "graph" in body and "version" in body:
        raise ValidationError("version goes with workflow_id", field="version")
    raw = body.get("graph")
    if "workflow_id" in body:
        workflow_id = body["workflow_id"]
        if not isinstance(workflow_id, str):
            raise ValidationError("workflow_id must be a workflow's id", field="workflow_id")
        raw = store.version(sess, store.get(sess, workflow_id), body.get("version")).graph
    policy = services().policy
    tenant_id = principal().tenant_id
    parsed = graph.parse(raw, policy=policy, limits=_limits(sess))
    bound = graph.bind_inputs(sess, tenant_id, parsed, body.get("inputs", {}))
    priced = graph.quote(parsed, bound, policy)
    funds = ledger.balance(sess, tenant_id)
    return {
        **priced.to_dict(),
        "available": funds.available,
        "sufficient": funds.available >= priced.total and funds.debt == 0,
    }


@blueprint.get("/workflow-templates")
@authenticated
def list_workflow_templates() -> Any:
    return {
        "object": "list",
        "data": [{"object": "workflow_template", **t} for t in templates.all_templates()],
    }
