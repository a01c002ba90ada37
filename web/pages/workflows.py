"""Pages for workflows: the list of saved workflows, the graph editor, and a run drawn live.

As with every page here, the server renders a shell and decides only who may see it: a
workflow or run of another tenant is a 404 page, exactly like one that does not exist (the
lookups are the API's own, under the person's tenant). Everything else (the job schemas, the
quote, saving, running, the run's state) the page's script takes from the ``/v1`` API.

The one thing the run page gets from here rather than the API is the graph the run ran (its
snapshot, which ``GET /v1/workflow-runs/{id}`` does not repeat): it is put in the page as
JSON data, which the Content-Security-Policy lets no browser execute.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from faktry.errors import NotFound
from pipelines.workflows import runs, store
from pipelines.workflows.models import Workflow
from web.auth import db
from web.pages import blueprint, person, render


def _not_found(what: str) -> Any:
    return render("error.html", title="Not found", message=f"There is no such {what}."), 404


def _data(value: Any) -> str:
    """JSON to sit inside <script type="application/json">: no "<" can close the element."""
    return json.dumps(value).replace("<", "\\u003c")


@blueprint.get("/workflows")
@person
def workflows_list() -> Any:
    return render("workflows.html", title="Workflows", active="workflows")


@blueprint.get("/workflows/new")
@person
def workflow_new() -> Any:
    return render(
        "workflows_editor.html",
        title="New workflow",
        active="workflows",
        workflow_id="",
        version="",
        template_id=request.args.get("template", ""),
    )


@blueprint.get("/workflows/<workflow_id>")
@person
def workflow_edit(workflow_id: str) -> Any:
    try:
        workflow = store.get(db(), workflow_id)
    except NotFound:
        return _not_found("workflow")
    # An older version opens in the editor (to read, run or save as the newest); the API
    # answers an unknown version itself.
    version = request.args.get("version", "")
    return render(
        "workflows_editor.html",
        title=f"Workflow {workflow.name}",
        active="workflows",
        workflow_id=workflow.id,
        version=version if version.isascii() and version.isdigit() else "",
        template_id="",
    )


@blueprint.get("/workflow-runs/<run_id>")
@person
def workflow_run(run_id: str) -> Any:
    sess = db()
    try:
        run = runs.get_run(sess, run_id)
    except NotFound:
        return _not_found("workflow run")
    workflow = sess.get(Workflow, run.workflow_id) if run.workflow_id else None
    return render(
        "workflow_run.html",
        title=f"Run {run.id}",
        active="workflows",
        run_id=run.id,
        workflow=workflow,
        deleted=run.version if run.workflow_id and workflow is None else None,
        graph=_data(run.graph or {}),
    )
