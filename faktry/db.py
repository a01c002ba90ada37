"""Database engine, base model and sessions.

One engine per process, created after fork by a composition root (`make_engine`).
SQLite gets WAL, a busy timeout and foreign keys so several processes can share the
zero-setup file; PostgreSQL is used as is. Sessions are short: the edge (a request, a
message) owns the transaction; services flush, never commit.

Tenant scoping lives here, in one place: a session whose ``info["tenant_id"]`` is set
adds ``tenant_id = :tenant`` to every ORM query of a `TenantOwned` model, so another
tenant's rows are invisible, exactly like rows that do not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, String, TypeDecorator, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back an aware datetime, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


class TenantOwned:
    """Mixin for rows that belong to one tenant; queries of them are scoped automatically."""

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)


def new_id(prefix: str) -> str:
    """Opaque, unguessable public ids such as ``job_3k9x...`` (prefix tells the kind)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Python's sqlite3 opens transactions lazily and never for SELECT; take control so
        # BEGIN IMMEDIATE can be issued where a write must not lose a race.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A transaction that may write takes the write lock up front: SQLite has no row
        # locks, and a deferred transaction that later writes fails with SQLITE_BUSY instead
        # of waiting. One that only reads (see `read_only`) takes no lock at all: in WAL
        # mode it reads a snapshot beside the writer.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


#: The execution option (and session info key) of a transaction that only reads.
READ_ONLY = "faktry_read_only"


def read_only(factory: sessionmaker[Session]) -> Session:
    """A session that only reads: on SQLite its transactions take no write lock. A write it
    makes anyway still works, at the risk of a busy error under load."""
    # The reading engine shares the factory's engine and pool; it is kept on the factory,
    # so it lives exactly as long as the factory does.
    reading = getattr(factory, "_faktry_reading", None)
    if reading is None:
        reading = factory.kw["bind"].execution_options(**{READ_ONLY: True})
        factory._faktry_reading = reading  # type: ignore[attr-defined]
    session = factory(bind=reading)
    session.info[READ_ONLY] = True
    return session


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get("tenant_id")
    if tenant_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    state.statement = state.statement.options(
        with_loader_criteria(TenantOwned, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)
    )


@contextmanager
def transaction(factory: sessionmaker[Session], *, tenant_id: str | None = None) -> Iterator[Session]:
    """A short unit of work: commit on success, roll back on error, always close."""
    session = factory()
    if tenant_id is not None:
        session.info["tenant_id"] = tenant_id
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_unavailable(err: BaseException) -> bool:
    """Whether ``err`` says the database could not be reached or dropped the connection (or,
    on SQLite, stayed locked): worth trying again, unlike an error in the statement."""
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(err, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError)
