"""The front door when PostgreSQL or Redis goes away, with real servers and real faults.

A dependency that is down answers ``503 service_unavailable`` with ``Retry-After``, in the
one error shape, never a 500. A job whose commit went through is answered ``202`` whatever
fails after the commit, so a client never retries a job it has already paid for; with the
same ``Idempotency-Key`` a retry gets the same job and never a second hold. Redis is a fast
path: submits, reads and cancels go on while it is away; log-in and sign-up throttling
does not fail open, so those answer 503.

The faults are real: a PostgreSQL database made for the test that stops taking connections
and has its open ones terminated, and a private redis-server that is killed.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, abort
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session
from werkzeug.exceptions import InternalServerError, ServiceUnavailable

from faktry import migrate
from faktry.errors import TransientError
from faktry.tenancy import ApiKey, create_api_key, create_tenant
from pipelines.models import Job
from quotas import ledger
from quotas.models import MILLI, Hold
from tests import services as svc
from tests.conftest import TenantHandle, make_settings

PROMPT_JOB = {
    "type": "image.generate",
    "input": {"prompt": "a lighthouse"},
    "params": {"model": "gpt-image-1"},
}
PASSWORD = "correct horse battery"


class Database:
    """A PostgreSQL database of this test alone, which can go down and come back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = url.rsplit("/", 1)[1]
        self._admin = create_engine(svc.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def go_down(self) -> None:
        """Refuse new connections and end every open one, as a crash or a failover does."""
        with self._admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            # The timeout makes the call wait until each backend has exited.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.name},
            )

    def come_back(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))

    def close(self) -> None:
        self.come_back()
        self._admin.dispose()


@pytest.fixture
def database() -> Iterator[Database]:
    with svc.postgres_database() as url:
        migrate.upgrade(url)
        db = Database(url)
        try:
            yield db
        finally:
            db.close()


