"""A circuit breaker per provider, shared by every worker through Redis.

When a provider fails ``failures`` times within ``window`` seconds, the breaker opens for
``cooldown`` seconds: jobs for that provider wait (they are not failed, and spend no
attempts) instead of burning themselves against an outage. After the cooldown the breaker is
half-open: the next call goes through; a success closes it, a failure opens it again at once.
Rate limits do not count as failures: they are the provider working as designed.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from faktry import clock


@dataclass(frozen=True)
class BreakerState:
    open: bool
    retry_in: float  # seconds until a call may be tried again (0 when closed)


class CircuitBreaker:
    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        failures: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.failures = failures
        self.window = window
        self.cooldown = cooldown

    def _key(self, provider: str, what: str) -> str:
        return f"{self.namespace}:breaker:{provider}:{what}"

    def state(self, provider: str) -> BreakerState:
        raw = self.client.get(self._key(provider, "open_until"))
        now = clock.now().timestamp()
        until = float(raw) if raw else 0.0
        return BreakerState(open=until > now, retry_in=max(0.0, until - now))

    def failure(self, provider: str) -> bool:
        """Count a failure; returns True when this failure opened the breaker."""
        now = clock.now().timestamp()
        fails, tripped = self._key(provider, "failures"), self._key(provider, "tripped")
        pipe = self.client.pipeline()
        pipe.zadd(fails, {f"{now}:{id(pipe)}": now})
        pipe.zremrangebyscore(fails, "-inf", now - self.window)
        pipe.zcard(fails)
        pipe.exists(tripped)
        pipe.expire(fails, int(self.window) + 1)
        _, _, count, half_open, _ = pipe.execute()
        if count >= self.failures or half_open:
            self._open(provider, now)
            return True
        return False

    def success(self, provider: str) -> None:
        self.client.delete(self._key(provider, "tripped"), self._key(provider, "failures"))

    def _open(self, provider: str, now: float) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._key(provider, "open_until"), str(now + self.cooldown), ex=int(self.cooldown) + 1)
        # Remembered past the cooldown: the first call after it decides (half-open).
        pipe.set(self._key(provider, "tripped"), "1", ex=int(self.cooldown + self.window) + 60)
        pipe.delete(self._key(provider, "failures"))
        pipe.execute()
