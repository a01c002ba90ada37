"""A tenant's video projects: create, read, change, list and delete; and their last render.

A body is checked whole against the project schema (`schema.check`), its models against the
catalog and its files and brand against the caller's own before anything is kept:

- each scene's library file must be an image or a video of the caller's library (not a
  member of a multi-file output), and music's an audio file; another tenant's file answers
  ``422 file_not_found`` exactly like a file that does not exist, a file of the wrong kind
  ``422 wrong_file_kind``; both name the field (``scenes[1].media.file_id``);
- a model must be one the catalog offers for what it makes (``speech.synthesize`` for
  ``voice.model``, ``image.generate`` or ``video.generate`` for a scene's, by its ``kind``,
  ``music.generate`` for music's), else ``422 unknown_model`` naming the field;
- ``brand_id`` must be one of the caller's brands (``422 brand_not_found`` otherwise).

A change (`update`) replaces each field it sends, except ``style`` (and its ``caption``) and
``voice``, whose keys are merged into what the project has.

Functions take a session scoped to the caller's tenant (the edge's), may flush, never commit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import NotFound, ValidationError
from pipelines import pagination
from pipelines.brands.models import Brand
from pipelines.catalog import Catalog
from pipelines.models import Job
from pipelines.projects import schema
from pipelines.projects.models import Project
from pipelines.workflows.models import (
    FAILED,
    QUEUED,
    STEP_DONE,
    STEP_ENDED,
    STEP_RUNNING,
    SUCCEEDED,
    WorkflowRun,
    WorkflowStep,
)
from storage.models import File

#: The node of a project's graph that renders the video (`pipelines.projects.compile`).
RENDER_NODE = "render"

#: What a new project holds in each part, in its stored shape.
EMPTY: dict[str, Any] = {
    "description": "",
    "idea": "",
    "style": schema.normalized("style", {}),
    "format": schema.DEFAULT_FORMAT,
    "target_seconds": schema.DEFAULT_TARGET_SECONDS,
    "brand_id": None,
    "voice": schema.normalized("voice", {}),
    "music": None,
    "scenes": [],
}


def create(session: Session, *, tenant_id: str, body: dict[str, Any], catalog: Catalog) -> Project:
    """A new project from ``body`` (``name`` required; see the module's docstring for refusals)."""
    schema.check(body, creating=True)
    _check_references(session, tenant_id, body, catalog)
    now = clock.now()
    values = {**EMPTY, **{f: schema.normalized(f, v) for f, v in body.items()}}
    project = Project(tenant_id=tenant_id, created_at=now, updated_at=now, **values)
    session.add(project)
    session.flush()
    return project


def get(session: Session, project_id: str) -> Project:
    """The caller's project; another tenant's answers exactly as one that does not exist."""
    found = session.get(Project, project_id) if project_id.startswith("prj_") else None
    tenant = session.info.get("tenant_id")
    if found is None or (tenant is not None and found.tenant_id != tenant):
        raise NotFound("no such project", code="project_not_found")
    return found


def update(session: Session, project: Project, body: dict[str, Any], *, catalog: Catalog) -> Project:
    """The project with ``body``'s fields changed (nothing changes if the body is refused)."""
    schema.check(body, creating=False)
    _check_references(session, project.tenant_id, body, catalog)
    for field, value in body.items():
        if field == "style":
            current = project.style or EMPTY["style"]
            caption = {**current.get("caption", {}), **value.get("caption", {})}
            value = {**current, **value, "caption": caption}
        elif field == "voice":
            value = {**(project.voice or {}), **value}
        setattr(project, field, schema.normalized(field, value))
    if body:
        project.updated_at = clock.now()
    session.flush()
    return project


def delete(session: Session, project: Project) -> None:
    """Delete the project. Its renders stay: their runs and output files are the library's."""
    session.delete(project)
    session.flush()


def list_projects(session: Session, *, cursor: str | None, limit: int) -> tuple[list[Project], str | None]:
    """One page of the caller's projects, newest first."""
    return pagination.page(
        session, select(Project), created=Project.created_at, ident=Project.id, cursor=cursor, limit=limit
    )


# -- checks against the caller's library, brands and the catalog -------------------------------


def _check_references(session: Session, tenant_id: str, body: dict[str, Any], catalog: Catalog) -> None:
    _check_models(body, catalog)
    _check_files(session, tenant_id, body)
    brand_id = body.get("brand_id")
    if brand_id is not None:
        found = session.get(Brand, brand_id) if brand_id.startswith("brd_") else None
        if found is None or found.tenant_id != tenant_id:
            raise ValidationError("no such brand", field="brand_id", code="brand_not_found")


def models_named(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each model the body names: (field, model id, the job type it must serve)."""
    named: list[tuple[str, str, str]] = []
    voice = body.get("voice") or {}
    if voice.get("model") is not None:
        named.append(("voice.model", voice["model"], "speech.synthesize"))
    music = body.get("music") or {}
    if music.get("model") is not None:
        named.append(("music.model", music["model"], "music.generate"))
    for index, scene in enumerate(body.get("scenes", [])):
        media = scene.get("media") or {}
        if media.get("model") is not None:
            kind = media.get("kind", "image")
            named.append((f"scenes[{index}].media.model", media["model"], f"{kind}.generate"))
    return named


def _check_models(body: dict[str, Any], catalog: Catalog) -> None:
    for field, model_id, job_type in models_named(body):
        try:
            catalog.get(model_id, job_type)
        except ValidationError as err:
            raise ValidationError(
                err.message, field=field, code=err.code, details=dict(err.details)
            ) from None


def files_named(body: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each library file the body names: (field, file id, the kinds it may be)."""
    named: list[tuple[str, str, tuple[str, ...]]] = []
    for index, scene in enumerate(body.get("scenes", [])):
        media = scene.get("media") or {}
        if "file_id" in media:
            named.append((f"scenes[{index}].media.file_id", media["file_id"], schema.MEDIA_KINDS))
    music = body.get("music") or {}
    if "file_id" in music:
        named.append(("music.file_id", music["file_id"], ("audio",)))
    return named


def library_files(session: Session, tenant_id: str, ids: set[str]) -> dict[str, File]:
    """The tenant's own library files among ``ids`` (never a member of a multi-file output),
    whatever the session's scope: the ids came from the client."""
    if not ids:
        return {}
    rows = session.scalars(
        select(File).where(File.id.in_(sorted(ids)), File.tenant_id == tenant_id, File.root_id.is_(None))
    )
    return {row.id: row for row in rows}


def _check_files(session: Session, tenant_id: str, body: dict[str, Any]) -> None:
    named = files_named(body)
    found = library_files(session, tenant_id, {file_id for _, file_id, _ in named})
    for field, file_id, kinds in named:
        if file_id not in found:
            raise ValidationError("no such file", field=field, code="file_not_found")
        if found[file_id].kind not in kinds:
            raise ValidationError(
                f"this file is {found[file_id].kind}; {field} takes {' or '.join(kinds)}",
                field=field,
                code="wrong_file_kind",
            )


# -- the last render ---------------------------------------------------------------------------


def renders(session: Session, projects: list[Project]) -> dict[str, dict[str, Any] | None]:
    """Each project's last render, by project id (null when it has none): its run's id and
    status, its progress from 0 to 1, the video and subtitles it made once it has succeeded,
    and the first error of a failed run. Three queries for a whole page of projects."""
    run_ids = {p.last_run_id for p in projects if p.last_run_id}
    if not run_ids:
        return {p.id: None for p in projects}
    found = {r.id: r for r in session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(sorted(run_ids))))}
    steps: dict[str, list[WorkflowStep]] = {}
    for step in session.scalars(
        select(WorkflowStep).where(WorkflowStep.run_id.in_(sorted(found))).order_by(WorkflowStep.node)
    ):
        steps.setdefault(step.run_id, []).append(step)
    running = [
        s.job_id
        for of_run in steps.values()
        for s in of_run
        if s.job_id and s.status in (QUEUED, STEP_RUNNING)
    ]
    progress: dict[str, float] = {}
    if running:
        rows = session.execute(select(Job.id, Job.progress).where(Job.id.in_(running)))
        progress = {job_id: value for job_id, value in rows}
    answer: dict[str, dict[str, Any] | None] = {}
    for project in projects:
        run = found.get(project.last_run_id or "")
        answer[project.id] = None if run is None else _render(run, steps.get(run.id, []), progress)
    return answer


