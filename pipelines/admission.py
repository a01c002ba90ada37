"""Fair admission: one tenant's backlog must not hold back another tenant's new job.

Dramatiq's queues are FIFO, so faktry does not put every job straight onto them. A job
is *offered* to the admission layer in Redis: a list per tenant and queue, and a
weighted-fair-queueing order over tenants (each admitted job moves its tenant's virtual
finish time on by ``1 / weight``, the tier's scheduling weight; a tenant that comes back
after idling starts at the current virtual time, so idling earns no credit). *Admitting*
moves jobs, fairest first, onto the Dramatiq queue while fewer than ``depth`` admitted jobs
wait there, so the real queue stays shallow and every worker has something to take: no
capacity idles while admissible work waits. Tenants at their tier's cap of running jobs are
passed over until a job of theirs finishes.

The share is per tenant, not per API key: splitting work across keys gains nothing.
Admission is pumped when a job is offered, when a worker starts or finishes one, and by
the reconciler; each pump is one atomic Lua script, safe from any number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from quotas.ratelimit import now_us

# KEYS: 1 tenants zset (score = virtual finish time), 2 weights hash, 3 caps hash,
#       4 inflight counter, 5 virtual clock, 6 sending zset (admitted, not yet sent)
# ARGV: 1 prefix for per-tenant lists, 2 depth, 3 max to admit, 4 now (whole microseconds, as
#       RunningSlots scores its leases), 5 running-set prefix
_ADMIT = """
local tenants, weights, caps = KEYS[1], KEYS[2], KEYS[3]
local inflight_key, vclock, sending = KEYS[4], KEYS[5], KEYS[6]
local list_prefix, running_prefix = ARGV[1], ARGV[5]
local depth, most, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local inflight = tonumber(redis.call('GET', inflight_key) or '0')
local admitted = {}
local passed = {}
while inflight < depth and #admitted < most do
  local order = redis.call('ZRANGE', tenants, 0, -1, 'WITHSCORES')
  local picked = nil
  local picked_score = nil
  for i = 1, #order, 2 do
    local tenant = order[i]
    if not passed[tenant] then
      local cap = tonumber(redis.call('HGET', caps, tenant) or '0')
      local running = 0
      if cap > 0 then
        running = redis.call('ZCOUNT', running_prefix .. tenant, '(' .. now, '+inf')
      end
      if cap <= 0 or running < cap then
        picked = tenant
        picked_score = tonumber(order[i + 1])
        break
      end
      passed[tenant] = true
    end
  end
  if not picked then break end
  local job_id = redis.call('LPOP', list_prefix .. picked)
  if not job_id then
    redis.call('ZREM', tenants, picked)
  else
    local weight = tonumber(redis.call('HGET', weights, picked) or '1')
    if weight <= 0 then weight = 1 end
    redis.call('SET', vclock, tostring(picked_score))
    if redis.call('LLEN', list_prefix .. picked) == 0 then
      redis.call('ZREM', tenants, picked)
      redis.call('HSET', weights, picked .. ':last', tostring(picked_score + 1 / weight))
    else
      redis.call('ZADD', tenants, picked_score + 1 / weight, picked)
    end
    inflight = inflight + 1
    redis.call('ZADD', sending, now, picked .. '|' .. job_id)
    table.insert(admitted, picked .. '|' .. job_id)
    -- A tenant at its cap counts the job it just got: look again next round.
    passed[picked] = nil
  end
end
redis.call('SET', inflight_key, tostring(inflight))
return admitted
"""

# KEYS: 1 tenants zset, 2 weights hash, 3 caps hash, 4 virtual clock, 5 tenant's list
# ARGV: 1 tenant, 2 weight, 3 cap, 4 job id
_OFFER = """
local tenants, weights, caps, vclock, list = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tenant, weight, cap, job_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('RPUSH', list, job_id)
redis.call('HSET', weights, tenant, weight)
redis.call('HSET', caps, tenant, cap)
if not redis.call('ZSCORE', tenants, tenant) then
  local now_v = tonumber(redis.call('GET', vclock) or '0')
  local last = tonumber(redis.call('HGET', weights, tenant .. ':last') or '0')
  local start = now_v
  if last > start then start = last end
  redis.call('ZADD', tenants, start, tenant)
