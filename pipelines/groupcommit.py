"""Group commit: the writes that concurrent requests of one process make share one transaction.

A single submit writes a handful of rows, and most of its cost is the transaction around
them: taking the write lock (on SQLite, the whole database's), the commit's write-ahead log
and the hand-over to the broker afterwards. `GroupCommit` lets the requests that arrive
while a transaction is under way wait for it to end, then run their writes together in the
next one, with one commit and one set of after-commit hooks for all of them.

A request that finds nothing being written writes alone, in its own transaction, exactly as
before (`claim_alone`). There is no extra thread: the first request to find one being
written leads the next group. It runs the writes of every request waiting at that moment
(at most ``max_group``), commits, runs the hooks, hands each request its own outcome, and
passes the lead to the first of those that arrived meanwhile. A request alone costs what it
cost before; requests arriving together cost one transaction between them.

Each request keeps its own outcome: the group's writes first run back to back, and if one
of them raises, the transaction is rolled back and they run again, each in a savepoint of
its own, so that the one that failed answers its own error and the others commit. A
failure of the commit itself reaches every request of the group. ``info["tenant_id"]`` is
set to each write's tenant before it runs, so on PostgreSQL each runs confined to its own
tenant (`faktry.db`), as it would in a transaction of its own. The writes run in the order
of their tenants, so that groups of different processes lock tenants' rows in one order.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a group does once it has committed, with what each successful write returned.
AfterCommit = Callable[[list[Any]], None]


@dataclass(eq=False)
class _Write(Generic[T]):
    tenant_id: str | None
    write: Callable[[Session], T]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: Any = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result

    def failed(self, err: BaseException) -> None:
        """Fail this write with ``err`` shared by its group: each request raises a copy of
        its own, so that threads raising it at once do not write into one traceback."""
        try:
            own = copy.copy(err)
        except Exception:
            own = err
        self.error, self.result = own, None


@dataclass
class GroupStats:
    """How many writes ran, in how many transactions (for tests and benchmarks)."""

    writes: int = 0
    transactions: int = 0
    retried: int = 0


class GroupCommit:
    """One process's group commit of one kind of write (see the module's docstring).

    ``after_commit`` is called once per committed group with the results of the writes that
    succeeded, before any of their requests returns; like any after-commit step it must not
    raise (what it fails to do, the reconciler does). ``gather_seconds`` makes a leader wait
    that long for others before it starts: 0 (the default) groups only the writes that
    arrive while another group runs, so a lone request never waits."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        after_commit: AfterCommit | None = None,
        max_group: int = 64,
        gather_seconds: float = 0.0,
    ) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self.sessions = sessions
        self.after_commit = after_commit
        self.max_group = max_group
        self.gather_seconds = gather_seconds
        self.stats = GroupStats()
        self._lock = threading.Lock()
        self._waiting: list[_Write[Any]] = []
        self._leading = False
        self._alone = 0

    def claim_alone(self) -> bool:
        """Whether the caller may write in a transaction of its own, as a lone submit did before
        groups: only while no group is being written and nobody else writes alone. The caller
        that got True calls `release_alone` once its transaction has ended. Whoever comes while
        one writes alone joins a group instead, which is written once that one has committed."""
        with self._lock:
            if self._leading or self._alone:
                return False
            self._alone += 1
            return True

    def release_alone(self) -> None:
        with self._lock:
            self._alone -= 1

    def run(self, tenant_id: str | None, write: Callable[[Session], T]) -> T:
        """Run ``write(session)`` in a transaction shared with concurrent callers, and return
        what it returned once that transaction has committed and its hooks have run; or raise
        what it raised (nothing of it committed), or what the commit raised."""
        mine: _Write[T] = _Write(tenant_id, write)
        with self._lock:
            self._waiting.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            mine.done.wait()
            if not mine.lead:
                return mine.outcome()
        # Leading: every write waiting now, up to a group's worth, this one among them (it
        # is the first waiting, or it was alone).
        group: list[_Write[Any]] = []
        try:
            if self.gather_seconds > 0:
                time.sleep(self.gather_seconds)
            with self._lock:
                group = self._waiting[: self.max_group]
                del self._waiting[: self.max_group]
            self._commit(group)
        finally:
            with self._lock:
                if mine in self._waiting:  # interrupted before taking its group: not written
                    self._waiting.remove(mine)
                if self._waiting:
                    following = self._waiting[0]
                    following.lead = True
                    following.done.set()
                else:
                    self._leading = False
            for other in group:
                if other is not mine:
                    other.done.set()
        return mine.outcome()

    def _commit(self, group: list[_Write[Any]]) -> None:
        # In tenant order: a write locks its tenant's account, and groups of several processes
        # that take the same tenants' locks in one order wait for each other instead of
        # deadlocking (PostgreSQL would abort one of them after a second).
        group = sorted(group, key=lambda w: w.tenant_id or "")
        try:
            if not self._attempt(group, alone=False) and len(group) > 1:
                # A write raised and took the others down with it: each on its own now.
                self.stats.retried += 1
                for w in group:
                    w.error = None
                self._attempt(group, alone=True)
        except BaseException as err:  # the commit, or the session itself, failed
            for w in group:
                if w.error is None:
                    w.failed(err)
            return
        done = [w.result for w in group if w.error is None]
        if done and self.after_commit is not None:
            try:
                self.after_commit(done)
            except Exception:
                log.warning("an after-commit step of %d write(s) failed", len(done), exc_info=True)

    def _attempt(self, group: list[_Write[Any]], *, alone: bool) -> bool:
        """Run the group's writes in one transaction and commit what succeeded. With ``alone``,
        each in a savepoint; without, back to back, rolling everything back if one raises
        (False). A group of one is always "alone": its transaction is its savepoint."""
        session = self.sessions()
        try:
            failed = False
            for w in group:
                session.info["tenant_id"] = w.tenant_id
                try:
                    if alone and len(group) > 1:
                        with session.begin_nested():
                            w.result = w.write(session)
                    else:
                        w.result = w.write(session)
                except Exception as err:
                    w.error, w.result = err, None
                    if not alone:
                        failed = True
                        break
            if failed:
                session.rollback()
                return False
            if any(w.error is None for w in group):
                session.commit()
                self.stats.transactions += 1
                self.stats.writes += sum(1 for w in group if w.error is None)
            else:
                session.rollback()
            return True
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
