"""Request rate limits and running-job caps, shared by every process through Redis.

`RateLimiter` is a token bucket per key: a tenant may spend ``burst`` tokens at once,
then earns them back at ``per_minute``. `RunningSlots` caps how many of a tenant's jobs
run at the same time across all workers, with leases so that a worker that dies frees
its slots on its own.

Each decision is one Lua script, so it is atomic however many web and worker processes
share the Redis. Time comes from `faktry.clock` and is passed into the scripts as whole
microseconds since the epoch; Redis's own TIME is never used, so tests can move the
clock. Whole microseconds (not a float of seconds) keep intervals exact: two readings a
refill interval apart differ by exactly that interval, so "wait the Retry-After, then
try again" works to the microsecond. Every key lives under ``f"{namespace}:..."`` and
carries a PEXPIRE, so an idle tenant leaves nothing behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import redis

from faktry import clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def now_us() -> int:
    """The kernel clock in whole microseconds since the epoch (exact in a Lua double until 2255)."""
    return (clock.now() - _EPOCH) // _MICROSECOND


def _text(value: bytes | str) -> str:
    # Clients made with or without decode_responses both work.
    return value.decode() if isinstance(value, bytes) else value


def retry_after_header(delay: float) -> int:
    """The ``Retry-After`` value for a `RateLimiter.hit` delay: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(delay))


# A bucket is a hash of {tokens, ts} at one key. `spend` refills it to `now` (whole
# microseconds), then takes `cost` tokens if it holds them (a refill `interval` in us per
# token, at most `burst` tokens); it returns whether the bucket was short, the tokens left,
# the bucket's time and the seconds to wait when short. `budget` is `RateLimiter.take`'s
# answer: {allowed (1 or 0), tokens left, seconds until the bucket is full again, seconds to
# wait (0 when allowed)}, the numbers as strings (a Lua number would come back truncated).
_BUCKET = """
local function spend(key, now, interval, burst, cost)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = burst
  local ts = now
  if state[1] and state[2] then
    local last = tonumber(state[2])
    tokens = math.min(burst, tonumber(state[1]) + math.max(0, now - last) / interval)
    -- A clock that went back must not earn the same interval twice later.
    ts = math.max(now, last)
  end
  -- Fractional refills are floats; a billionth of a token is rounding, not a shortfall.
  local short = tokens + 1e-9 < cost
  local wait = (cost - tokens) * interval / 1e6
  if not short then
    tokens = math.max(0, tokens - cost)
    redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
    -- Once the bucket is full again the key says nothing a missing key would not.
    local full_in_ms = math.ceil((burst - tokens) * interval / 1000 + (ts - now) / 1000)
    redis.call('PEXPIRE', key, math.max(1, full_in_ms))
  end
  return short, tokens, ts, wait
end
local function budget(short, tokens, ts, now, interval, burst, wait)
  local full_in = (burst - tokens) * interval / 1e6 + (ts - now) / 1e6
  return {short and 0 or 1, string.format('%.17g', tokens), string.format('%.17g', full_in),
          string.format('%.17g', short and wait or 0)}
end
local function waited(short, wait)
  if short then return string.format('%.17g', wait) end
  return false
end
"""

# KEYS[1]: the bucket. ARGV: now (us), refill interval (us per token), burst, cost.
# Returns nil when the request is allowed (and spends its tokens), else the seconds to
# wait as a string.
_HIT = (
    _BUCKET
    + """
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local short, _, _, wait = spend(KEYS[1], now, interval, tonumber(ARGV[3]), tonumber(ARGV[4]))
return waited(short, wait)
"""
)

# The same KEYS and ARGV; returns `budget`.
_TAKE = (
    _BUCKET
    + """
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local short, tokens, ts, wait = spend(KEYS[1], now, interval, burst, tonumber(ARGV[4]))
return budget(short, tokens, ts, now, interval, burst, wait)
"""
)

# KEYS: 1 the budget's bucket (one token taken), 2 the bucket spent on top when the first
# allowed the call. ARGV: now (us), the first's interval and burst, the second's interval,
# burst and cost. Returns {the first's `budget`, the second's wait as `_HIT` answers it
# (nil when it was not asked)}.
_TAKE_THEN_HIT = (
    _BUCKET
    + """
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local short, tokens, ts, wait = spend(KEYS[1], now, interval, burst, 1)
local answer = budget(short, tokens, ts, now, interval, burst, wait)
if short then return {answer, false} end
local short2, _, _, wait2 = spend(KEYS[2], now, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
return {answer, waited(short2, wait2)}
"""
)


