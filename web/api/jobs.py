"""``/v1/jobs``: submit, read, list and cancel jobs."""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.db import transaction
from faktry.errors import RateLimited
from faktry.tenancy import refuse_if_restricted
from pipelines import moderation, pagination
from pipelines import services as jobs
from pipelines.lifecycle import UnitOfWork
from pipelines.webhooks import endpoints as webhook_endpoints
from quotas.ratelimit import retry_after_header
from web import ratelimits, services
from web.api import blueprint
from web.auth import authenticated, db, principal, writes_in_groups
from web.bodies import json_object
from web.errors import without
from web.submits import Made, announce_all, written

#: What a job request may hold (``params`` and ``input`` are checked against the job type;
#: ``webhook`` is the job's own webhook, pipelines/webhooks).
JOB_FIELDS = ("type", "input", "params", "metadata", "webhook")


@blueprint.post("/jobs")
@authenticated
@ratelimits.counted_with_submit
@writes_in_groups
def submit_job() -> Any:
    """One job, written in the request's transaction, or, while another submit of this process
    is being written, in a transaction shared with the submits that arrive meanwhile
    (`web.submits`)."""
    svc = services()
    sess = db()
    _rate_limit(sess)
    body = json_object(allowed=JOB_FIELDS)
    hook = job_webhook(body.pop("webhook", None))
    _moderate(sess, body)
    tenant_id = principal().tenant_id
    idempotency_key = request.headers.get("Idempotency-Key")

    def write(session: Any) -> Made:
        submitted = jobs.submit(
            session, tenant_id=tenant_id, body=body, idempotency_key=idempotency_key, policy=svc.policy
        )
        job = submitted.job
        # The answer is built before the commit (a new job has no outputs): once the job and
        # its hold are committed the answer is a 202, whatever fails next.
        outputs = [] if submitted.created else jobs.outputs_of(session, job)
        if submitted.created and hook is not None:
            webhook_endpoints.attach(session, job.tenant_id, job.id, hook)
        return Made(submitted, jobs.to_dict(job, outputs))

    made = written(sess, tenant_id, write)
    return made.answer, 202, {"Location": f"/v1/jobs/{made.submitted.job.id}"}


def job_webhook(raw: Any, field: str = "webhook") -> dict[str, Any] | None:
    """The request's per-job ``webhook``, checked (None when there is none)."""
    return webhook_endpoints.parse_job_webhook(
        raw, allow_loopback=services().settings.webhook_allow_loopback, field=field
    )


@blueprint.post("/jobs/batch")
@authenticated
@ratelimits.counted_with_submit
def submit_batch() -> Any:
    """Up to 1,000 jobs in one request and one transaction: all of them, or none."""
    sess = db()
    body = json_object(allowed=("jobs", "webhook"))
    shared = job_webhook(body.pop("webhook", None))
    items = jobs.batch_items(body)  # the shape first: a malformed batch spends no rate
    # A job's own webhook, else the batch's: taken out before the jobs are checked.
    hooks = [
        job_webhook(item.pop("webhook", None), f"jobs[{i}].webhook") if isinstance(item, dict) else None
        for i, item in enumerate(items)
    ]
    _rate_limit(sess, cost=len(items))
    for item in items:
        if isinstance(item, dict):
            _moderate(sess, item)
    batch = jobs.submit_batch(
        sess,
        tenant_id=principal().tenant_id,
        body=body,
        idempotency_key=request.headers.get("Idempotency-Key"),
        policy=services().policy,
    )
    answer = {"object": "list", "data": [jobs.to_dict(job, []) for job in batch.jobs]}
    if not batch.created:  # a replay: the jobs as they stand now
        answer["data"] = [jobs.to_dict(job, jobs.outputs_of(sess, job)) for job in batch.jobs]
    if batch.created:
        for job, own in zip(batch.jobs, hooks, strict=True):
            chosen = own or shared
            if chosen is not None:
                webhook_endpoints.attach(sess, job.tenant_id, job.id, chosen)
    uow = UnitOfWork(sess)
    if batch.created:
        uow.after_commit(lambda: announce_all(batch.jobs))
    uow.commit()
    return answer, 202


