"""Database engine, base model and sessions.

One engine per process, created after fork by a composition root (`make_engine`).
SQLite gets WAL, a busy timeout and foreign keys so several processes can share the
zero-setup file; PostgreSQL is used as is. Sessions are short: the edge (a request, a
message) owns the transaction; services flush, never commit.

Tenant scoping lives here, in one place: a session whose ``info["tenant_id"]`` is set
adds ``tenant_id = :tenant`` to every ORM query of a `TenantOwned` model, so another
tenant's rows are invisible, exactly like rows that do not exist.

On PostgreSQL the database enforces it too (row-level security, migration 0006): every
statement a session with a tenant sends runs as the application role (``app_role``, which
cannot bypass the policies) with ``faktry.tenant_id`` set to that tenant, both local to the
transaction, so raw SQL, Core statements and anything that forgets the ORM are confined
alike. A session without a tenant runs as the role the database URL names: that is the
privileged path (sign-up, log-in and API-key lookups before the caller is known, staff
views, the reconciler, migrations). See docs/operations.md, "Row-level security".
"""

from __future__ import annotations

import copy
import fcntl
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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

from faktry.config import Settings

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


def make_engine(url: str, *, pool_size: int = 5, app_role: str = Settings.database_app_role) -> Engine:
    """The process's engine. On PostgreSQL, sessions with a tenant run as ``app_role``
    (``FAKTRY_DATABASE_APP_ROLE``; `faktry db upgrade` creates it)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
    _confine_to_tenants(engine, check_role_name(app_role))
    return engine


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

    database = engine.url.database or ""
    shared = database not in ("", ":memory:") and not database.startswith("file:")
    writers = _WriterQueue(f"{database}-writers" if shared else None)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A transaction that may write takes the write lock up front: SQLite has no row
        # locks, and a deferred transaction that later writes fails with SQLITE_BUSY instead
        # of waiting. One that only reads (see `read_only`) takes no lock at all: in WAL
        # mode it reads a snapshot beside the writer.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        writers.enter(dbapi_conn)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writers.leave(dbapi_conn)
            raise

    # The queue is left once SQLite's lock is given up: after the COMMIT or ROLLBACK itself
    # (the pool's rollback of a connection given back mid-transaction included).
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(proxied: Any) -> None:
        try:
            commit(proxied)
        finally:
            writers.leave(getattr(proxied, "dbapi_connection", proxied))

    def do_rollback(proxied: Any) -> None:
        try:
            rollback(proxied)
        finally:
            writers.leave(getattr(proxied, "dbapi_connection", proxied))

    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]


class _WriterQueue:
    """Writers take SQLite's write lock one after another, handed over the moment the last
    one has committed. Without it, writers that find the lock taken wait in SQLite's busy
    handler, which sleeps in growing steps (up to 100 ms) and wakes in no order: under load
    most writers wait a few milliseconds and some wait seconds.

    Within a process, a thread lock orders the threads. Between the processes sharing the
    file (several web processes, workers, the scheduler), the one writer of each process
    then takes an advisory lock on a sidecar file (``<database>-writers``), polled every
    `POLL` seconds: a process's writer waits at most a poll's length after the last one
    committed, instead of SQLite's backoff. A writer that waited `TIMEOUT` tries SQLite's
    lock anyway (its busy timeout then decides), so a stuck process delays others, never
    deadlocks them. A thread that already writes on another connection goes past the queue
    (SQLite's own lock decides, as before). A process that dies releases its lock with it.
    """

    #: How long a writer waits here before trying SQLite's lock anyway (its busy timeout).
    TIMEOUT = 30.0
    #: How often a writer asks again for the lock another process holds.
    POLL = 0.0005

    def __init__(self, sidecar: str | None = None) -> None:
        self._lock = threading.Lock()
        self._owner: tuple[int, int] | None = None  # (thread, DB-API connection)
        self._sidecar = sidecar
        self._fd: int | None = None
        self._pid = 0
        self._held = False

    def enter(self, dbapi_conn: Any) -> None:
        me = threading.get_ident()
        owner = self._owner
        if owner is not None and owner[0] == me:
            return  # this thread writes already, on another connection
        if self._lock.acquire(timeout=self.TIMEOUT):
            self._owner = (me, id(dbapi_conn))
            self._held = self._lock_file()

    def leave(self, dbapi_conn: Any) -> None:
        owner = self._owner
        if owner is not None and owner[1] == id(dbapi_conn):
            if self._held:
                self._held = False
                with suppress(OSError):
                    fcntl.flock(self._file(), fcntl.LOCK_UN)
            self._owner = None
            self._lock.release()

    def _file(self) -> int:
        # Opened per process: a descriptor inherited over a fork would share the lock.
        if self._fd is None or self._pid != os.getpid():
            assert self._sidecar is not None
            self._fd = os.open(self._sidecar, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def _lock_file(self) -> bool:
        if self._sidecar is None:
            return False
        deadline = time.monotonic() + self.TIMEOUT
        try:
            fd = self._file()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(self.POLL)
        except OSError:
            return False  # a read-only directory, say: SQLite's own lock still decides


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


def for_tenant(factory: sessionmaker[Session], tenant_id: str) -> sessionmaker[Session]:
    """A session factory like ``factory`` (same engine, same session class) whose sessions
    all act for ``tenant_id``. Cheap: a copy, not a new session class."""
    scoped = copy.copy(factory)
    scoped.kw = {**factory.kw, "info": {**factory.kw.get("info", {}), "tenant_id": tenant_id}}
    return scoped


# -- row-level security on PostgreSQL ----------------------------------------------------------

#: The setting the row-level security policies compare each row's tenant with.
TENANT_SETTING = "faktry.tenant_id"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Keys in a connection's ``info``: the ``info`` of the session whose transaction it runs,
#: and which tenant the transaction acts for now (None: none, as the URL's role).
_SESSION_INFO = "faktry_session_info"
_ACTING_FOR = "faktry_acting_for"
#: What a connection acts for when that is not known (after a rolled-back savepoint).
_UNKNOWN = object()
_SWITCH = "SELECT set_config('role', %s, true), set_config('" + TENANT_SETTING + "', %s, true)"


def check_role_name(name: str) -> str:
    """``name`` if it is a plain lower-case PostgreSQL role name (it is written into SQL)."""
    if not _ROLE_NAME.fullmatch(name):
        raise ValueError(
            f"FAKTRY_DATABASE_APP_ROLE: {name!r} is not a plain role name (lower-case letters, "
            "digits and underscores, not starting with a digit)"
        )
    return name


def _confine_to_tenants(engine: Engine, app_role: str) -> None:
    """Make every statement of a session with a tenant run as ``app_role`` for that tenant.

    A session links itself to the connection its transaction runs on (`_link_session`);
    before each statement the connection compares the tenant its transaction acts for with
    the session's ``info["tenant_id"]`` as it is now, and switches with one ``set_config``
    pair, local to the transaction, when they differ. Reading ``info`` at each statement
    rather than once at the start means that a request which authenticates inside its
    transaction is confined from its next statement on, and that a staff view which drops
    its tenant (web/api/admin.py) goes back to the privileged role from its next one. A
    transaction without a tenant costs nothing: no statement is added."""

    @event.listens_for(engine, "begin")
    def _fresh(conn: Any) -> None:
        conn.info.pop(_SESSION_INFO, None)
        conn.info[_ACTING_FOR] = None

    @event.listens_for(engine, "before_cursor_execute")
    def _act_for_tenant(
        conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.startswith("ROLLBACK TO SAVEPOINT"):
            # A switch made inside the savepoint is undone with it: switch again if needed.
            conn.info[_ACTING_FOR] = _UNKNOWN
            return
        linked = conn.info.get(_SESSION_INFO)
        wanted = linked.get("tenant_id") if linked is not None else None
        if conn.info.get(_ACTING_FOR, None) == wanted:
            return
        dbapi_conn = conn.connection.dbapi_connection
        if wanted is not None and dbapi_conn.autocommit:
            # A transaction-local switch would end with this very statement.
            raise RuntimeError("a session with a tenant cannot run in autocommit mode")
        with dbapi_conn.cursor() as cur:
            cur.execute(_SWITCH, (app_role if wanted is not None else "none", wanted or ""))
        conn.info[_ACTING_FOR] = wanted


@event.listens_for(Session, "after_begin")
def _link_session(session: Session, _transaction: Any, connection: Any) -> None:
    connection.info[_SESSION_INFO] = session.info


_MEMO = "faktry_transaction_memo"


def memo(session: Session) -> dict[Any, Any]:
    """A dict that lives as long as the session's current transaction: what one statement
    of the transaction read, kept for later statements of the same transaction to skip
    reading it again (a new transaction starts with an empty one)."""
    current = session.get_transaction()
    if current is None:  # begin it now, as the first statement would
        session.connection()
        current = session.get_transaction()
    held = session.info.get(_MEMO)
    if held is None or held[0] is not current:
        held = (current, {})
        session.info[_MEMO] = held
    return held[1]


def hand_over_at_commit(
    sessions: sessionmaker[Session], key: str, hand_over: Callable[[list[str]], object], log: logging.Logger
) -> None:
    """Pass the ids a transaction of ``sessions`` kept in ``session.info[key]`` (an outbox's
    messages) to ``hand_over`` once the transaction has committed; forget them when it rolls
    back. A savepoint's release or rollback is neither: SQLAlchemy reports both with the same
    events, but the transaction goes on, and what the rest of it wrote still goes when it
    commits (an id whose savepoint was rolled back is found missing and skipped). A hand-over
    that fails is logged: the outbox's sweep sends what it could not start."""

    def committed(session: Session) -> None:
        if session.in_nested_transaction():
            return
        ids = session.info.pop(key, None)
        if ids:
            try:
                hand_over(ids)
            except Exception:
                log.warning("could not start sending %d message(s) of %s", len(ids), key, exc_info=True)

    def rolled_back(session: Session) -> None:
        if not session.in_nested_transaction():
            session.info.pop(key, None)

    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)


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
