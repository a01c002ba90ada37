"""Rate limits and running-job caps on this machine's real Redis, with the kernel clock moved."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis

from faktry import clock
from quotas.ratelimit import RateLimiter, RunningSlots, retry_after_header
from tests import services as svc

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def redis_client(redis_namespace: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(svc.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def limiter(redis_client: redis.Redis, redis_namespace: str) -> RateLimiter:
    return RateLimiter(redis_client, redis_namespace)


@pytest.fixture
def slots(redis_client: redis.Redis, redis_namespace: str) -> RunningSlots:
    return RunningSlots(redis_client, redis_namespace)


@pytest.fixture
def frozen() -> None:
    clock.freeze(START)


def namespace_keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{namespace}:*"))


# RateLimiter


def test_a_full_burst_is_allowed_then_the_next_hit_is_refused_with_one_interval_to_wait(limiter, frozen):
    results = [limiter.hit("submit:t1", per_minute=60, burst=3) for _ in range(4)]

    assert results[:3] == [None, None, None]
    assert results[3] == pytest.approx(1.0)  # one token a second at 60 a minute
    assert retry_after_header(results[3]) == 1


def test_burst_defaults_to_a_minutes_worth(limiter, frozen):
    results = [limiter.hit("submit:t1", per_minute=10) for _ in range(11)]

    assert results[:10] == [None] * 10
    assert results[10] == pytest.approx(6.0)


def test_a_refused_hit_spends_nothing(limiter, frozen):
    limiter.hit("k", per_minute=60, burst=1)

    first = limiter.hit("k", per_minute=60, burst=1)
    second = limiter.hit("k", per_minute=60, burst=1)

    assert first == second == pytest.approx(1.0)


def test_waiting_exactly_the_retry_after_is_enough_and_a_little_less_is_not(limiter, frozen):
    for _ in range(7):
        limiter.hit("k", per_minute=7)  # 60/7 s per token: not a round number
    wait = limiter.hit("k", per_minute=7)
    assert wait == pytest.approx(60 / 7)

    clock.advance(timedelta(seconds=wait) - timedelta(milliseconds=1))
    assert limiter.hit("k", per_minute=7) is not None
    clock.advance(timedelta(milliseconds=1))
    assert limiter.hit("k", per_minute=7) is None
    assert limiter.hit("k", per_minute=7) is not None


def test_the_bucket_refills_at_the_steady_rate_when_the_clock_moves(limiter, frozen):
    for _ in range(5):
        assert limiter.hit("k", per_minute=60, burst=5) is None
    assert limiter.hit("k", per_minute=60, burst=5) is not None

    clock.advance(timedelta(seconds=2))
    assert [limiter.hit("k", per_minute=60, burst=5) for _ in range(3)][:2] == [None, None]

    clock.advance(timedelta(minutes=10))  # refills to the burst, never beyond it
    results = [limiter.hit("k", per_minute=60, burst=5) for _ in range(6)]
    assert results[:5] == [None] * 5
    assert results[5] == pytest.approx(1.0)


def test_a_costly_request_waits_until_its_whole_cost_has_refilled(limiter, frozen):
    assert limiter.hit("k", per_minute=60, burst=10, cost=4) is None
    assert limiter.hit("k", per_minute=60, burst=10, cost=4) is None
    assert limiter.hit("k", per_minute=60, burst=10, cost=4) == pytest.approx(2.0)  # 2 left, 4 needed
    assert limiter.hit("k", per_minute=60, burst=10, cost=2) is None


def test_a_cost_that_could_never_be_allowed_is_an_error_not_a_retry_after(limiter):
    with pytest.raises(ValueError, match="exceeds burst"):
        limiter.hit("k", per_minute=60, burst=3, cost=4)
    with pytest.raises(ValueError, match="cost"):
        limiter.hit("k", per_minute=60, cost=0)


def test_two_keys_have_independent_buckets(limiter, frozen):
    assert limiter.hit("submit:a", per_minute=60, burst=1) is None
    assert limiter.hit("submit:a", per_minute=60, burst=1) is not None

    assert limiter.hit("submit:b", per_minute=60, burst=1) is None


def test_per_minute_zero_is_unlimited_and_never_touches_redis(limiter, redis_client, redis_namespace):
    assert all(limiter.hit("k", per_minute=0) is None for _ in range(1000))
    assert limiter.hit("k", per_minute=-1, cost=50) is None
    assert namespace_keys(redis_client, redis_namespace) == []

    # Nothing listens on this port: any Redis call would raise.
    unreachable = redis.Redis(port=svc.free_port(), socket_connect_timeout=0.5)
    try:
        assert RateLimiter(unreachable, redis_namespace).hit("k", per_minute=0) is None
    finally:
        unreachable.close()


def test_buckets_expire_once_they_would_be_full_again(limiter, redis_client, redis_namespace, frozen):
    limiter.hit("slow", per_minute=60, burst=3, cost=2)  # 2 tokens short: full in 2 s
    limiter.hit("fast", per_minute=6000, burst=1)  # full in 10 ms

    assert 1900 < redis_client.pttl(limiter.key("slow")) <= 2000
    assert 0 < redis_client.pttl(limiter.key("fast")) <= 10
    # No bucket lives forever (-1). The fast one may be gone already (-2) on a busy machine:
    # its 10 ms can pass between the hit and this look.
    lives = {key: redis_client.pttl(key) for key in namespace_keys(redis_client, redis_namespace)}
    assert all(ttl != -1 for ttl in lives.values()), lives


def test_eight_threads_sharing_a_frozen_minute_get_exactly_the_burst(limiter, frozen):
    start = threading.Barrier(8)

    def hammer(thread: int) -> list[float | None]:
        start.wait()
        return [limiter.hit("shared", per_minute=50, burst=50) for _ in range(25)]

    with ThreadPoolExecutor(8) as pool:
        results = [r for batch in pool.map(hammer, range(8)) for r in batch]

    assert len(results) == 200
    assert results.count(None) == 50
    refused = [r for r in results if r is not None]
    assert refused == [pytest.approx(1.2)] * 150  # the bucket is empty and the clock stands still


def test_retry_after_header_rounds_up_to_a_whole_second_and_is_at_least_one():
    assert retry_after_header(0.001) == 1
    assert retry_after_header(1.0) == 1
    assert retry_after_header(1.01) == 2
    assert retry_after_header(8.57) == 9


# RunningSlots


def test_acquire_admits_up_to_the_limit_and_refuses_the_next(slots, frozen):
    assert [slots.acquire("t1", f"job-{i}", limit=2, ttl_seconds=30) for i in range(3)] == [True, True, False]
    assert slots.count("t1") == 2
    assert slots.running("t1") == ["job-0", "job-1"]


def test_acquire_is_reentrant_and_renews_the_lease(slots, frozen):
    assert slots.acquire("t1", "a", limit=1, ttl_seconds=30)
    clock.advance(timedelta(seconds=20))
    assert slots.acquire("t1", "a", limit=1, ttl_seconds=30)  # holds it already: not a second slot
    assert slots.count("t1") == 1

    clock.advance(timedelta(seconds=20))  # 40 s after the first acquire, 20 after the renewal
    assert slots.running("t1") == ["a"]
    assert not slots.acquire("t1", "b", limit=1, ttl_seconds=30)


def test_a_holder_keeps_its_slot_when_the_limit_drops_below_the_count(slots, frozen):
    slots.acquire("t1", "a", limit=2, ttl_seconds=30)
    slots.acquire("t1", "b", limit=2, ttl_seconds=30)

    assert slots.acquire("t1", "a", limit=1, ttl_seconds=30)
    assert not slots.acquire("t1", "c", limit=1, ttl_seconds=30)


def test_release_frees_the_slot_for_another_job(slots, frozen):
    slots.acquire("t1", "a", limit=1, ttl_seconds=30)
    assert not slots.acquire("t1", "b", limit=1, ttl_seconds=30)

    slots.release("t1", "a")
    slots.release("t1", "a")  # a second release is harmless

    assert slots.count("t1") == 0
    assert slots.acquire("t1", "b", limit=1, ttl_seconds=30)
    assert slots.running("t1") == ["b"]


def test_a_slot_whose_worker_died_is_reclaimed_when_its_lease_runs_out(slots, frozen):
    slots.acquire("t1", "crashed", limit=1, ttl_seconds=30)
    clock.advance(timedelta(seconds=29))
    assert not slots.acquire("t1", "next", limit=1, ttl_seconds=30)

    clock.advance(timedelta(seconds=1))  # the lease ends at exactly 30 s

    assert slots.count("t1") == 0
    assert slots.acquire("t1", "next", limit=1, ttl_seconds=30)
    assert slots.running("t1") == ["next"]
    assert not slots.refresh("t1", "crashed", 30)  # it lost its place


def test_count_and_running_leave_out_expired_leases_before_anything_prunes_them(slots, frozen):
    slots.acquire("t1", "short", limit=0, ttl_seconds=10)
    slots.acquire("t1", "long", limit=0, ttl_seconds=60)

    clock.advance(timedelta(seconds=15))

    assert slots.count("t1") == 1
    assert slots.running("t1") == ["long"]


def test_refresh_keeps_a_running_job_alive_past_its_first_ttl(slots, frozen):
    slots.acquire("t1", "a", limit=1, ttl_seconds=30)
    for _ in range(5):
        clock.advance(timedelta(seconds=20))
        assert slots.refresh("t1", "a", 30)

    assert slots.running("t1") == ["a"]
    assert not slots.acquire("t1", "b", limit=1, ttl_seconds=30)


def test_refresh_of_a_job_without_a_slot_is_false_and_takes_nothing(slots, frozen):
    assert not slots.refresh("t1", "never-acquired", 30)
    slots.acquire("t1", "a", limit=1, ttl_seconds=30)
    slots.release("t1", "a")
    assert not slots.refresh("t1", "a", 30)

    assert slots.count("t1") == 0


def test_a_limit_of_zero_is_unlimited_but_still_counts(slots, frozen):
    assert all(slots.acquire("t1", f"job-{i}", limit=0, ttl_seconds=30) for i in range(25))
    assert slots.count("t1") == 25


def test_tenants_have_independent_slots(slots, frozen):
    assert slots.acquire("t1", "a", limit=1, ttl_seconds=30)
    assert not slots.acquire("t1", "b", limit=1, ttl_seconds=30)

    assert slots.acquire("t2", "b", limit=1, ttl_seconds=30)
    assert slots.count("t1") == slots.count("t2") == 1


def test_the_lease_set_expires_with_its_last_lease(slots, redis_client, frozen):
    slots.acquire("t1", "a", limit=0, ttl_seconds=5)
    slots.acquire("t1", "b", limit=0, ttl_seconds=20)
    slots.acquire("t1", "c", limit=0, ttl_seconds=10)

    assert 19_000 < redis_client.pttl(slots.key("t1")) <= 20_000


def test_a_bad_ttl_is_refused(slots):
    with pytest.raises(ValueError, match="ttl_seconds"):
        slots.acquire("t1", "a", limit=1, ttl_seconds=0)


def test_sixteen_threads_never_hold_more_than_the_limit_at_once(slots, frozen):
    limit = 3
    lock = threading.Lock()
    start = threading.Barrier(16)
    holders = 0
    peak = 0
    counts_seen: list[int] = []

    def worker(thread: int) -> tuple[int, int]:
        nonlocal holders, peak
        admitted = refused = 0
        start.wait()
        for i in range(60):
            job = f"job-{thread}-{i}"
            if not slots.acquire("t1", job, limit=limit, ttl_seconds=60):
                refused += 1
                continue
            admitted += 1
            # Counted after Redis admitted the job and uncounted before it is released,
            # so `holders` never exceeds the jobs Redis holds: above the limit is a bug.
            with lock:
                holders += 1
                peak = max(peak, holders)
            counts_seen.append(slots.count("t1"))
            with lock:
                holders -= 1
            slots.release("t1", job)
        return admitted, refused

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(worker, range(16)))

    assert 0 < peak <= limit
    assert max(counts_seen) <= limit
    assert sum(admitted for admitted, _ in outcomes) > 0
    assert sum(refused for _, refused in outcomes) > 0  # the threads really did contend
    assert slots.count("t1") == 0


def test_take_then_hit_spends_both_buckets_in_one_round_trip_as_take_and_hit_would(limiter, frozen):
    from tests.pipelines.test_job_path_cost import RoundTrips

    # The connection is open and the script loaded.
    limiter.take_then_hit("api:warm", per_minute=60, then="submit:warm", then_per_minute=2)
    trips = RoundTrips()
    with trips.counting(this_thread=True):
        budget, wait = limiter.take_then_hit("api:t", per_minute=60, then="submit:t", then_per_minute=2)
    assert trips.count == 1
    assert budget.allowed and budget.remaining == 59 and wait is None
    budget, wait = limiter.take_then_hit("api:t", per_minute=60, then="submit:t", then_per_minute=2)
    assert budget.remaining == 58 and wait is None
    # The submit bucket is empty: the call is within the budget (spent), the submit waits.
    budget, wait = limiter.take_then_hit("api:t", per_minute=60, then="submit:t", then_per_minute=2)
    assert budget.allowed and budget.remaining == 57
    assert wait == pytest.approx(30.0)
    # Exactly what `take` and `hit` say of the same buckets.
    assert limiter.take("api:t", per_minute=60).remaining == 56
    assert limiter.hit("submit:t", per_minute=2) == pytest.approx(30.0)


def test_take_then_hit_spends_nothing_on_top_when_the_budget_refuses(limiter, frozen):
    for _ in range(2):
        assert limiter.take("api:u", per_minute=2).allowed
    budget, wait = limiter.take_then_hit("api:u", per_minute=2, then="submit:u", then_per_minute=5, cost=3)
    assert not budget.allowed and budget.remaining == 0 and budget.reset == 30
    assert wait is None
    # The submit bucket was not touched: a whole burst is there.
    assert limiter.hit("submit:u", per_minute=5, cost=5) is None


def test_take_then_hit_with_an_unlimited_second_bucket_is_a_take(limiter, frozen):
    budget, wait = limiter.take_then_hit("api:v", per_minute=10, then="submit:v", then_per_minute=0)
    assert budget.allowed and budget.remaining == 9 and wait is None
    with pytest.raises(ValueError):
        limiter.take_then_hit("api:v", per_minute=10, then="submit:v", then_per_minute=2, cost=3)
