"""The temp folder holds nothing that outlived its attempt or its process.

Each attempt works in ``<tmp>/<job id>-a<attempt>-<lease token's first 8 characters>/``,
which the runner removes when the attempt ends in any way. A process killed with SIGKILL,
or stopped past its shutdown grace, cannot: `sweep` removes every attempt folder whose
attempt no longer runs (the job is not ``running`` under that lease token any more). A
worker sweeps when it starts and the scheduler on each pass, so a dead attempt's folder
outlives it by at most a sweep interval.

Other temp files (an upload being received, a copy of a stored file) are removed once no
process on this machine holds them open and they have not been written for
``idle_seconds``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import transaction
from pipelines.models import RUNNING, Job

log = logging.getLogger("faktry.tempfiles")

ATTEMPT_DIR = re.compile(r"^(job_[0-9a-f]+)-a(\d+)-([0-9a-f]{8})$")


def attempt_dir(tmp_dir: Path, job_id: str, attempt: int, token: str) -> Path:
    return tmp_dir / f"{job_id}-a{attempt}-{token[:8]}"


def sweep(sessions: sessionmaker[Session], tmp_dir: Path, *, idle_seconds: float = 600.0) -> int:
    """Remove what no running attempt or live process uses; returns how many entries went."""
    try:
        entries = list(tmp_dir.iterdir())
    except FileNotFoundError:
        return 0
    attempts: dict[str, list[tuple[Path, int, str]]] = {}
    others: list[Path] = []
    for entry in entries:
        found = ATTEMPT_DIR.match(entry.name)
        if found and entry.is_dir():
            attempts.setdefault(found[1], []).append((entry, int(found[2]), found[3]))
        else:
            others.append(entry)
    removed = 0
    if attempts:
        with transaction(sessions) as session:
            live = {
                job_id: (token or "")[:8]
                for job_id, token in session.execute(
                    select(Job.id, Job.lease_token).where(Job.id.in_(list(attempts)), Job.status == RUNNING)
                )
            }
        for job_id, folders in attempts.items():
            for folder, _, token in folders:
                if live.get(job_id) != token:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
    if others:
        held = _open_files()
        cutoff = clock.now().timestamp() - idle_seconds
        for entry in others:
            try:
                if entry.is_dir() or entry.lstat().st_mtime > cutoff or entry.resolve() in held:
                    continue
                entry.unlink()
                removed += 1
            except FileNotFoundError:
                continue
    if removed:
        log.info("temp sweep removed %d entries under %s", removed, tmp_dir)
    return removed


def _open_files() -> set[Path]:
    """Files some process of this machine holds open (those we may look at, Linux)."""
    held: set[Path] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return held
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            for fd in (pid / "fd").iterdir():
                try:
                    held.add(Path(os.readlink(fd)))
                except OSError:
                    continue
        except OSError:
            continue
    return held