def _render(run: WorkflowRun, steps: list[WorkflowStep], progress: dict[str, float]) -> dict[str, Any]:
    counts = Counter(s.status for s in steps)
    ended = sum(counts[s] for s in STEP_ENDED)
    partial = sum(
        float(progress.get(s.job_id or "", 0.0) or 0.0) for s in steps if s.status not in STEP_ENDED
    )
    done = 1.0 if run.status == SUCCEEDED else (ended + partial) / len(steps) if steps else 0.0
    outputs: list[str] = []
    for step in steps:
        if step.node == RENDER_NODE and step.status in STEP_DONE:
            outputs = list(step.outputs or [])
    failed = next((s for s in steps if s.status == FAILED and s.error_code), None)
    error = None
    if failed is not None:
        error = {"code": failed.error_code, "message": failed.error_message, "node": failed.node}
    elif run.error_code:
        error = {"code": run.error_code, "message": None, "node": None}
    return {
        "run_id": run.id,
        "status": run.status,
        "progress": round(min(1.0, done), 4),
        "video_file_id": outputs[0] if outputs else None,
        "subtitles_file_id": outputs[1] if len(outputs) > 1 else None,
        "error": error,
    }


def to_dict(project: Project, render: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": project.id,
        "object": "project",
        "name": project.name,
        **{field: getattr(project, field) for field in EMPTY},
        "last_run_id": project.last_run_id,
        "render": render,
        "created_at": project.created_at.isoformat(),
        "updated_at": project.updated_at.isoformat(),
    }