@dataclass(frozen=True)
class Budget:
    """Where a bucket stands after `RateLimiter.take`: what the ``RateLimit-*`` headers say."""

    allowed: bool
    #: The bucket's size: requests that may come at once.
    limit: int
    #: Whole requests left now.
    remaining: int
    #: Seconds (rounded up) until the bucket is full again; when refused, until the request
    #: would be allowed.
    reset: int


class RateLimiter:
    """Token buckets keyed by caller-chosen strings (``"submit:<tenant id>"``, say).

    Thread-safe and shared across processes: all state is in Redis, and each `hit` is one
    atomic script.
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._hit = client.register_script(_HIT)
        self._take = client.register_script(_TAKE)
        self._take_then_hit = client.register_script(_TAKE_THEN_HIT)

    def key(self, key: str) -> str:
        """The Redis key that holds the bucket for ``key``."""
        return f"{self._namespace}:ratelimit:{key}"

    def hit(self, key: str, *, per_minute: int, burst: int | None = None, cost: int = 1) -> float | None:
        """Spend ``cost`` tokens from ``key``'s bucket if it holds them.

        Returns None when the request is allowed (the tokens are spent), else the seconds
        until a request of the same cost would be allowed (nothing is spent). Send it as
        ``Retry-After`` through `retry_after_header`.

        The bucket holds ``burst`` tokens (default ``per_minute``: a minute's worth at
        once) and refills at ``per_minute`` tokens a minute. ``per_minute <= 0`` means
        unlimited: always None, without touching Redis.

        Raises ValueError when ``cost < 1``, ``burst < 1``, or ``cost > burst`` (such a
        request could never be allowed, and a Retry-After for it would be a lie).

        Raises ``redis.ConnectionError`` or ``redis.TimeoutError`` when Redis cannot be
        reached, and never guesses: each caller decides whether its limit fails open (a
        fast path, such as the submit rate, whose records live elsewhere) or closed (log-in
        throttling, which protects passwords).
        """
        args = _hit_args(per_minute, burst, cost)
        if args is None:
            return None
        return _wait(self._hit(keys=[self.key(key)], args=[now_us(), *args]))

    def take(self, key: str, *, per_minute: int) -> Budget:
        """Spend one token from ``key``'s bucket (``burst`` = ``per_minute``) if it holds
        one, and say where the bucket stands: for ``RateLimit-*`` headers on every answer.
        ``per_minute`` must be positive. Raises what `hit` raises when Redis is away."""
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive, not {per_minute}")
        answer = self._take(keys=[self.key(key)], args=[now_us(), _interval(per_minute), per_minute, 1])
        return _budget(answer, per_minute)

    def take_then_hit(
        self, key: str, *, per_minute: int, then: str, then_per_minute: int, cost: int = 1
    ) -> tuple[Budget, float | None]:
        """`take` on ``key``, then, when it allowed the call, `hit` on ``then`` (whose bucket
        holds ``then_per_minute`` tokens) with ``cost``: one round trip. Returns the budget
        and what `hit` answered (None as well when the budget refused the call: the caller
        looks at the budget first). Raises what `take` and `hit` raise."""
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive, not {per_minute}")
        args = _hit_args(then_per_minute, None, cost)
        if args is None:
            return self.take(key, per_minute=per_minute), None
        answer, wait = self._take_then_hit(
            keys=[self.key(key), self.key(then)],
            args=[now_us(), _interval(per_minute), per_minute, *args],
        )
        return _budget(answer, per_minute), _wait(wait)


def _hit_args(per_minute: int, burst: int | None, cost: int) -> list[str | int] | None:
    """A hit's interval, burst and cost for the scripts; None when the bucket is unlimited.
    Raises ValueError for a cost that could never be allowed."""
    if cost < 1:
        raise ValueError(f"cost must be at least 1, not {cost}")
    if per_minute <= 0:
        return None
    capacity = per_minute if burst is None else burst
    if capacity < 1:
        raise ValueError(f"burst must be at least 1, not {capacity}")
    if cost > capacity:
        raise ValueError(f"cost {cost} exceeds burst {capacity}: it could never be allowed")
    return [_interval(per_minute), capacity, cost]


def _interval(per_minute: int) -> str:
    """A bucket's refill interval for the scripts: microseconds per token, exactly."""
    return repr(60_000_000 / per_minute)


