"""Idle Redis consumers that wait without polling, and wake within a millisecond or two.

Dramatiq's Redis consumer polls an empty queue again and again, up to ``worker_timeout``
apart (every 50 ms here): sixteen consumers per worker process (eight queues and their
delay queues) keep Redis and the process busy while nothing happens. `WakingRedisBroker`
makes them wait instead:

- every enqueue publishes the queue's name on ``<namespace>:wakeup`` (`WakeUps`, a
  middleware, so the web, the scheduler and the workers all do it; one ``PUBLISH`` per
  message, sent in the enqueue's own round trip, with the job's hand-over key when that
  lives in the same Redis: `WakingRedisBroker.add_rider`);
- each worker process holds one subscription (`WakeUpHub`, a thread started with the first
  consumer) and wakes that queue's consumers in the process: each wake-up costs one fetch
  per idle worker process consuming the queue;
- a consumer whose fetch found its queue empty waits for such a wake-up, for an ack that
  frees a place in its prefetch, or for ``idle_check_ms``, whichever comes first; a
  delay-queue consumer also wakes when the first delayed message it holds is due.

What polling did besides fetching is kept by the hub thread: every quarter of the broker's
heartbeat timeout it heartbeats the process and runs the broker's maintenance on each queue
consumed, so a dead worker's messages come back within the heartbeat timeout plus a
quarter of it, however quiet the queues. A wake-up can be lost only while the subscription
is down: the hub then wakes every consumer once it is back, consumers poll as Dramatiq's do
until it is, and ``idle_check_ms`` bounds anything else. While a worker shuts down its
consumers poll too, so it stops within ``worker_timeout`` as Dramatiq's would.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

import redis
from dramatiq import Broker, Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, dq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

log = logging.getLogger("faktry.workers")

#: The longest an idle consumer waits between two fetches when nothing wakes it.
DEFAULT_IDLE_CHECK_MS = 60_000


def channel(namespace: str) -> str:
    return f"{namespace}:wakeup"


class WakeUpHub:
    """One subscription per process; consumers register an event per queue."""

    def __init__(
        self, client: redis.Redis, namespace: str, beat: Callable[[str], object], beat_seconds: float
    ) -> None:
        self.client = client
        self.channel = channel(namespace)
        self.beat = beat
        self.beat_seconds = beat_seconds
        self.listening = False
        self.polling = False  # a worker is shutting down: consumers poll as Dramatiq's do
        self._events: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def register(self, queue: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events.setdefault(queue, set()).add(event)
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name="wake-ups", daemon=True)
                self._thread.start()
        return event

    def unregister(self, queue: str, event: threading.Event) -> None:
        with self._lock:
            self._events.get(queue, set()).discard(event)

    def wake(self, queue: str | None = None) -> None:
        """Wake the consumers of ``queue`` (every consumer when None)."""
        with self._lock:
            events = [e for q, es in self._events.items() if queue is None or q == queue for e in es]
        for event in events:
            event.set()

    def set_polling(self, polling: bool) -> None:
        self.polling = polling
        self.wake()

    def close(self) -> None:
        self._closed.set()
        self.wake()

    def _beat(self) -> None:
        """Heartbeat the process and run the broker's maintenance on each queue consumed."""
        with self._lock:
            queues = sorted(q for q, events in self._events.items() if events)
        for queue in queues:
            self.beat(queue)
            # Maintenance may have put a dead worker's messages back on the queue, and
            # nothing publishes that: let its consumers look once.
            self.wake(queue)

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                # Only once Redis confirms is nothing published missed.
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "subscribe":
                        break
                self.listening = True
                failures = 0
                self.wake()  # whatever was published while nobody listened
                next_beat = time.monotonic()
                while not self._closed.is_set():
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + self.beat_seconds
                        self._beat()
                    message = pubsub.get_message(timeout=max(0.0, next_beat - time.monotonic()))
                    if message is None:
                        continue
                    if message.get("type") == "message":
                        data = message["data"]
                        self.wake(data.decode() if isinstance(data, bytes) else str(data))
                    elif message.get("type") == "subscribe":  # subscribed again after a reconnect
                        self.wake()
            except (redis.RedisError, OSError):
                self.listening = False
                self.wake()  # consumers poll until the subscription is back
                failures += 1
                log.warning("wake-up subscription lost; consumers poll meanwhile", exc_info=failures == 1)
                self._closed.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
            finally:
                self.listening = False
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()