class PrivateRedis:
    """A redis-server of this test alone, on its own port, that can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            svc.missing("redis-server")
        self.executable = str(executable)
        self.directory = directory
        self.port = svc.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory)]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def freeze(self, *, at_most: float) -> None:
        """Stop the server without closing its port: connections open, nothing answers.
        It answers again after ``at_most`` seconds, so a request that waits forever makes
        the test fail instead of hang."""
        process = self.process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        thaw = threading.Timer(at_most, process.send_signal, [signal.SIGCONT])
        thaw.daemon = True
        thaw.start()

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def build_app(tmp_path: Path, db_url: str, *, redis_url: str = svc.REDIS_URL, namespace: str = "") -> Flask:
    from web import create_app

    namespace = namespace or f"faktry-test-{svc.RUN_ID}-dep-{uuid.uuid4().hex[:6]}"
    app = create_app(make_settings(tmp_path, db_url, namespace, redis_url=redis_url))
    # Answer as production does: every error goes through the handlers, none up to the test.
    app.testing = False
    return app


def make_tenant(db_url: str, *, staff: bool = False) -> TenantHandle:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    with svc.db_session(db_url) as session:
        tenant, user = create_tenant(
            session, email=email, tier="studio", is_staff=staff, password=PASSWORD, bcrypt_rounds=4
        )
        _, plain = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
        ledger.add_credits(session, tenant.id, 100 * MILLI, source="grant", key=f"test:{tenant.id}")
    return TenantHandle(tenant.id, user.id, email, plain)


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json["error"]
    assert error["code"] == "service_unavailable" and error["message"]
    assert set(response.json) == {"error"}


def holds_of(db_url: str, tenant_id: str) -> tuple[int, int, int]:
    """(jobs, hold rows, millicredits held) of the tenant, read straight from the database."""
    with svc.db_session(db_url) as session:
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id))
        holds = session.scalar(select(func.count()).select_from(Hold).where(Hold.tenant_id == tenant_id))
        return int(jobs or 0), int(holds or 0), ledger.balance(session, tenant_id).held


# -- the database goes away -------------------------------------------------------------


def test_a_database_server_nobody_answers_is_a_503_with_retry_after(tmp_path, redis_namespace):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{svc.free_port()}/faktry"
    client = build_app(tmp_path, url, namespace=redis_namespace).test_client()
    key = {"Authorization": "Bearer fk_live_" + "a" * 40}
    assert_unavailable(client.get("/v1/jobs", headers=key))
    assert_unavailable(client.post("/v1/jobs", json=PROMPT_JOB, headers=key))
    assert_unavailable(client.post("/v1/session", json={"email": "a@example.com", "password": PASSWORD}))


def test_a_database_that_goes_down_answers_503_on_the_api_and_on_pages_then_recovers(
    tmp_path, redis_namespace, database
):
    app = build_app(tmp_path, database.url, namespace=redis_namespace)
    client = app.test_client()
    tenant = make_tenant(database.url)
    login = client.post("/v1/session", json={"email": tenant.email, "password": PASSWORD})
    assert login.status_code == 201
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200

    database.go_down()
    assert_unavailable(client.get("/v1/jobs", headers=tenant.headers))
    assert_unavailable(client.post("/v1/jobs", json=PROMPT_JOB, headers=tenant.headers))
    page = client.get("/jobs/new", headers={"Accept": "text/html"})
    assert page.status_code == 503 and int(page.headers["Retry-After"]) >= 1
    assert page.mimetype == "text/html"

    database.come_back()
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200


def test_a_write_that_fails_as_the_request_ends_is_a_503_not_a_werkzeug_500(
    tmp_path, redis_namespace, database
):
    """A write the request commits (here a new key, with the key's last-used stamp) as the
    response is made; the database dying right then is still a 503 in the one shape. (A
    request that only reads writes its stamp in a transaction of its own.)"""
    app = build_app(tmp_path, database.url, namespace=redis_namespace)
    tenant = make_tenant(database.url)

    def note_stamp(session: Session, *_: Any) -> None:
        if any(isinstance(row, ApiKey) for row in (*session.dirty, *session.new)):
            session.info["stamped"] = True

    def die_before_the_stamp_commits(session: Session) -> None:
        if session.info.pop("stamped", False):
            database.go_down()

    sessions = app.extensions["faktry"].sessions
    event.listen(sessions, "after_flush", note_stamp)
    event.listen(sessions, "before_commit", die_before_the_stamp_commits)
    assert_unavailable(app.test_client().post("/v1/keys", json={"name": "ci"}, headers=tenant.headers))


# -- work after a commit ----------------------------------------------------------------


def test_a_submit_whose_commit_went_through_answers_202_when_the_database_dies_right_after(
    tmp_path, redis_namespace, database
):
    app = build_app(tmp_path, database.url, namespace=redis_namespace)
    client = app.test_client()
    tenant = make_tenant(database.url)

    def note_new_job(session: Session, *_: Any) -> None:
        if any(isinstance(row, Job) for row in session.new):
            session.info["created_job"] = True

    def die_after_the_job_commits(session: Session) -> None:
        # Releasing a savepoint is a commit too; only the transaction's own commit counts.
        if session.get_nested_transaction() is None and session.info.pop("created_job", False):
            database.go_down()

    sessions = app.extensions["faktry"].sessions
    event.listen(sessions, "before_flush", note_new_job)
    event.listen(sessions, "after_commit", die_after_the_job_commits)
    headers = {**tenant.headers, "Idempotency-Key": "order-1"}
    first = client.post("/v1/jobs", json=PROMPT_JOB, headers=headers)
    assert first.status_code == 202, first.json
    assert first.json["status"] == "queued" and first.json["outputs"] == []
    assert first.headers["Location"] == f"/v1/jobs/{first.json['id']}"
    assert first.json["cost"]["held"] > 0

    database.come_back()
    event.remove(sessions, "after_commit", die_after_the_job_commits)
    again = client.post("/v1/jobs", json=PROMPT_JOB, headers=headers)
    assert again.status_code == 202 and again.json["id"] == first.json["id"]
    assert holds_of(database.url, tenant.id) == (1, 1, first.json["cost"]["held"])
    other = client.post("/v1/jobs", json={**PROMPT_JOB, "metadata": {"x": 1}}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"


def test_a_submit_answers_202_when_the_queue_cannot_be_reached_after_the_commit(
    tmp_path, db_url, redis_namespace
):
    """The broker is a Redis nobody answers: the job and its hold are committed, the
    reconciler sends it later, and the client is told it was accepted."""
    from web import create_app
    from workers.broker import BrokerSender, make_broker

    settings = make_settings(tmp_path, db_url, redis_namespace)
    unreachable = f"redis://127.0.0.1:{svc.free_port()}/0"
    app = create_app(settings, sender=BrokerSender(make_broker(settings, unreachable)))
    app.testing = False
    tenant = make_tenant(db_url)
    client = app.test_client()
    r = client.post("/v1/jobs", json=PROMPT_JOB, headers={**tenant.headers, "Idempotency-Key": "k"})
    assert r.status_code == 202, r.json
    again = client.post("/v1/jobs", json=PROMPT_JOB, headers={**tenant.headers, "Idempotency-Key": "k"})
    assert again.status_code == 202 and again.json["id"] == r.json["id"]
    assert holds_of(db_url, tenant.id) == (1, 1, r.json["cost"]["held"])


# -- Redis goes away --------------------------------------------------------------------


def test_while_redis_is_down_jobs_are_still_accepted_read_and_canceled(tmp_path, db_url, private_redis):
    app = build_app(tmp_path, db_url, redis_url=private_redis.url)
    client = app.test_client()
    tenant = make_tenant(db_url)
    before = client.post("/v1/jobs", json=PROMPT_JOB, headers=tenant.headers)
    assert before.status_code == 202
    assert client.get(f"/v1/jobs/{before.json['id']}", headers=tenant.headers).json["queue_position"] == 0

    private_redis.kill()
    during = client.post("/v1/jobs", json=PROMPT_JOB, headers=tenant.headers)
    assert during.status_code == 202, during.json
    assert holds_of(db_url, tenant.id) == (2, 2, 2 * during.json["cost"]["held"])
    read = client.get(f"/v1/jobs/{before.json['id']}", headers=tenant.headers)
    assert read.status_code == 200 and read.json["queue_position"] is None
    canceled = client.post(f"/v1/jobs/{during.json['id']}/cancel", headers=tenant.headers)
    assert canceled.status_code == 202 and canceled.json["status"] == "canceled"
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200


def test_while_redis_is_down_log_in_and_sign_up_answer_503_rather_than_go_unthrottled(
    tmp_path, db_url, private_redis
):
    app = build_app(tmp_path, db_url, redis_url=private_redis.url)
    client = app.test_client()
    tenant = make_tenant(db_url, staff=True)
    private_redis.kill()
    assert_unavailable(client.post("/v1/session", json={"email": tenant.email, "password": PASSWORD}))
    signup = {"email": "new@example.com", "password": PASSWORD, "confirm_age_16": True}
    assert_unavailable(client.post("/v1/signup", json=signup))
    assert_unavailable(client.get("/metrics"))
    assert_unavailable(client.get("/v1/admin/queues", headers=tenant.headers))


def test_a_redis_that_hangs_is_a_503_within_seconds_not_a_stuck_request(tmp_path, sqlite_url, private_redis):
    app = build_app(tmp_path, sqlite_url, redis_url=private_redis.url)
    client = app.test_client()
    tenant = make_tenant(sqlite_url)
    # Log in once so each of the web's connections to Redis is open before it freezes.
    assert client.post("/v1/session", json={"email": tenant.email, "password": PASSWORD}).status_code == 201
    private_redis.freeze(at_most=15)
    started = time.monotonic()
    assert_unavailable(client.post("/v1/session", json={"email": tenant.email, "password": PASSWORD}))
    assert time.monotonic() - started < 10


def test_a_replay_answers_202_while_redis_is_down(tmp_path, db_url, private_redis):
    app = build_app(tmp_path, db_url, redis_url=private_redis.url)
    client = app.test_client()
    staff = make_tenant(db_url, staff=True)
    failed = client.post("/v1/jobs", json=PROMPT_JOB, headers=staff.headers).json["id"]
    with svc.db_session(db_url) as session:
        session.get(Job, failed).status = "failed"
    private_redis.kill()
    r = client.post(f"/v1/admin/jobs/{failed}/replay", headers=staff.headers)
    assert r.status_code == 202, r.json
    assert r.json["status"] == "queued" and r.json["metadata"]["replay_of"] == failed


def test_dependency_errors_are_counted_while_redis_is_away_and_written_when_it_is_back(
    tmp_path, db_url, private_redis
):
    app = build_app(tmp_path, db_url, redis_url=private_redis.url)
    client = app.test_client()
    tenant = make_tenant(db_url)
    private_redis.kill()
    assert client.post("/v1/jobs", json=PROMPT_JOB, headers=tenant.headers).status_code == 202
    assert_unavailable(client.post("/v1/session", json={"email": tenant.email, "password": PASSWORD}))

    private_redis.start()  # empty: nothing was saved
    metrics = app.extensions["faktry"].metrics
    metrics.flush()
    assert metrics.read()["dependency_errors"].get("web|redis", 0) >= 2


# -- the one shape for everything else --------------------------------------------------


@pytest.fixture
def broken_app(tmp_path, sqlite_url, redis_namespace) -> Flask:
    app = build_app(tmp_path, sqlite_url, namespace=redis_namespace)

    @app.get("/v1/broken/<how>")
    def broken(how: str) -> Any:
        if how == "werkzeug":
            abort(500)
        if how == "wrapped":
            raise InternalServerError(original_exception=KeyError("gone"))
        if how == "unavailable":
            raise ServiceUnavailable()
        if how == "transient":
            raise TransientError("the payment provider is unavailable", code="billing_unavailable")
        raise RuntimeError("a bug")

    @app.get("/broken-page")
    def broken_page() -> Any:
        raise RuntimeError("a bug")

    @app.after_request
    def fail_late(response: Any) -> Any:
        from flask import request

        if request.path == "/v1/broken-late" and response.status_code == 200:
            raise RuntimeError("a bug after the view")
        return response

    @app.get("/v1/broken-late")
    def broken_late() -> Any:
        return {"ok": True}

    return app


@pytest.mark.parametrize(
    "path", ["/v1/broken/werkzeug", "/v1/broken/wrapped", "/v1/broken/bug", "/v1/broken-late"]
)
def test_every_other_server_error_leaves_as_internal_error(broken_app, path):
    r = broken_app.test_client().get(path)
    assert r.status_code == 500
    assert r.json == {"error": {"code": "internal_error", "message": "an unexpected error occurred"}}
    assert "Retry-After" not in r.headers


def test_every_503_carries_retry_after(broken_app):
    client = broken_app.test_client()
    assert_unavailable(client.get("/v1/broken/unavailable"))
    transient = client.get("/v1/broken/transient")
    assert transient.status_code == 503 and int(transient.headers["Retry-After"]) >= 1
    assert transient.json["error"]["code"] == "billing_unavailable"


def test_a_person_gets_the_error_page_for_a_server_error(broken_app):
    r = broken_app.test_client().get("/broken-page", headers={"Accept": "text/html"})
    assert r.status_code == 500 and r.mimetype == "text/html"
