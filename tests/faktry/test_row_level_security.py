"""Row-level security: on PostgreSQL the database itself keeps each tenant's rows to that
tenant, whatever SQL the application sends (migration 0006, faktry/db.py).

PostgreSQL only: these skip without it locally, and fail under CI=true like every test that
needs a service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, exc, make_url, text

import pipelines.models  # noqa: F401  (every model's table on Base.metadata)
import quotas.models  # noqa: F401
import storage.models  # noqa: F401
from faktry import clock, migrate
from faktry.db import Base, make_engine, make_sessionmaker, transaction
from faktry.tenancy import create_tenant
from pipelines import runner
from pipelines.audit.models import AuditEntry
from pipelines.brands.models import Brand
from pipelines.exports.models import ExportArchive
from pipelines.gallery.models import GalleryEntry
from pipelines.invitations import Invitation
from pipelines.mail.models import AccountToken, MailMessage
from pipelines.models import ModerationEntry
from pipelines.projects.models import Project
from pipelines.uploads.models import Upload
from pipelines.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookSigningKey
from pipelines.workflows.models import Workflow, WorkflowEvent, WorkflowRun, WorkflowStep, WorkflowVersion
from quotas.limits import reserve_storage
from tests import services as svc
from tests.web.helpers import upload

#: The conftest's database fixture, on PostgreSQL only (emptied after each test).
on_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

APP_ROLE = "faktry_app"
PASSWORD = "correct horse battery"
#: Tables without a tenant column, and why: a new one must be protected or listed here.
NOT_TENANT_DATA = {
    "tiers": "the limits of each tier, the same for everyone; the application only reads it",
}


def tenant_tables() -> list[str]:
    return sorted(t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.columns)


def as_app(conn: Connection, tenant_id: str | None = None) -> None:
    """Plain SQL: this transaction runs as the application role, for ``tenant_id`` if given."""
    conn.exec_driver_sql(f"SET LOCAL ROLE {APP_ROLE}")
    if tenant_id is not None:
        conn.execute(text("SELECT set_config('faktry.tenant_id', :t, true)"), {"t": tenant_id})


def owners(conn: Connection, table: str) -> set[str]:
    """The tenants whose rows of ``table`` this connection sees."""
    if table == "hold_allocations":
        sql = "SELECT h.tenant_id FROM hold_allocations a JOIN holds h ON h.id = a.hold_id"
        return set(conn.exec_driver_sql(sql).scalars())
    column = "id" if table == "tenants" else "tenant_id"
    return set(conn.exec_driver_sql(f"SELECT {column} FROM {table}").scalars())


ALLOCATIONS_OF = (
    "SELECT count(*) FROM hold_allocations a JOIN holds h ON h.id = a.hold_id WHERE h.tenant_id = %s"
)


@pytest.fixture
def two_tenants(app: Any, client: Any, runtime: Any, make_tenant: Any, png_image: Any, settings: Any) -> Any:
    """Two tenants with a row of their own in every table that holds a tenant's data: a
    file, a finished job with an output, a hold and its allocation, a ledger, a web
    session, a moderation log entry, a storage reservation, a workflow with its run, a
    brand, a video project, a webhook endpoint with a message, an attempt and a
    signing key, a gallery entry, an upload under way, an export archive, an audit entry, an
    invitation, a mail and a mail link's token."""
    made = []
    for _ in range(2):
        t = make_tenant(password=PASSWORD)
        file_id = upload(client, t, png_image).json["id"]
        body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
        job = client.post("/v1/jobs", json=body, headers=t.headers).json
        runner.run(runtime.context, job["id"])  # what a worker does with its message
        login = client.post("/v1/session", json={"email": t.email, "password": PASSWORD})
        assert login.status_code == 201, login.json
        queued = client.post("/v1/jobs", json=body, headers=t.headers).json  # holds its credits
        assert queued["status"] == "queued"
        with svc.db_session(settings.resolved_database_url) as s:
            s.add(
                ModerationEntry(
                    tenant_id=t.id,
                    action="flagged",
                    category="test",
                    score=0.5,
                    source="local",
                    endpoint="POST /v1/jobs",
                    prompt="a prompt",
                )
            )
            reserve_storage(s, t.id, 1000, 10**9)
            # A saved workflow with a version, and a run of it with a step and an event.
            flow = Workflow(tenant_id=t.id, name="flow")
            s.add(flow)
            s.flush()
            s.add(WorkflowVersion(workflow_id=flow.id, tenant_id=t.id, version=1, graph={}))
            run = WorkflowRun(tenant_id=t.id, workflow_id=flow.id, version=1, graph={})
            s.add(run)
            s.flush()
            s.add(WorkflowStep(run_id=run.id, tenant_id=t.id, node="a"))
            s.add(WorkflowEvent(run_id=run.id, tenant_id=t.id, kind="started"))
            brand = Brand(tenant_id=t.id, name="brand")  # brand guidelines
            s.add(brand)
            s.flush()
            s.add(
                Project(tenant_id=t.id, name="project", format="9:16", target_seconds=30, brand_id=brand.id)
            )
            # A webhook endpoint with a message and an attempt, and a per-job signing key.
            hook = WebhookEndpoint(tenant_id=t.id, url="https://hooks.example.com/in", secret="whsec_AA==")
            s.add(hook)
            s.flush()
            message = WebhookMessage(
                tenant_id=t.id, endpoint_id=hook.id, event_type="webhook.test", payload={}
            )
            s.add(message)
            s.flush()
            s.add(WebhookAttempt(tenant_id=t.id, message_id=message.id, endpoint_id=hook.id, status_code=200))
            s.add(WebhookSigningKey(tenant_id=t.id, secret="whsec_AA=="))
            s.add(
                GalleryEntry(
                    tenant_id=t.id, job_id=job["id"], storage_key=f"gallery/{t.id}/output.png", kind="image",
                    content_type="image/png", size=1, job_type="image.generate", model="local-image",
                    prompt="a prompt", category="other", display_name="someone",
                )
            )  # fmt: skip
            s.add(
                Upload(
                    tenant_id=t.id, protocol="tus", size=10, staging_key=f"t/{t.id}/uploads/x/data",
                    expires_at=clock.now(),
                )
            )  # an upload under way  # fmt: skip
            s.add(ExportArchive(tenant_id=t.id, user_id=t.user_id))  # an export archive
            s.add(AuditEntry(tenant_id=t.id, action="login", via="session"))  # an audit entry
            s.add(
                Invitation(
                    tenant_id=t.id, email=f"invited-{t.id}@example.com", role="viewer",
                    token_hash=t.id.ljust(64, "0"), expires_at=clock.now(),
                )
            )  # an invitation  # fmt: skip
            # A mail about the account, and a token of a link it carried.
            s.add(
                MailMessage(
                    tenant_id=t.id,
                    to_address=t.email,
                    kind="security_notice",
                    subject="s",
                    text_body="t",
                    html_body="h",
                )
            )
            s.add(
                AccountToken(
                    tenant_id=t.id, user_id=t.user_id, purpose="verify_email", token_hash=uuid.uuid4().hex,
                    expires_at=clock.now(),
                )
            )  # fmt: skip
        made.append(t)
    return made


