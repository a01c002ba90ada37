"""Shared fixtures: settings on a real database and Redis, the app, a worker, tenants.

``db_url`` is parametrized over SQLite and PostgreSQL (one suite, every backend). The
PostgreSQL database is created once per run and emptied between tests; SQLite gets a new
file per test. Each test gets its own Redis namespace and its own broker.
"""

from __future__ import annotations

import itertools
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Worker
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, text

from faktry import clock, migrate
from faktry.config import Settings
from faktry.db import Base, make_engine, make_sessionmaker, transaction
from faktry.tenancy import create_api_key, create_tenant
from quotas import ledger
from quotas.models import MILLI
from tests import services as svc

pytest_plugins = ["tests.mediafixtures", "tests.standins.fixtures", "tests.platform"]

_counter = itertools.count()


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
def _close_idle_connections() -> Iterator[None]:
    """Every engine a test connected with gives back its idle connections when the test
    ends: apps and engines built inside a test would otherwise keep theirs open until a
    garbage collection, and a long run would use up PostgreSQL's connection slots."""
    used: weakref.WeakSet[Engine] = weakref.WeakSet()

    def connected(conn: Any) -> None:
        used.add(conn.engine)

    event.listen(Engine, "engine_connect", connected)
    yield
    event.remove(Engine, "engine_connect", connected)
    for engine in list(used):
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with svc.postgres_database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'faktry.db'}"
        migrate.upgrade(url)
        yield url
        return
    url = request.getfixturevalue("pg_url")
    yield url
    engine = make_engine(url)
    with engine.begin() as conn:
        # Tiers are seeded by the migrations and only ever added to by tests.
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name != "tiers")
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'faktry.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    if not svc.redis_available():
        svc.missing("Redis")
    namespace = f"faktry-test-{svc.RUN_ID}-{next(_counter)}"
    yield namespace
    svc.clear_namespace(namespace)


def make_settings(tmp_path: Path, db_url: str, namespace: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "var_dir": tmp_path / "var",
        "database_url": db_url,
        "redis_url": svc.REDIS_URL,
        "redis_namespace": namespace,
        "storage_url": f"file:{tmp_path / 'storage'}",
        "secret_key": "test-secret-" + uuid.uuid4().hex,
        "bcrypt_rounds": 4,
        "job_heartbeat_seconds": 0.2,
        "job_lease_seconds": 2.0,
        "retry_min_backoff_ms": 50,
        "retry_max_backoff_ms": 200,
        "worker_timeout_ms": 20,
        "broker_heartbeat_ms": 3000,
        "broker_maintenance_chance": 1_000_000,
        "ffmpeg_timeout_min": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str) -> Settings:
    return make_settings(tmp_path, db_url, redis_namespace)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Any]:
    from workers.broker import setup

    rt = setup(settings)
    yield rt
    rt.broker.close()
    # Its pool's connections are closed now, not whenever a garbage collection finds them:
    # PostgreSQL has a limit on connections that a long run would otherwise reach.
    rt.context.sessions.kw["bind"].dispose()


@pytest.fixture
def app(settings: Settings, runtime: Any) -> Iterator[Any]:
    from web import create_app
    from workers.broker import BrokerSender

    application = create_app(settings, sender=BrokerSender(runtime.broker))
    application.testing = True
    yield application
    application.extensions["faktry"].sessions.kw["bind"].dispose()


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def worker(runtime: Any) -> Iterator[Worker]:
    """A real Dramatiq worker on the test's broker, in this process."""
    runtime.broker.emit_after("process_boot")
    w = Worker(runtime.broker, worker_threads=2, worker_timeout=20)
    w.start()
    yield w
    w.stop(timeout=10_000)


class TenantHandle:
    def __init__(self, tenant_id: str, user_id: str, email: str, key: str) -> None:
        self.id = tenant_id
        self.user_id = user_id
        self.email = email
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make_tenant(settings: Settings) -> Iterator[Callable[..., TenantHandle]]:
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)

    def make(
        tier: str = "free", *, admin: bool = False, password: str | None = None, credits: int = 1000
    ) -> TenantHandle:
        """A tenant with an API key and, unless ``credits=0``, that many credits."""
        email = f"user-{uuid.uuid4().hex[:8]}@example.com"
        with transaction(sessions) as session:
            tenant, user = create_tenant(
                session, email=email, tier=tier, is_staff=admin, password=password, bcrypt_rounds=4
            )
            _, plain = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
            if credits:
                ledger.add_credits(
                    session, tenant.id, credits * MILLI, source="grant", key=f"test:{tenant.id}"
                )
        return TenantHandle(tenant.id, user.id, email, plain)

    yield make
    engine.dispose()


@pytest.fixture
def make_tier(settings: Settings) -> Iterator[Callable[..., str]]:
    """A new tier (tiers are data) with the free tier's limits except those given."""
    from quotas.limits import DEFAULT_TIERS
    from quotas.models import Tier

    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)

    def make(**limits: int) -> str:
        name = f"test-{uuid.uuid4().hex[:8]}"
        with transaction(sessions) as session:
            session.add(Tier(name=name, **{**DEFAULT_TIERS["free"], **limits}))
        return name

    yield make
    engine.dispose()


@pytest.fixture
def tenant(make_tenant: Callable[..., TenantHandle]) -> TenantHandle:
    return make_tenant()
