"""An enqueue on the Redis broker is one round trip: the message, its wake-up and the job's
hand-over key go together (`WakingRedisBroker.add_rider`). Redis may lose its scripts at any
moment: the enqueue then still lands, with its key, and its wake-up follows the message.
Each test runs a redis-server of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq import Message

from faktry.config import Settings
from pipelines.admission import Admission, AdmittingSender
from pipelines.presence import key_prefix
from tests.pipelines.test_job_path_cost import RoundTrips
from tests.platform import PrivateRedis
from workers.broker import BrokerSender, make_broker
from workers.wakeup import WakingRedisBroker, channel

NAMESPACE = "trip-test"
QUEUE = "local.small"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with PrivateRedis(tmp_path) as server:
        yield server.url


@pytest.fixture
def broker(redis_url: str) -> Iterator[WakingRedisBroker]:
    b = make_broker(Settings(redis_url=redis_url, redis_namespace=NAMESPACE), redis_url)
    assert isinstance(b, WakingRedisBroker)
    yield b
    b.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def _wake_ups(pubsub: redis.client.PubSub, timeout: float = 2.0) -> list[bytes]:
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.05)
        if m and m["type"] == "message":
            got.append(m["data"])
        elif got:
            break
    return got


def _held(client: redis.Redis, job_id: str) -> tuple[bytes | None, bool]:
    """The job's hand-over key, and whether its message waits in the queue."""
    mark = client.get(key_prefix(NAMESPACE) + job_id)
    message_id = mark.decode()[2:] if mark else ""
    return mark, bool(client.hexists(f"{NAMESPACE}:{QUEUE}.msgs", message_id))


def test_a_job_is_enqueued_with_its_wake_up_and_hand_over_key_in_one_round_trip(broker, client):
    sender = BrokerSender(broker)
    sender.send(QUEUE, "job_warm")  # the dispatch script is loaded, the connection open
    pubsub = client.pubsub()
    pubsub.subscribe(channel(NAMESPACE))
    pubsub.get_message(timeout=1.0)  # the subscription's confirmation
    trips = RoundTrips()
    with trips.counting(this_thread=True):
        sender.send(QUEUE, "job_one")
    assert trips.count == 1, trips.sent
    mark, queued = _held(client, "job_one")
    assert mark is not None and queued
    assert _wake_ups(pubsub) == [QUEUE.encode()]
    pubsub.close()


def test_an_enqueue_after_redis_lost_its_scripts_lands_with_its_key_and_a_later_wake_up(broker, client):
    sender = BrokerSender(broker)
    sender.send(QUEUE, "job_warm")
    client.script_flush()
    pubsub = client.pubsub()
    pubsub.subscribe(channel(NAMESPACE))
    pubsub.get_message(timeout=1.0)
    sender.send(QUEUE, "job_after_flush")
    mark, queued = _held(client, "job_after_flush")
    assert mark is not None and queued
    # The first wake-up went out with the failed dispatch; the second follows the message.
    assert _wake_ups(pubsub) == [QUEUE.encode(), QUEUE.encode()]
    pubsub.close()


def test_a_delayed_message_goes_to_the_delay_queue_with_its_eta(broker, client):
    message = broker.enqueue(
        Message(queue_name=QUEUE, actor_name="run_job", args=("job_later",), kwargs={}, options={}),
        delay=60_000,
    )
    assert message.queue_name == f"{QUEUE}.DQ"
    assert message.options["eta"] > time.time() * 1000
    assert client.hexists(f"{NAMESPACE}:{QUEUE}.DQ.msgs", message.options["redis_message_id"])
    assert client.get(key_prefix(NAMESPACE) + "job_later") is not None


def test_with_the_broker_on_another_redis_the_hand_over_key_is_set_on_its_own(tmp_path, redis_url, client):
    (tmp_path / "broker").mkdir()
    with PrivateRedis(tmp_path / "broker") as other:
        settings = Settings(redis_url=redis_url, redis_namespace=NAMESPACE, broker_url=other.url)
        b = make_broker(settings, redis_url)
        try:
            BrokerSender(b).send(QUEUE, "job_elsewhere")
            assert client.get(key_prefix(NAMESPACE) + "job_elsewhere") is not None
            assert not client.exists(f"{NAMESPACE}:{QUEUE}.msgs")
            other_client = redis.Redis.from_url(other.url)
            assert other_client.hlen(f"{NAMESPACE}:{QUEUE}.msgs") == 1
            other_client.close()
        finally:
            b.close()