class WakeUps(Middleware):
    """Publishes each enqueued message's queue, and switches consumers to polling while a
    worker shuts down (so it stops within ``worker_timeout``, as Dramatiq's would)."""

    def __init__(self, client: redis.Redis, namespace: str, hub: WakeUpHub | None = None) -> None:
        self.client = client
        self.channel = channel(namespace)
        self.hub = hub

    #: Whether the broker sends the wake-up in the enqueue's own round trip (`ride`).
    riding = False

    def ride(self, pipe: Any, message: Message[Any], delay: int | None) -> None:
        pipe.publish(self.channel, message.queue_name)

    def after_enqueue(self, broker: Broker, message: Message[Any], delay: int | None) -> None:
        if self.riding:
            return
        try:
            self.client.publish(self.channel, message.queue_name)
        except redis.RedisError:
            # The message is in its queue all the same: an idle consumer finds it by its idle check.
            log.warning("could not publish a wake-up for %s", message.queue_name, exc_info=True)

    def before_worker_boot(self, broker: Broker, worker: Any) -> None:
        if self.hub is not None:
            self.hub.set_polling(False)

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        if self.hub is not None:
            self.hub.set_polling(True)


class WakingRedisBroker(RedisBroker):
    """Dramatiq's Redis broker whose consumers wait for wake-ups instead of polling."""

    def __init__(self, *, idle_check_ms: int = DEFAULT_IDLE_CHECK_MS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Every idle check heartbeats: keep four of them within the heartbeat timeout.
        self.idle_check_ms = max(1, idle_check_ms)
        # Four heartbeats within the heartbeat timeout.
        beat = functools.partial(self.fetch_with_maintenance, count=0)
        self.hub = WakeUpHub(self.client, self.namespace, beat, self.heartbeat_timeout / 4000)
        self._maintain = threading.local()
        self._riders: list[Any] = []

    def add_rider(self, middleware: Any) -> None:
        """Send ``middleware``'s after-enqueue commands (its ``ride(pipe, message, delay)``)
        in the enqueue's own round trip, after the message's; it is added as a middleware
        too, and its ``after_enqueue`` then does nothing. Only for commands meant for the
        broker's own Redis."""
        middleware.riding = True
        self._riders.append(middleware)
        self.add_middleware(middleware)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        """Dramatiq's enqueue (a new Redis message id per enqueue; a delayed message goes to
        the delay queue), with the riders' commands in the same round trip."""
        if not self._riders:
            return super().enqueue(message, delay=delay)
        (outcome,) = self.enqueue_all([message], delay=delay)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def enqueue_all(
        self, messages: Sequence[Message[Any]], *, delay: int | None = None
    ) -> list[Message[Any] | Exception]:
        """Enqueue ``messages`` in one round trip, each followed by its riders' commands.
        Returns each one's outcome, in order: the message as enqueued, or the error that kept
        it out of the broker (the others count all the same). When Redis has lost its
        scripts, each message is enqueued the way Dramatiq does, which loads the script, and
        its riders' commands are sent again after it."""
        ready = [self._prepared(message, delay) for message in messages]
        pipe = self.client.pipeline(transaction=False)
        at = []  # where each message's enqueue is among the pipeline's answers
        for message, queue_name in ready:
            at.append(len(pipe.command_stack))
            self._add_enqueue(pipe, message, queue_name)
            self._ride(pipe, message, delay)
        answers = pipe.execute(raise_on_error=False)
        enqueued = [answers[i] for i in at]
        taken = set(at)
        rode = [answer for i, answer in enumerate(answers) if i not in taken]
        again = [i for i, answer in enumerate(enqueued) if isinstance(answer, redis.exceptions.NoScriptError)]
        if again:
            # Redis lost its scripts (a restart, a flush): the riders again after the
            # messages, so each wake-up follows its message.
            pipe = self.client.pipeline(transaction=False)
            for i in again:
                message, queue_name = ready[i]
                try:
                    self.do_enqueue(queue_name, message.options["redis_message_id"], message.encode())
                    enqueued[i] = None
                except redis.RedisError as err:
                    enqueued[i] = err
                self._ride(pipe, message, delay)
            try:
                rode += pipe.execute(raise_on_error=False)
            except redis.RedisError as err:  # the messages are enqueued: not the caller's failure
                rode.append(err)
        for answer in rode:
            if isinstance(answer, Exception):
                # The message is with the broker all the same: a missing wake-up costs an idle
                # check, a missing hand-over key a resend the runner shrugs off.
                log.warning("a command sent with an enqueue failed: %s", answer)
        outcomes: list[Message[Any] | Exception] = []
        for (message, _), answer in zip(ready, enqueued, strict=True):
            if isinstance(answer, Exception):
                outcomes.append(answer)
            else:
                self.emit_after("enqueue", message, delay)
                outcomes.append(message)
        return outcomes

    def _ride(self, pipe: Any, message: Message[Any], delay: int | None) -> None:
        for rider in self._riders:
            rider.ride(pipe, message, delay)

    def _prepared(self, message: Message[Any], delay: int | None) -> tuple[Message[Any], str]:
        """The message as enqueued (its Redis message id, its eta when delayed) and the queue
        it goes to; the before-enqueue hooks have run."""
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid4())})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        self.emit_before("enqueue", message, delay)
        return message, queue_name

    def _add_enqueue(self, pipe: Any, message: Message[Any], queue_name: str) -> None:
        """Dramatiq's enqueue script call, added to ``pipe``."""
        pipe.evalsha(
            self.scripts["dispatch"].sha, 1, self.namespace, "enqueue", current_millis(), queue_name,
            self.broker_id, self.heartbeat_timeout, self.dead_message_ttl,
            self._should_do_maintenance("enqueue"), self._max_unpack_size(),
            message.options["redis_message_id"], message.encode(),
        )  # fmt: skip

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> _RedisConsumer:
        return WakingConsumer(self, queue_name, prefetch, timeout)

    def _should_do_maintenance(self, command: str) -> int:
        if getattr(self._maintain, "now", False):
            return 1
        return super()._should_do_maintenance(command)

    def fetch_with_maintenance(self, queue_name: str, count: int) -> list[bytes]:
        """Fetch up to ``count`` messages (0 is a heartbeat), running maintenance on the queue."""
        self._maintain.now = True
        try:
            return list(self.do_fetch(queue_name, count))
        finally:
            self._maintain.now = False

    def close(self) -> None:
        self.hub.close()
        super().close()


