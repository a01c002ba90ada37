"""``/v1/jobs/{id}/events/stream`` and ``/v1/events/stream``: job and workflow events as
server-sent events (web/streams.py), resumable with ``Last-Event-ID``."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from faktry.errors import TransientError
from pipelines import services as jobs
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.streams import Cursor, Opening, Stream, hub_for, parse_cursor

#: What a client refused for a full process waits before trying again (another process,
#: behind the load balancer, may have room).
FULL_RETRY_AFTER_SECONDS = 5


class TooManyStreams(TransientError):
    code = "too_many_streams"

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"this server holds {capacity} event streams already; try again shortly",
            details={"retry_after": FULL_RETRY_AFTER_SECONDS},
        )
        self.headers = {"Retry-After": str(FULL_RETRY_AFTER_SECONDS)}


@blueprint.get("/jobs/<job_id>/events/stream")
@authenticated
def job_event_stream(job_id: str) -> Any:
    """The job's events, from its first (or from ``Last-Event-ID``), then as they happen."""
    job = jobs.get_job(db(), job_id)
    return _open(job.id, Cursor())


@blueprint.get("/events/stream")
@authenticated
def event_stream() -> Any:
    """Every event of the tenant's jobs and workflow runs from now (or from ``Last-Event-ID``)."""
    return _open(None, None)


def _open(job_id: str | None, start: Cursor | None) -> Response:
    svc = services()
    hub = hub_for(current_app.extensions, svc.sessions, svc.settings)
    if hub.full():
        raise TooManyStreams(hub.capacity)
    # Browsers send the header when they reconnect; a page that falls back to polling and
    # comes back passes the id it saw as ``last_event_id``.
    sent = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if sent:
        field = "Last-Event-ID" if request.headers.get("Last-Event-ID") else "last_event_id"
        cursor = parse_cursor(sent, field_name=field)
    else:
        cursor = start if start is not None else hub.horizon()
    opening = Opening(hub, Stream(principal().tenant_id, job_id, cursor), svc.settings.stream_retry_ms)
    request.environ["faktry.stream"] = opening
    return Response(
        opening.body(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