def _admitting(
    broker: WakingRedisBroker, client: redis.Redis, *, shares_redis: bool = True
) -> AdmittingSender:
    admission = Admission(client, NAMESPACE, depth=16, running_namespace=NAMESPACE)
    return AdmittingSender(BrokerSender(broker, shares_redis=shares_redis), admission, None, [QUEUE])


def _offer(sender: AdmittingSender, *job_ids: str) -> None:
    sender.admission.offer_many([(QUEUE, "tenant_a", job_id, 1, 0) for job_id in job_ids])


def test_the_jobs_a_pump_admits_go_out_in_one_round_trip_and_leave_sending(broker, client, redis_url):
    sender = _admitting(broker, client)
    _offer(sender, "job_warm")
    assert sender.pump(QUEUE) == 1  # the scripts are loaded, the connections open
    _offer(sender, "job_1", "job_2", "job_3")
    listener = redis.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    pubsub.subscribe(channel(NAMESPACE))
    pubsub.get_message(timeout=1.0)
    trips = RoundTrips()
    with trips.counting(this_thread=True):
        assert sender.pump(QUEUE) == 3
    # The admission script; the three enqueues with their keys and wake-ups; then their
    # removal from `sending`, once they are with the broker.
    assert trips.count == 3, [c[:60] for c in trips.sent]
    for job_id in ("job_1", "job_2", "job_3"):
        mark, queued = _held(client, job_id)
        assert mark is not None and queued
    assert client.zcard(sender.admission._keys(QUEUE)["sending"]) == 0
    assert _wake_ups(pubsub) == [QUEUE.encode()] * 3
    pubsub.close()
    listener.close()


def _two_admitted(broker: WakingRedisBroker, client: redis.Redis) -> tuple[AdmittingSender, list[Any]]:
    """A sender whose scripts are loaded (a first job sent), and two jobs admitted, not sent."""
    sender = _admitting(broker, client)
    _offer(sender, "job_warm")
    sender.pump(QUEUE)
    _offer(sender, "job_1", "job_2")
    return sender, sender.admission.admit(QUEUE)


def test_admitted_jobs_sent_after_redis_lost_its_scripts_land_once_and_leave_sending(broker, client):
    sender, admitted = _two_admitted(broker, client)
    client.script_flush()
    sender._send(QUEUE, admitted)
    for job_id in ("job_1", "job_2"):
        mark, queued = _held(client, job_id)
        assert mark is not None and queued
    assert client.hlen(f"{NAMESPACE}:{QUEUE}.msgs") == 3  # job_warm's and these two, once each
    assert client.zcard(sender.admission._keys(QUEUE)["sending"]) == 0


def test_with_the_broker_on_another_redis_admitted_jobs_leave_sending_on_their_own(
    tmp_path, redis_url, client
):
    (tmp_path / "broker").mkdir()
    with PrivateRedis(tmp_path / "broker") as other:
        settings = Settings(redis_url=redis_url, redis_namespace=NAMESPACE, broker_url=other.url)
        b = make_broker(settings, redis_url)
        assert isinstance(b, WakingRedisBroker)
        try:
            sender = _admitting(b, client, shares_redis=False)
            assert not sender.broker_sender.rides
            _offer(sender, "job_1", "job_2")
            assert sender.pump(QUEUE) == 2
            other_client = redis.Redis.from_url(other.url)
            assert other_client.hlen(f"{NAMESPACE}:{QUEUE}.msgs") == 2
            other_client.close()
            assert client.zcard(sender.admission._keys(QUEUE)["sending"]) == 0
        finally:
            b.close()


def test_an_admitted_job_whose_enqueue_redis_refuses_stays_in_sending_to_be_offered_again(broker, client):
    sender, admitted = _two_admitted(broker, client)
    # Out of memory with `noeviction`: Redis refuses every write, but lets removals through.
    client.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            sender._send(QUEUE, admitted)
    finally:
        client.config_set("maxmemory", 0)
    sending = sender.admission._keys(QUEUE)["sending"]
    assert client.zcard(sending) == 2
    assert client.hlen(f"{NAMESPACE}:{QUEUE}.msgs") == 1  # job_warm's only
    # The sweep offers them again, and they go out.
    again = sender.admission.unsent(QUEUE, older_than=0)
    assert sorted(item.job_id for item in again) == ["job_1", "job_2"]