def _moderate(sess: Any, body: Any) -> None:
    """Check prompts before anything is held, with no transaction open during the check."""
    texts = moderation.prompt_texts(body)
    if not texts:
        return
    sess.commit()
    svc = services()
    tenant_id = principal().tenant_id
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    model = params.get("model") if isinstance(params.get("model"), str) else None

    def record(verdict: moderation.Verdict, text: str) -> None:
        with transaction(svc.sessions) as own:
            endpoint = f"POST /v1/jobs {body.get('type')}"
            moderation.log_entry(
                own, tenant_id=tenant_id, verdict=verdict, prompt=text, endpoint=endpoint, model=model
            )

    moderation.screen(svc.moderator, texts, record=record)


def _rate_limit(sess: Any, cost: int = 1) -> None:
    """The tier's submit rate, shared by every web process through Redis (unchecked while
    Redis is away). A batch spends a token per job, at most a full bucket (a minute's
    worth), so a batch larger than the tier's rate waits for a full bucket, not forever."""
    who = principal()
    # A restricted account is refused before anything else: no rate spent, no prompt moderated.
    refuse_if_restricted(sess, who.tenant_id)
    limits = services().policy.tiers.limits(sess, who.tenant_id)
    wait = None
    cost = max(1, min(cost, limits.submits_per_minute))
    # Redis is a fast path here: the job and its hold go to the database and the reconciler
    # sends it once Redis is back, so a limit that cannot be checked lets the submit through.
    # With the call's own count against the API budget when the view left it for here.
    with without("redis", "tenant %s: submit rate not checked", who.tenant_id):
        wait = ratelimits.spend_with_submit(who.tenant_id, per_minute=limits.submits_per_minute, cost=cost)
    if wait is not None:
        raise RateLimited(
            f"the {limits.name} tier submits at most {limits.submits_per_minute} jobs a minute",
            retry_after=retry_after_header(wait),
        )


@blueprint.post("/jobs/quote")
@authenticated
def quote_job() -> Any:
    """The price of a job, without submitting it (same body as ``POST /v1/jobs``)."""
    body = json_object(allowed=JOB_FIELDS)
    return jobs.quote(db(), tenant_id=principal().tenant_id, body=body, policy=services().policy)


@blueprint.get("/jobs")
@authenticated
def list_jobs() -> Any:
    rows, next_cursor = jobs.list_jobs(
        db(),
        status=request.args.get("status"),
        cursor=request.args.get("cursor"),
        limit=pagination.parse_limit(request.args.get("limit")),
    )
    return {"object": "list", "data": [jobs.to_dict(j) for j in rows], "next_cursor": next_cursor}


@blueprint.get("/jobs/<job_id>")
@authenticated
def get_job(job_id: str) -> Any:
    sess = db()
    job = jobs.get_job(sess, job_id)
    body = jobs.to_dict(job, jobs.outputs_of(sess, job))
    admission = services().admission
    if job.status == "queued" and admission is not None:
        # Jobs the fair order hands out before this one; 0 once admitted to the workers' queue;
        # unknown (null) while Redis is away.
        with without("redis", "job %s: queue position unknown", job.id):
            body["queue_position"] = admission.position(job.queue, job.tenant_id, job.id) or 0
    return body


@blueprint.get("/jobs/<job_id>/events")
@authenticated
def job_events(job_id: str) -> Any:
    sess = db()
    job = jobs.get_job(sess, job_id)
    events = [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "kind": e.kind,
            "status": e.status,
            "attempt": e.attempt,
            "data": e.data,
        }
        for e in jobs.events_of(sess, job)
    ]
    return {"object": "list", "data": events}


@blueprint.post("/jobs/<job_id>/cancel")
@authenticated
def cancel_job(job_id: str) -> Any:
    sess = db()
    job = jobs.cancel(sess, job_id)
    body = jobs.to_dict(job, jobs.outputs_of(sess, job))  # read before the commit, like a submit
    svc = services()
    uow = UnitOfWork(sess)
    if job.status == "canceled" and job.started_at is None:
        uow.after_commit(lambda: svc.metrics.job_finished(job.type, "canceled", None))
    if job.status == "canceled":
        # Attempts that died may have left files: a canceled job keeps none.
        uow.after_commit(lambda: svc.storage.delete_prefix(f"t/{job.tenant_id}/jobs/{job.id}/"))
    if job.status in ("running", "queued") and job.provider_request_id:
        # It has a request at a provider and no worker on it: a message now makes a worker
        # cancel it there instead of at its next poll or retry.
        uow.after_commit(lambda: svc.sender.send(job.queue, job.id))
    uow.commit()  # each hook is best effort: the cancel is committed, the answer is a 202
    return body, 202