@pytest.fixture
def pg(db_url: str) -> Iterator[Any]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@on_postgresql
def test_the_application_role_without_a_tenant_sees_no_row_of_any_table(pg, two_tenants):
    with pg.connect() as conn:
        for table in [*tenant_tables(), "tenants", "hold_allocations"]:
            assert owners(conn, table) >= {t.id for t in two_tenants}, table  # as the owner
        as_app(conn)
        for table in [*tenant_tables(), "tenants", "hold_allocations"]:
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0, table


@on_postgresql
def test_the_application_role_for_one_tenant_sees_and_writes_only_that_tenants_rows(pg, two_tenants):
    a, b = two_tenants
    with pg.connect() as conn:
        a_allocations = conn.exec_driver_sql(ALLOCATIONS_OF, (a.id,)).scalar()
        b_hold = conn.exec_driver_sql("SELECT id FROM holds WHERE tenant_id = %s", (b.id,)).scalar()
        a_lot = conn.exec_driver_sql("SELECT id FROM credit_lots WHERE tenant_id = %s", (a.id,)).scalar()
        as_app(conn, a.id)
        for table in [*tenant_tables(), "tenants", "hold_allocations"]:
            assert owners(conn, table) == {a.id}, table
        assert a_allocations > 0
        assert conn.exec_driver_sql("SELECT count(*) FROM hold_allocations").scalar() == a_allocations
        # Another tenant's rows can be neither changed nor removed: to the policy they are not there.
        assert (
            conn.exec_driver_sql("UPDATE jobs SET progress = 0.5 WHERE tenant_id = %s", (b.id,)).rowcount == 0
        )
        assert conn.exec_driver_sql("DELETE FROM api_keys WHERE tenant_id = %s", (b.id,)).rowcount == 0
        assert conn.exec_driver_sql("UPDATE tenants SET name = 'x' WHERE id = %s", (b.id,)).rowcount == 0

    refused = [
        ("UPDATE jobs SET tenant_id = %s WHERE tenant_id = %s", (b.id, a.id)),  # moving a row to b
        (
            "INSERT INTO credit_lots (id, tenant_id, source, amount, remaining, held, created_at, expires_at) "
            "VALUES ('lot_x', %s, 'grant', 1000, 1000, 0, now(), now() + interval '1 day')",
            (b.id,),
        ),
        (
            "INSERT INTO tenants (id, name, tier, status, created_at) VALUES (%s, '', 'free', 'active', now())",
            ("ten_x",),
        ),
        ("INSERT INTO hold_allocations (hold_id, lot_id, amount) VALUES (%s, %s, 1)", (b_hold, a_lot)),
    ]
    for sql, params in refused:
        with pg.connect() as conn:
            as_app(conn, a.id)
            with pytest.raises(exc.ProgrammingError, match="row-level security"):
                conn.exec_driver_sql(sql, params)


