"""The submits of one web process: their writes, alone or grouped into shared transactions
(`pipelines.groupcommit`), and what is done once a job is committed (`announce`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from flask import current_app, g
from sqlalchemy.orm import Session

from faktry.db import READ_ONLY
from pipelines import services as jobs
from pipelines.groupcommit import GroupCommit
from pipelines.lifecycle import UnitOfWork
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


def alone_or_grouped() -> bool:
    """Whether this request writes alone (True: nothing else is being written in this
    process) or joins a group. Decided once, when the request's session is made."""
    alone = submits().claim_alone()
    g.faktry_writes_alone = alone
    return alone


def release() -> None:
    """The end of a request that wrote alone (a teardown: after its commit or rollback)."""
    if g.pop("faktry_writes_alone", False):
        submits().release_alone()


def written(session: Session, tenant_id: str, write: Callable[[Session], Made]) -> Made:
    """A submit's writes, done: in the request's own transaction when it writes alone, else in
    the next group. Either way the job is sent once it is committed."""
    if session.info.get(READ_ONLY):
        session.commit()  # this request's reads end here: its writes go with the group's
        return submits().run(tenant_id, write)
    made = write(session)
    uow = UnitOfWork(session)
    if made.submitted.created:
        uow.after_commit(lambda: announce(made.submitted.job))
    uow.commit()
    return made


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
