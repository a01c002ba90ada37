"""Writers of several processes sharing the zero-setup SQLite file take its write lock in
turn (faktry/db.py `_WriterQueue`): none of them meets SQLite's busy handler, whose growing
sleeps gave a few submits waits of seconds when two web processes served one file."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from sqlalchemy import event, text

from faktry.db import make_engine

PROCESSES = 3
THREADS = 4
WRITES = 40


def _write(url: str, who: int, out: multiprocessing.Queue) -> None:
    import threading

    engine = make_engine(url)

    # No busy handler at all: a writer that found SQLite's lock taken would fail at once.
    @event.listens_for(engine, "connect")
    def _no_wait(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    failures: list[str] = []

    def writes(thread: int) -> None:
        for i in range(WRITES):
            try:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO w (who) VALUES (:who)"), {"who": f"{who}.{thread}.{i}"})
            except Exception as err:  # counted, then reported
                failures.append(str(err).splitlines()[0])

    threads = [threading.Thread(target=writes, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    out.put(failures)


def test_writers_of_several_processes_never_meet_the_busy_handler(tmp_path: Path):
    path = tmp_path / "faktry.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE w (who TEXT NOT NULL UNIQUE)")
    url = f"sqlite:///{path}"
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_write, args=(url, p, out)) for p in range(PROCESSES)]
    for proc in procs:
        proc.start()
    failures = [f for _ in procs for f in out.get(timeout=120)]
    for proc in procs:
        proc.join(30)
    assert failures == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM w").fetchone()[0] == PROCESSES * THREADS * WRITES
    assert (tmp_path / "faktry.db-writers").exists()