class WakingConsumer(_RedisConsumer):
    def __init__(self, broker: WakingRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.hub = broker.hub
        self.idle_check = broker.idle_check_ms / 1000
        self.event = self.hub.register(queue_name)
        self.etas: dict[str, float] = {}  # delayed messages handed out, not yet acked: id -> eta (ms)
        self.next_check = time.monotonic() + self._jittered()

    def _jittered(self) -> float:
        # Spread the idle checks of a process's consumers out.
        return self.idle_check * random.uniform(0.8, 1.0)

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)
        finally:
            self._done(message)

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)
        finally:
            self._done(message)

    def _done(self, message: MessageProxy) -> None:
        self.etas.pop(message.message_id, None)
        self.event.set()  # a place in the prefetch is free

    def close(self) -> None:
        self.hub.unregister(self.queue_name, self.event)
        super().close()

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    eta = message.options.get("eta")
                    if isinstance(eta, int | float):
                        self.etas[message.message_id] = float(eta)
                    return MessageProxy(message)
                if self.hub.polling or not self.hub.listening:
                    if self._poll():
                        continue
                    return None
                # Cleared before the fetch: a wake-up that arrives during it is not missed.
                self.event.clear()
                room = max(0, self.prefetch - self.outstanding_message_count)
                self.next_check = time.monotonic() + self._jittered()
                if room:
                    self.message_cache = self.broker.do_fetch(self.queue_name, room)
                    if self.message_cache:
                        continue
                self.event.wait(self._wait_seconds())
                return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def _wait_seconds(self) -> float:
        wait = max(0.0, self.next_check - time.monotonic())
        if self.etas:  # the thread moves a due delayed message to its queue when we return
            wait = min(wait, max(0.0, (min(list(self.etas.values())) - current_millis()) / 1000))
        return wait

    def _poll(self) -> bool:
        """Dramatiq's own loop: fetch, and back off up to ``worker_timeout`` when empty.
        True when it fetched something."""
        if self.outstanding_message_count < self.prefetch:
            self.message_cache = self.broker.do_fetch(
                self.queue_name, self.prefetch - self.outstanding_message_count
            )
            if self.message_cache:
                return True
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        time.sleep(backoff_ms / 1000)
        return False
