"""Worker middleware: small, one concern each."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from dramatiq import Broker
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from faktry import logs


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
