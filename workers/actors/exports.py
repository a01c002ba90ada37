"""The export archive actor: thin. It hands the archive id to `pipelines.exports.store.build`.

Retries are the archive row's, not Dramatiq's (``max_retries=0``): a failed build is queued
again in the database and the scheduler sends it (`pipelines.exports.store.due`), as it
sends any build whose message was lost or whose process died.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dramatiq
from dramatiq import Broker
from sqlalchemy.orm import Session, sessionmaker

from pipelines.exports import store
from storage.interface import Storage
from workers.actors.enqueue import send_ids

QUEUE = "exports"
ACTOR = "build_export"
#: A big library takes a while to copy; the build's heartbeat, not Dramatiq, watches it.
TIME_LIMIT_MS = 6 * 3600 * 1000


def declare(
    broker: Broker, sessions: sessionmaker[Session], storage: Storage, policy: store.Policy, tmp_dir: Path
) -> dramatiq.Actor[[str], None]:
    def build_export(archive_id: str) -> None:
        store.build(sessions, storage, archive_id, policy, tmp_dir=tmp_dir)

    declared: dramatiq.Actor[[str], None] = dramatiq.actor(
        broker=broker, queue_name=QUEUE, actor_name=ACTOR, max_retries=0, time_limit=TIME_LIMIT_MS
    )(build_export)
    return declared


def send(broker: Broker, archive_ids: Sequence[str]) -> None:
    """Enqueue a build of each archive."""
    send_ids(broker, QUEUE, ACTOR, archive_ids)
