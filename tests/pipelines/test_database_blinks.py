"""A database connection dropped while a worker claims or records a job is a transient
error like any other: the job still runs to its end, once, with one charge."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, event, select, text

from faktry.db import transaction
from pipelines.models import Job, JobOutput
from quotas.models import Hold
from tests.web.helpers import upload, wait_for_job


class DropOnce:
    """Terminates the server side of the connection that is about to run the first
    statement ``match`` picks, as a failover or ``pg_terminate_backend`` would."""

    def __init__(self, engine, url: str, match) -> None:
        self.engine = engine
        self.match = match
        self.admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        self.fired = threading.Event()
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if self.fired.is_set() or not self.match(statement, parameters):
            return
        self.fired.set()
        pid = conn.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        self.admin.dispose()


@pytest.fixture
def postgres_only(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("terminating a server connection needs PostgreSQL")
    return db_url


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(lambda sql, params: "jobs.attempts +" in sql, id="claim"),
        pytest.param(
            lambda sql, params: sql.startswith("UPDATE jobs") and (params or {}).get("status") == "succeeded",
            id="record-success",
        ),
    ],
)
def test_a_dropped_connection_while_claiming_or_recording_does_not_strand_the_job(
    postgres_only, client, make_tenant, png_image, runtime, worker, statement
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    engine = runtime.context.sessions.kw["bind"]
    fault = DropOnce(engine, postgres_only, statement)
    try:
        body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
        job_id = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
        done = wait_for_job(client, tenant, job_id, timeout=60)
    finally:
        fault.close()
    assert fault.fired.is_set(), "the fault never happened"
    assert done["status"] == "succeeded", done
    assert len(done["outputs"]) == 1
    assert done["cost"]["charged"] == done["cost"]["estimated"]
    with transaction(runtime.context.sessions) as s:
        assert len(s.scalars(select(JobOutput).where(JobOutput.job_id == job_id)).all()) == 1
        hold = s.scalars(select(Hold).where(Hold.job_id == job_id)).one()
        assert hold.status == "captured"
        assert s.get(Job, job_id).status == "succeeded"
