"""Every log line a job produces carries its job id, tenant and queue."""

from __future__ import annotations

import json
import logging

from faktry import logs
from pipelines import runner
from tests.web.helpers import upload, wait_for_job


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(logs.ContextFilter())

    def emit(self, record):
        self.records.append(record)


def test_job_log_lines_name_the_job_tenant_and_queue(client, tenant, clip_small, worker, runtime):
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        file_id = upload(client, tenant, clip_small).json["id"]
        body = {"type": "media.probe", "input": {"file_id": file_id}}
        job = client.post("/v1/jobs", json=body, headers=tenant.headers).json
        wait_for_job(client, tenant, job["id"])
        # A late second delivery, in a message's context, logs that there is nothing to do.
        with logs.job_context(job_id=job["id"], queue="local.small"):
            runner.run(runtime.context, job["id"])
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    mine = [r for r in handler.records if getattr(r, "job_id", None) == job["id"]]
    assert mine, [r.getMessage() for r in handler.records]
    assert all(getattr(r, "queue", None) == "local.small" for r in mine)
    assert any(getattr(r, "tenant_id", None) == tenant.id for r in mine)
    line = json.loads(logs.JsonFormatter().format([r for r in mine if hasattr(r, "tenant_id")][-1]))
    assert line["job_id"] == job["id"] and line["queue"] == "local.small" and line["tenant_id"] == tenant.id


def test_the_worker_middleware_sets_the_context_for_each_message(runtime):
    from dramatiq import Message

    from workers.middleware import JobLogContext

    middleware = JobLogContext()
    message = Message(queue_name="fal.large", actor_name="run_job", args=("job_abc",), kwargs={}, options={})
    middleware.before_process_message(runtime.broker, message)
    assert logs.current() == {"job_id": "job_abc", "queue": "fal.large"}
    middleware.after_process_message(runtime.broker, message)
    assert logs.current() == {}