@on_postgresql
def test_the_privileged_role_sees_and_changes_every_tenants_rows(pg, two_tenants):
    a, b = two_tenants
    with pg.begin() as conn:  # the role the database URL names: migrations, staff, reconciler
        assert owners(conn, "jobs") >= {a.id, b.id}
        assert (
            conn.exec_driver_sql("UPDATE tenants SET name = 'renamed' WHERE id = %s", (b.id,)).rowcount == 1
        )


WHO = text("SELECT current_user = session_user, current_user, current_setting('faktry.tenant_id', true)")


def acting(session: Any) -> tuple[str, str | None]:
    """("privileged", None) or (the role, the tenant) the session's transaction acts as now."""
    privileged, role, tenant = session.execute(WHO).one()
    return ("privileged", tenant or None) if privileged else (role, tenant)


@on_postgresql
def test_sessions_act_for_their_tenant_as_the_application_role_statement_by_statement(pg, two_tenants):
    a, b = two_tenants
    sessions = make_sessionmaker(pg)
    with transaction(sessions) as session:
        assert acting(session) == ("privileged", None)  # no tenant: the URL's role
        assert owners(session.connection(), "jobs") >= {a.id, b.id}
        session.info["tenant_id"] = a.id  # what authentication does mid-request (web/auth.py)
        assert acting(session) == (APP_ROLE, a.id)
        # Raw SQL on the session's connection, past the ORM, is confined too.
        assert owners(session.connection(), "jobs") == {a.id}
        session.info.pop("tenant_id")  # what a staff view does (web/api/admin.py)
        assert acting(session) == ("privileged", None)
        assert owners(session.connection(), "jobs") >= {a.id, b.id}
    with transaction(sessions) as session:
        assert acting(session) == ("privileged", None)
        # A switch made inside a savepoint that is rolled back is undone with it; the next
        # statement makes it again.
        with session.begin_nested() as nested:
            session.execute(text("SELECT 1"))  # the SAVEPOINT goes out first
            session.info["tenant_id"] = b.id
            assert owners(session.connection(), "jobs") == {b.id}
            nested.rollback()
        assert acting(session) == (APP_ROLE, b.id)
        assert owners(session.connection(), "jobs") == {b.id}
    with transaction(sessions) as session:  # the next transaction on that connection starts afresh
        assert acting(session) == ("privileged", None)


