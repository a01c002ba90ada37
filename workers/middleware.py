"""Worker middleware: small, one concern each."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
from dramatiq import Broker, Message
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from sqlalchemy.orm import Session, sessionmaker

from faktry import logs
from pipelines import tempfiles
from pipelines.presence import Presence

log = logging.getLogger("faktry.workers")


class JobLogContext(Middleware):
    """Every log line written while a message is processed names its job and queue (and,
    once the runner knows it, its tenant)."""

    def __init__(self) -> None:
        self._tokens: dict[str, contextvars.Token[Mapping[str, str]]] = {}

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        job_id = str(message.args[0]) if message.args else None
        self._tokens[message.message_id] = logs.enter(job_id=job_id, queue=message.queue_name)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._leave(message)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._leave(message)

    def _leave(self, message: MessageProxy) -> None:
        token = self._tokens.pop(message.message_id, None)
        if token is not None:
            logs.leave(token)


class HandOverKeys(Middleware):
    """Notes which broker message now holds a job, each time one is enqueued: a first send,
    a retry, a delayed copy, or a delayed message moved to its queue (see
    `pipelines.presence`). With the Redis broker each enqueue gets a new message id."""

    def __init__(self, presence: Presence, actor_name: str) -> None:
        self.presence = presence
        self.actor_name = actor_name

    #: Whether the broker sets the key in the enqueue's own round trip (`ride`): only when
    #: the keys live in the broker's Redis.
    riding = False

    def ride(self, pipe: Any, message: Message[Any], delay: int | None) -> None:
        if message.actor_name == self.actor_name and message.args:
            self.presence.handed_to_broker(str(message.args[0]), _message_id(message), client=pipe)

    def after_enqueue(self, broker: Broker, message: Message[Any], delay: int | None) -> None:
        if self.riding or message.actor_name != self.actor_name or not message.args:
            return
        message_id = _message_id(message)
        try:
            self.presence.handed_to_broker(str(message.args[0]), message_id)
        except redis.RedisError:
            # The message is with the broker all the same. Without its key the reconciler
            # takes the job for lost and sends it once more, which the runner shrugs off.
            log.warning("could not note the hand-over of %s", message.args[0], exc_info=True)


def _message_id(message: Message[Any]) -> str:
    return str(message.options.get("redis_message_id") or message.message_id)


class SweepTempAtBoot(Middleware):
    """A worker process that starts removes the temp folders of attempts that no longer run
    (a predecessor killed with SIGKILL leaves its folder behind; see `pipelines.tempfiles`)."""

    def __init__(self, sessions: sessionmaker[Session], tmp_dir: Path, idle_seconds: float) -> None:
        self.sessions = sessions
        self.tmp_dir = tmp_dir
        self.idle_seconds = idle_seconds

    def after_process_boot(self, broker: Broker) -> None:
        try:
            tempfiles.sweep(self.sessions, self.tmp_dir, idle_seconds=self.idle_seconds)
        except Exception:  # the scheduler sweeps too; a worker must start whatever happens here
            log.warning("could not sweep the temp folder at start", exc_info=True)