def _wait(answer: bytes | str | None) -> float | None:
    return None if answer is None else float(_text(answer))


def _budget(answer: list[bytes | str], per_minute: int) -> Budget:
    allowed, tokens, full_in, wait = answer
    ok = int(allowed) == 1
    return Budget(
        allowed=ok,
        limit=per_minute,
        remaining=math.floor(float(_text(tokens)) + 1e-9),
        reset=math.ceil(float(_text(full_in if ok else wait)) - 1e-9),
    )


# Leases: a sorted set per tenant, job id -> lease expiry (us). A member whose expiry is
# at or before now is dead. Both scripts below take KEYS[1] = the set and
# ARGV = now (us), job id, new expiry (us), [limit].
_PRUNE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
"""

# The key outlives its longest lease by nothing, so a tenant whose workers all died
# leaves no key behind once their leases are over.
_KEEP_UNTIL_LAST_LEASE = """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
"""

_ACQUIRE = (
    _PRUNE
    + """
local limit = tonumber(ARGV[4])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
  end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
"""
    + _KEEP_UNTIL_LAST_LEASE
    + "return 1\n"
)

_REFRESH = (
    _PRUNE
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
"""
    + _KEEP_UNTIL_LAST_LEASE
    + "return 1\n"
)


def _ttl_us(ttl_seconds: float) -> int:
    ttl = round(ttl_seconds * 1_000_000)
    if ttl <= 0:
        raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
    return ttl


class RunningSlots:
    """A per-tenant cap on concurrently running jobs, across every worker process.

    A slot is a lease: it lasts ``ttl_seconds`` from its last `acquire` or `refresh`.
    The worker running a job refreshes it more often than the ttl (a heartbeat) and
    releases it when the job ends; if the worker dies, the slot frees itself when the
    lease runs out. Expired leases never count, whether or not a script has pruned them
    yet.
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._acquire = client.register_script(_ACQUIRE)
        self._refresh = client.register_script(_REFRESH)

    def key(self, tenant_id: str) -> str:
        """The Redis key of ``tenant_id``'s sorted set of leases."""
        return f"{self._namespace}:running:{tenant_id}"

    def acquire(self, tenant_id: str, job_id: str, *, limit: int, ttl_seconds: float) -> bool:
        """Take a slot for ``job_id`` if the tenant has one free; True when it holds one.

        Atomically drops expired leases, then admits the job if it already holds a slot
        (re-entrant: its lease is renewed, even if ``limit`` has since dropped below the
        count) or if fewer than ``limit`` live jobs hold one. ``limit <= 0`` means
        unlimited, but the job is still recorded so `count` and `running` stay right.
        Raises ValueError when ``ttl_seconds`` is not positive.
        """
        now = now_us()
        expires = now + _ttl_us(ttl_seconds)
        return bool(self._acquire(keys=[self.key(tenant_id)], args=[now, job_id, expires, limit]))

    def refresh(self, tenant_id: str, job_id: str, ttl_seconds: float) -> bool:
        """Extend ``job_id``'s lease to ``ttl_seconds`` from now.

        Returns False, and takes nothing, when the job no longer holds a slot (it was
        released, or its lease ran out): the caller has lost its place and must acquire
        again, subject to the limit.
        """
        now = now_us()
        expires = now + _ttl_us(ttl_seconds)
        return bool(self._refresh(keys=[self.key(tenant_id)], args=[now, job_id, expires]))

    def release(self, tenant_id: str, job_id: str) -> None:
        """Give up ``job_id``'s slot. Releasing a slot that is not held does nothing."""
        self._client.zrem(self.key(tenant_id), job_id)

    def count(self, tenant_id: str) -> int:
        """How many of the tenant's jobs hold a live (unexpired) slot."""
        return int(self._client.zcount(self.key(tenant_id), f"({now_us()}", "+inf"))

    def running(self, tenant_id: str) -> list[str]:
        """The job ids holding a live slot, the lease that runs out first first."""
        # Without withscores the reply is a flat list of members; the stubs cover both shapes.
        members = cast(
            list[bytes | str], self._client.zrangebyscore(self.key(tenant_id), f"({now_us()}", "+inf")
        )
        return [_text(member) for member in members]