@on_postgresql
def test_a_worker_claims_as_the_privileged_role_then_runs_the_job_as_its_tenant(
    app, client, runtime, tenant, png_image
):
    file_id = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    job = client.post("/v1/jobs", json=body, headers=tenant.headers).json
    seen: list[tuple[str, str, str | None]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.execute(
                "SELECT current_user = session_user, current_user, current_setting('faktry.tenant_id', true)"
            )
            privileged, role, acting_for = cur.fetchone()
        what = " ".join(statement.split()[:3])
        seen.append((what, "privileged", acting_for or None) if privileged else (what, role, acting_for))

    engine = runtime.context.sessions.kw["bind"]
    event.listen(engine, "after_cursor_execute", record)
    try:
        runner.run(runtime.context, job["id"])  # one delivery of the job's message
    finally:
        event.remove(engine, "after_cursor_execute", record)
    assert client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json["status"] == "succeeded"
    first = next(i for i, (_, role, _) in enumerate(seen) if role != "privileged")
    # The claim knows only the job's id: its update and its event, as the privileged role
    # (the tenant has no webhook endpoints, which the update read too: no lookup).
    assert seen[:first] == [
        ("UPDATE jobs SET", "privileged", None),
        ("INSERT INTO job_events", "privileged", None),
    ]
    rest = seen[first:]
    assert {(role, acting_for) for _, role, acting_for in rest} == {(APP_ROLE, tenant.id)}, rest
    done = {what for what, _, _ in rest}
    assert {"INSERT INTO files", "INSERT INTO job_outputs", "INSERT INTO ledger_entries"} <= done, done


@on_postgresql
def test_every_table_of_tenant_data_has_row_level_security_forced_and_a_tenant_policy(pg):
    with pg.connect() as conn:
        state = {
            name: (enabled, forced)
            for name, enabled, forced in conn.exec_driver_sql(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
            )
        }
        policies: dict[str, dict[str, tuple[list[str], str, str]]] = {}
        for table, name, roles, using, check in conn.exec_driver_sql(
            "SELECT tablename, policyname, roles, qual, with_check FROM pg_policies "
            "WHERE schemaname = current_schema()"
        ):
            policies.setdefault(table, {})[name] = (list(roles), using, check)
        grants = {
            (table, privilege)
            for table, privilege in conn.execute(
                text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = :r AND table_schema = current_schema()"
                ),
                {"r": APP_ROLE},
            )
        }
        app_role = conn.execute(
            text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :r"),
            {"r": APP_ROLE},
        ).one()
    assert tuple(app_role) == (False, False, False)

    protected = [*tenant_tables(), "tenants", "hold_allocations"]
    assert "user_sessions" in protected and "moderation_log" in protected
    for table in protected:
        assert state[table] == (True, True), f"{table}: row-level security not enabled and forced"
        tenant = policies.get(table, {}).get("faktry_tenant")
        assert tenant is not None, f"{table}: no faktry_tenant policy"
        roles, using, check = tenant
        assert roles == ["public"] and using == check
        assert "faktry.tenant_id" in using or "holds" in using, using
        assert {p for t, p in grants if t == table} == {"SELECT", "INSERT", "UPDATE", "DELETE"}, table
    # Stripe's events name no tenant and are the privileged role's alone.
    assert state["stripe_events"] == (True, True)
    assert set(policies["stripe_events"]) == {"faktry_privileged"}
    assert not {p for t, p in grants if t in ("stripe_events", "alembic_version")}
    assert {p for t, p in grants if t == "tiers"} == {"SELECT"}
    # Every table of the models is either protected or not a tenant's data, for a reason.
    every = {t.name for t in Base.metadata.sorted_tables}
    assert every - set(protected) - {"stripe_events"} == set(NOT_TENANT_DATA)


# -- an owner that is neither superuser nor BYPASSRLS (managed PostgreSQL) ---------------------


@pytest.fixture
def owned_database(db_url: str) -> Iterator[tuple[str, str, str]]:
    """A new database owned by a plain role (CREATEROLE only) that migrates it itself, with an
    application role of its own; dropped afterwards, roles included."""
    suffix = f"{svc.RUN_ID}_{uuid.uuid4().hex[:6]}"
    owner, app_role, name = f"faktry_rls_owner_{suffix}", f"faktry_rls_app_{suffix}", f"faktry_rls_{suffix}"
    admin = create_engine(svc.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {owner} LOGIN CREATEROLE")
            conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER {owner}")
        url = make_url(svc.PG_ADMIN_URL).set(username=owner, password=None, database=name)
        yield url.render_as_string(hide_password=False), owner, app_role
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {app_role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {owner}")
        admin.dispose()


@on_postgresql
def test_a_plain_owner_migrates_creates_its_application_role_and_stays_privileged(owned_database):
    url, owner, app_role = owned_database
    migrate.upgrade(url, app_role=app_role)
    engine = make_engine(url, app_role=app_role)
    try:
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            a, _ = create_tenant(session, email="a@example.com")
            b, _ = create_tenant(session, email="b@example.com")
        with engine.connect() as conn:
            plain = "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
            assert tuple(conn.exec_driver_sql(plain).one()) == (owner, False)
            assert owners(conn, "users") == {a.id, b.id}  # the owner's policy, not an exemption
        with transaction(sessions, tenant_id=a.id) as session:
            assert owners(session.connection(), "users") == {a.id}
            assert session.execute(text("SELECT current_user")).scalar() == app_role

        # Downgrading removes the policies; an application role that could bypass them is refused.
        migrate.downgrade(url, "0005", app_role=app_role)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_policies").scalar() == 0
        with pytest.raises(RuntimeError, match="BYPASSRLS"):
            migrate.upgrade(url, app_role="postgres")
        migrate.upgrade(url, app_role=app_role)
        with transaction(sessions, tenant_id=b.id) as session:
            assert owners(session.connection(), "users") == {b.id}
    finally:
        engine.dispose()


def test_a_role_name_that_is_not_plain_is_refused_before_it_reaches_sql():
    with pytest.raises(ValueError, match="FAKTRY_DATABASE_APP_ROLE"):
        make_engine("postgresql://postgres@127.0.0.1/x", app_role='app"; DROP TABLE jobs; --')