end
return 1
"""


@dataclass(frozen=True)
class Admitted:
    tenant_id: str
    job_id: str


class Admission:
    def __init__(self, client: redis.Redis, namespace: str, *, depth: int, running_namespace: str) -> None:
        self.client: Any = client  # redis-py's return types are too loose to be useful here
        self.ns = f"{namespace}:admission"
        self.depth = depth
        # RunningSlots keeps each tenant's running jobs at ``<namespace>:running:<tenant>``.
        self.running_prefix = f"{running_namespace}:running:"
        self._offer = client.register_script(_OFFER)
        self._admit = client.register_script(_ADMIT)

    def _keys(self, queue: str) -> dict[str, str]:
        base = f"{self.ns}:{queue}"
        return {
            "tenants": f"{base}:tenants",
            "weights": f"{base}:weights",
            "caps": f"{base}:caps",
            "inflight": f"{base}:inflight",
            "vclock": f"{base}:vclock",
            "sending": f"{base}:sending",
            "list": f"{base}:t:",
        }

    def offer(self, queue: str, tenant_id: str, job_id: str, *, weight: int, cap: int) -> None:
        k = self._keys(queue)
        self._offer(
            keys=[k["tenants"], k["weights"], k["caps"], k["vclock"], k["list"] + tenant_id],
            args=[tenant_id, max(1, weight), cap, job_id],
        )

    def admit(self, queue: str, most: int = 1000) -> list[Admitted]:
        """Take the fairest waiting jobs while the queue has room; the caller sends them and
        then calls `sent`."""
        k = self._keys(queue)
        now = now_us()
        raw = self._admit(
            keys=[k["tenants"], k["weights"], k["caps"], k["inflight"], k["vclock"], k["sending"]],
            args=[k["list"], self.depth, most, now, self.running_prefix],
        )
        out = []
        for item in raw:
            tenant, _, job_id = _s(item).partition("|")
            out.append(Admitted(tenant, job_id))
        return out

    def sent(self, queue: str, admitted: Admitted) -> None:
        self.client.zrem(self._keys(queue)["sending"], f"{admitted.tenant_id}|{admitted.job_id}")

    def started(self, queue: str) -> None:
        """A worker took an admitted message off the queue: room for one more."""
        key = self._keys(queue)["inflight"]
        if self.client.decr(key) < 0:
            self.client.set(key, 0)

    def unsent(self, queue: str, older_than: float) -> list[Admitted]:
        """Admitted but never sent (the process died in between): to offer again."""
        k = self._keys(queue)
        cutoff = now_us() - int(older_than * 1_000_000)
        items = self.client.zrangebyscore(k["sending"], "-inf", cutoff)
        out = []
        for item in items:
            if self.client.zrem(k["sending"], item):
                tenant, _, job_id = _s(item).partition("|")
                out.append(Admitted(tenant, job_id))
        return out

    def resync(self, queue: str, inflight: int) -> None:
        """Set the admitted-and-waiting count from what the broker really holds."""
        self.client.set(self._keys(queue)["inflight"], max(0, inflight))

    def waiting(self, queue: str) -> int:
        k = self._keys(queue)
        tenants = [_s(t) for t in self.client.zrange(k["tenants"], 0, -1)]
        pipe = self.client.pipeline(transaction=False)
        for tenant in tenants:
            pipe.llen(k["list"] + tenant)
        return int(sum(pipe.execute()))

    def position(self, queue: str, tenant_id: str, job_id: str) -> int | None:
        """How many jobs admission will hand out before this one, by the fair order as it
        stands (None when the job is no longer waiting here)."""
        k = self._keys(queue)
        mine = k["list"] + tenant_id
        found = self.client.lpos(mine, job_id)
        if found is None or isinstance(found, list):
            return None
        index = int(found)
        weights = {_s(a): _s(b) for a, b in self.client.hgetall(k["weights"]).items()}
        own_weight = max(1.0, float(weights.get(tenant_id, "1")))
        scores = {_s(t): float(s) for t, s in self.client.zrange(k["tenants"], 0, -1, withscores=True)}
        my_score = scores.get(tenant_id, 0.0)
        my_finish = my_score + int(index) / own_weight  # virtual time at which this job is picked
        ahead = int(index)
        for tenant, score in scores.items():
            if tenant == tenant_id:
                continue
            weight = max(1.0, float(weights.get(tenant, "1")))
            # Jobs of that tenant whose virtual times come first.
            turns = 0 if score > my_finish else int((my_finish - score) * weight) + 1
            ahead += min(turns, int(self.client.llen(k["list"] + tenant)))
        return ahead


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AdmittingSender:
    """A `pipelines.services.Sender` that offers each job to fair admission, then admits
    what fits. Everything that dispatches a new job goes through here: submits, replays
    and the reconciler."""

    def __init__(self, broker_sender: Any, admission: Admission, sessions: Any, queues: list[str]) -> None:
        self.broker_sender = broker_sender
        self.admission = admission
        self.sessions = sessions
        self.queues = queues

    def send(self, queue: str, job_id: str) -> None:
        from faktry.db import transaction
        from faktry.tenancy import Tenant
        from pipelines.models import Job
        from quotas.limits import tier_limits

        with transaction(self.sessions) as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            tenant_id = job.tenant_id
            tenant = session.get(Tenant, tenant_id)
            limits = tier_limits(session, tenant.tier if tenant else "free")
        self.admission.offer(
            queue, tenant_id, job_id, weight=limits.scheduling_weight, cap=limits.max_concurrent_jobs
        )
        self.pump(queue)

    def pump(self, queue: str) -> int:
        admitted = self.admission.admit(queue)
        for item in admitted:
            self.broker_sender.send(queue, item.job_id, admitted=True)
            self.admission.sent(queue, item)
        return len(admitted)

    def pump_all(self) -> int:
        return sum(self.pump(queue) for queue in self.queues)
