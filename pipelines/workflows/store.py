"""Saved workflows: a tenant's named graphs, each with its versions.

A saved graph is checked exactly as a run would check it (`graph.parse`) before it is kept, so
a saved workflow always parsed when it was saved. Versions are immutable: a change appends a
new version and makes it the current one; runs name the version they ran. Deleting a
workflow deletes it and its versions; its runs keep their own snapshot of the graph and stay
in the history until the account is deleted.

Functions take a session scoped to the caller's tenant (the edge's), may flush, never commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import Conflict, NotFound, ValidationError
from pipelines import pagination
from pipelines.services import Policy
from pipelines.workflows import graph
from pipelines.workflows.models import Workflow, WorkflowVersion
from quotas.limits import TierLimits

MAX_NAME = 100
MAX_DESCRIPTION = 2000


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or not value.isprintable():
        raise ValidationError(f"name must be 1 to {MAX_NAME} printable characters", field="name")
    return value.strip()


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or "\x00" in value:
        raise ValidationError(
            f"description must be text of at most {MAX_DESCRIPTION} characters", field="description"
        )
    return value


def create(
    session: Session, *, tenant_id: str, body: dict[str, Any], policy: Policy, limits: TierLimits | None
) -> tuple[Workflow, WorkflowVersion]:
    """A new workflow at version 1. Refused with 422 (`invalid_workflow` listing every problem of
    the graph) or 409 ``workflow_name_taken``, having kept nothing."""
    name = _name(body.get("name"))
    description = _description(body.get("description"))
    raw = body.get("graph")
    graph.parse(raw, policy=policy, limits=limits)
    now = clock.now()
    workflow = Workflow(
        tenant_id=tenant_id, name=name, description=description, version=1, created_at=now, updated_at=now
    )
    try:
        with session.begin_nested():
            session.add(workflow)
            session.flush()
    except IntegrityError:
        raise Conflict(f"you already have a workflow named {name!r}", code="workflow_name_taken") from None
    version = WorkflowVersion(
        workflow_id=workflow.id, tenant_id=tenant_id, version=1, graph=raw, created_at=now
    )
    session.add(version)
    session.flush()
    return workflow, version


def get(session: Session, workflow_id: str) -> Workflow:
    """The caller's workflow; another tenant's answers exactly as one that does not exist."""
    found = session.get(Workflow, workflow_id) if workflow_id.startswith("wfl_") else None
    tenant = session.info.get("tenant_id")
    if found is None or (tenant is not None and found.tenant_id != tenant):
        raise NotFound("no such workflow", code="workflow_not_found")
    return found


def versions(session: Session, workflow: Workflow) -> list[WorkflowVersion]:
    """Every version of the workflow, newest first."""
    stmt = (
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.tenant_id == workflow.tenant_id)
        .order_by(WorkflowVersion.version.desc())
    )
    return list(session.scalars(stmt))


def version(session: Session, workflow: Workflow, number: Any = None) -> WorkflowVersion:
    """One version of the workflow (the current one by default), or 404 ``version_not_found``."""
    if number is None:
        number = workflow.version
    # Beyond the column's 32 bits no version exists (and PostgreSQL would refuse to compare).
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 2**31 - 1:
        raise ValidationError("version must be a whole number from 1", field="version")
    found = session.scalars(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id,
            WorkflowVersion.tenant_id == workflow.tenant_id,
            WorkflowVersion.version == number,
        )
    ).first()
    if found is None:
        raise NotFound(f"the workflow has no version {number}", code="version_not_found")
    return found


def add_version(
    session: Session, workflow: Workflow, *, body: dict[str, Any], policy: Policy, limits: TierLimits | None
) -> WorkflowVersion:
    """A new version with the body's graph (and description, when given), made current. Two
    concurrent changes cannot both take the same number: the loser gets 409
    ``version_conflict`` and may send again."""
    raw = body.get("graph")
    graph.parse(raw, policy=policy, limits=limits)
    number = workflow.version + 1
    now = clock.now()
    made = WorkflowVersion(
        workflow_id=workflow.id, tenant_id=workflow.tenant_id, version=number, graph=raw, created_at=now
    )
    try:
        with session.begin_nested():
            session.add(made)
            session.flush()
    except IntegrityError:
        raise Conflict("the workflow changed meanwhile; send again", code="version_conflict") from None
    workflow.version = number
    workflow.updated_at = now
    if "description" in body:
        workflow.description = _description(body.get("description"))
    session.flush()
    return made


def delete_workflow(session: Session, workflow: Workflow) -> None:
    """The workflow and its versions; its runs stay, with their own copy of what they ran."""
    session.execute(
        delete(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.tenant_id == workflow.tenant_id
        )
    )
    session.delete(workflow)
    session.flush()


def list_workflows(session: Session, *, cursor: str | None, limit: int) -> tuple[list[Workflow], str | None]:
    return pagination.page(
        session, select(Workflow), created=Workflow.created_at, ident=Workflow.id, cursor=cursor, limit=limit
    )


def to_dict(
    workflow: Workflow,
    current: WorkflowVersion | None = None,
    all_versions: list[WorkflowVersion] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": workflow.id,
        "object": "workflow",
        "name": workflow.name,
        "description": workflow.description or "",
        "version": workflow.version,
        "created_at": workflow.created_at.isoformat(),
        "updated_at": workflow.updated_at.isoformat(),
    }
    if current is not None:
        body["graph"] = current.graph
    if all_versions is not None:
        body["versions"] = [version_dict(v) for v in all_versions]
    return body


def version_dict(item: WorkflowVersion) -> dict[str, Any]:
    return {"version": item.version, "created_at": item.created_at.isoformat()}
