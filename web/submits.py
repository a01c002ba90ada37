"""The submits of one web process: their writes grouped into shared transactions
(`pipelines.groupcommit`), and what is done once a job is committed (`announce`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from flask import current_app

from pipelines import services as jobs
from pipelines.groupcommit import GroupCommit
from pipelines.models import Job
from web.errors import best_effort

if TYPE_CHECKING:
    from web import Services


@dataclass(frozen=True)
class Made:
    """What one submit's write made: the job (new or replayed) and the answer to give."""

    submitted: jobs.Submitted
    answer: dict[str, Any]


def submits() -> GroupCommit:
    """This app's group commit of single submits, made on first use and kept with the app."""
    extensions = current_app.extensions
    group = extensions.get("faktry.submits")
    if group is None:
        svc: Services = extensions["faktry"]
        settings = svc.settings

        def after_commit(made: list[Made]) -> None:
            announce_all([m.submitted.job for m in made if m.submitted.created], svc)

        group = extensions.setdefault(
            "faktry.submits",
            GroupCommit(
                svc.sessions,
                after_commit=after_commit,
                max_group=settings.submit_group_max,
                gather_seconds=settings.submit_gather_ms / 1000,
            ),
        )
    return cast(GroupCommit, group)


def announce(job: Job) -> None:
    """Count and dispatch a job that was just committed. Never raises: the job and its hold
    are in the database, so answering an error would invite a second submit. A job that
    could not be sent is sent by the scheduler's reconciler."""
    announce_all([job])


def announce_all(made: list[Job], svc: Services | None = None) -> None:
    if not made:
        return
    if svc is None:
        from web import services

        svc = services()
    with best_effort("%d job(s): not counted as created", len(made)):
        for job in made:
            svc.metrics.job_created(job.type)
    with best_effort("%d job(s): not sent; the reconciler will send them", len(made)):
        jobs.dispatch(svc.sender, made)
