"""Fair admission: one tenant's backlog must not hold back another tenant's new job.

Dramatiq's queues are FIFO, so faktry does not put every job straight onto them. A job
is *offered* to the admission layer in Redis: a list per tenant and queue, and a
weighted-fair-queueing order over tenants (each admitted job moves its tenant's virtual
finish time on by ``1 / weight``, the tier's scheduling weight; a tenant that comes back
after idling starts at the current virtual time, so idling earns no credit). *Admitting*
moves jobs, fairest first, onto the Dramatiq queue while fewer than ``depth`` admitted jobs
wait there, so the real queue stays shallow and every worker has something to take: no
capacity idles while admissible work waits.

The share is per tenant, not per API key: splitting work across keys gains nothing.

Cost. Admitting one job costs the same with ten tenants holding backlog as with ten
thousand: the head of the fair order is always admissible, so each pick is one
``ZRANGE 0 0`` and a constant number of other O(log n) calls. A tenant found at its tier's
cap of running jobs (caps count running jobs across every queue) leaves the order for a
*capped* hash, keeping its virtual time, and returns with that time when:

- one of its jobs ends: the worker reports the job it just ran (`AdmittingSender.finished`),
  the script looks up the job's tenant (noted when it was admitted) and returns the tenant
  to every queue where it waits out its cap and is now under it; those other queues are
  then pumped as well, so a slot freed on one queue admits on another at once;
- a slot frees unreported (a running lease ran out because its worker died, a job ended
  while Redis was away, or ran longer than the hour its tenant note lives): each pump
  looks again at the `RECHECKS_PER_PUMP` capped tenants of its queue looked at longest
  ago, and the reconciler's sweep at all of them. With ``c`` tenants capped on a queue,
  such a tenant is back within ``c / RECHECKS_PER_PUMP`` pumps of that queue or one
  ``sweep_interval_seconds``, whichever comes first.

When admission runs. Each pump is one atomic Lua script, safe from any number of processes:

- an offer pumps its own queue (`AdmittingSender.send`);
- a worker that ran a job pumps only that job's queue, plus the queues where that job's
  tenant was waiting out its cap and no longer is (usually none): one script call per job;
- the reconciler pumps every queue (`AdmittingSender.pump_all`). That sweep is what admits
  on a queue whose room freed while nothing pumped it (a pump that failed while Redis was
  away), within ``sweep_interval_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import select

from faktry.redisconn import ScriptCall, first_error, scripts_in_one_trip
from pipelines import presence
from quotas.limits import TierCache, TierLimits
from quotas.ratelimit import now_us

#: How many capped tenants an ordinary pump looks at again, those looked at longest ago
#: first (the reconciler's sweep looks at all of them).
RECHECKS_PER_PUMP = 2

# Shared by both scripts: is a tenant at its cap, when to look at a capped tenant again,
# and how a tenant returns to a queue's fair order.
_CAPS = """
local function running(tenant)
  return redis.call('ZCOUNT', running_prefix .. tenant, '(' .. now, '+inf')
end
local function cap_of(caps_key, tenant)
  return tonumber(redis.call('HGET', caps_key, tenant) or '0')
end
local function at_cap(caps_key, tenant)
  local cap = cap_of(caps_key, tenant)
  return cap > 0 and running(tenant) >= cap
end
local function release(q, tenant)
  local qb = base .. q .. ':'
  local score = redis.call('HGET', qb .. 'capped', tenant)
  redis.call('HDEL', qb .. 'capped', tenant)
  redis.call('ZREM', qb .. 'recheck', tenant)
  redis.call('SREM', base .. 'capped-in:' .. tenant, q)
  if score then redis.call('ZADD', qb .. 'tenants', score, tenant) end
end
"""

# KEYS: 1 tenants zset (score = virtual finish time), 2 weights hash, 3 caps hash,
#       4 inflight counter, 5 virtual clock, 6 sending zset (admitted, not yet sent),
#       7 capped hash (tenant -> virtual time it left the order with), 8 recheck zset
#       (capped tenant -> when it was last looked at, microseconds)
# ARGV: 1 prefix for per-tenant lists, 2 depth, 3 max to admit, 4 now (whole microseconds, as
#       RunningSlots scores its leases), 5 running-set prefix, 6 hand-over key prefix
#       (pipelines/presence.py), 7 its lifetime in seconds, 8 the queue, 9 the admission
#       prefix (``<namespace>:admission:``), 10 the job that just ended here ('' for none),
#       11 the last index of the capped tenants to look at again (-1: all), 12 the tenant
#       whose running slot the ended job gives up here ('' for none)
# Returns {admitted ('tenant|job' each), other queues where the ended job's tenant returned}.
_ADMIT = (
    """
local tenants, weights, caps = KEYS[1], KEYS[2], KEYS[3]
local inflight_key, vclock, sending = KEYS[4], KEYS[5], KEYS[6]
local capped, recheck = KEYS[7], KEYS[8]
local list_prefix, running_prefix = ARGV[1], ARGV[5]
local presence_prefix, presence_ttl = ARGV[6], ARGV[7]
local depth, most, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local queue, base, ended = ARGV[8], ARGV[9], ARGV[10]
local looks = tonumber(ARGV[11])
"""
    + _CAPS
    + """
-- The ended job's running slot, given up here (`RunningSlots.release`) before caps are counted.
if ARGV[12] ~= '' then redis.call('ZREM', running_prefix .. ARGV[12], ended) end
-- A job ended: its tenant may be under its cap again wherever it waits it out.
local others = {}
if ended ~= '' then
  local owner = redis.call('GET', base .. 'owner:' .. ended)
  if owner then
    for _, q in ipairs(redis.call('SMEMBERS', base .. 'capped-in:' .. owner)) do
      if not at_cap(base .. q .. ':caps', owner) then
        release(q, owner)
        if q ~= queue then table.insert(others, q) end
      end
    end
  end
end
-- The capped tenants looked at longest ago: a slot freed unreported (a lease ran out, a
-- job ended while Redis was away) is seen after a bounded number of pumps.
for _, tenant in ipairs(redis.call('ZRANGE', recheck, 0, looks)) do
  if at_cap(caps, tenant) then
    redis.call('ZADD', recheck, now, tenant)
  else
    release(queue, tenant)
  end
end
local inflight = tonumber(redis.call('GET', inflight_key) or '0')
local admitted = {}
-- Running jobs do not change during the script: a tenant under its cap stays under it.
local under = {}
while inflight < depth and #admitted < most do
  local head = redis.call('ZRANGE', tenants, 0, 0, 'WITHSCORES')
  if #head == 0 then break end
  local picked, picked_score = head[1], tonumber(head[2])
  local cap = cap_of(caps, picked)
  if not under[picked] and cap > 0 and running(picked) >= cap then
    -- Out of the order until one of its jobs ends or a lease runs out: the head stays admissible.
    redis.call('ZREM', tenants, picked)
    redis.call('HSET', capped, picked, head[2])
    redis.call('ZADD', recheck, now, picked)
    redis.call('SADD', base .. 'capped-in:' .. picked, queue)
  else
    under[picked] = true
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
      redis.call('SET', presence_prefix .. job_id, 's', 'EX', presence_ttl)
      -- Whose job it is, for when it ends: only a capped tier can be waiting out its cap.
      if cap > 0 then
        redis.call('SET', base .. 'owner:' .. job_id, picked, 'EX', presence_ttl)
      end
      table.insert(admitted, picked .. '|' .. job_id)
    end
  end
end
redis.call('SET', inflight_key, tostring(inflight))
return {admitted, others}
"""
)

# KEYS: 1 tenants zset, 2 weights hash, 3 caps hash, 4 virtual clock, 5 tenant's list,
#       6 the job's hand-over key (pipelines/presence.py), 7 capped hash, 8 recheck zset
# ARGV: 1 tenant, 2 weight, 3 cap, 4 job id, 5 the hand-over key's lifetime in seconds
_OFFER = """
local tenants, weights, caps, vclock, list = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local capped, recheck = KEYS[7], KEYS[8]
local tenant, weight, cap, job_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('RPUSH', list, job_id)
redis.call('SET', KEYS[6], 'a', 'EX', ARGV[5])
redis.call('HSET', weights, tenant, weight)
local old_cap = redis.call('HGET', caps, tenant)
redis.call('HSET', caps, tenant, cap)
if redis.call('HEXISTS', capped, tenant) == 1 then
  -- Waiting out its cap. A new cap (another tier) is looked at by the next pump.
  if old_cap ~= cap then redis.call('ZADD', recheck, 0, tenant) end
elseif not redis.call('ZSCORE', tenants, tenant) then
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
        self.presence_prefix = presence.key_prefix(namespace)
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
            "capped": f"{base}:capped",
            "recheck": f"{base}:recheck",
            "list": f"{base}:t:",
        }

    def offer(self, queue: str, tenant_id: str, job_id: str, *, weight: int, cap: int) -> None:
        self.offer_many([(queue, tenant_id, job_id, weight, cap)])

    def offer_many(self, offers: Sequence[tuple[str, str, str, int, int]]) -> None:
        """Offer ``(queue, tenant, job, weight, cap)`` items in one round trip."""
        first_error(scripts_in_one_trip(self.client, [self._offer_call(*offer) for offer in offers]))

    def offer_and_admit(
        self, offers: Sequence[tuple[str, str, str, int, int]], queues: Sequence[str]
    ) -> tuple[dict[str, list[Admitted]], Exception | None]:
        """`offer_many`, then `admit` on each of ``queues``, all in one round trip. Returns
        what was admitted, which the caller sends (it waits in ``sending`` meanwhile), and
        the first error, which the caller raises once it has sent them."""
        calls = [self._offer_call(*offer) for offer in offers]
        calls += [self._admit_call(queue, 1000, ended="", looks=RECHECKS_PER_PUMP - 1) for queue in queues]
        reloaded: list[int] = []
        answers = scripts_in_one_trip(self.client, calls, reloaded=reloaded)
        admitted: dict[str, list[Admitted]] = {}
        for queue, answer in zip(queues, answers[len(offers) :], strict=True):
            if not isinstance(answer, Exception):
                admitted[queue] = _admitted(answer)[0]
        if any(i < len(offers) for i in reloaded):
            # An offer landed after its queue's pump (Redis had lost the script): pump again.
            for queue in queues:
                admitted.setdefault(queue, []).extend(self.admit(queue))
        error = next((answer for answer in answers if isinstance(answer, Exception)), None)
        return admitted, error

    def _offer_call(self, queue: str, tenant_id: str, job_id: str, weight: int, cap: int) -> ScriptCall:
        k = self._keys(queue)
        keys = [
            k["tenants"], k["weights"], k["caps"], k["vclock"], k["list"] + tenant_id,
            self.presence_prefix + job_id, k["capped"], k["recheck"],
        ]  # fmt: skip
        return self._offer, keys, [tenant_id, max(1, weight), cap, job_id, presence.TTL_SECONDS]

    def admit(self, queue: str, most: int = 1000, *, look_at_all: bool = False) -> list[Admitted]:
        """Take the fairest waiting jobs while the queue has room; the caller sends them and
        then calls `sent`. ``look_at_all`` looks again at every tenant waiting out its cap
        (the reconciler's sweep), not only the few looked at longest ago."""
        admitted, _ = self._run(queue, most, ended="", looks=-1 if look_at_all else RECHECKS_PER_PUMP - 1)
        return admitted

    def admit_after(
        self, queue: str, job_id: str, most: int = 1000, *, slot_of: str | None = None
    ) -> tuple[list[Admitted], list[str]]:
        """`admit` after ``job_id`` ended on ``queue`` (or went back to wait), first giving up
        its running slot when ``slot_of`` names its tenant (`quotas.ratelimit.RunningSlots`).
        Also returns the other queues where its tenant was waiting out its cap and now is
        under it: the caller pumps those too."""
        return self._run(queue, most, ended=job_id, looks=RECHECKS_PER_PUMP - 1, slot_of=slot_of or "")

    def _run(
        self, queue: str, most: int, *, ended: str, looks: int, slot_of: str = ""
    ) -> tuple[list[Admitted], list[str]]:
        script, keys, args = self._admit_call(queue, most, ended=ended, looks=looks, slot_of=slot_of)
        return _admitted(script(keys=keys, args=args))

    def _admit_call(self, queue: str, most: int, *, ended: str, looks: int, slot_of: str = "") -> ScriptCall:
        k = self._keys(queue)
        keys = [
            k["tenants"], k["weights"], k["caps"], k["inflight"], k["vclock"], k["sending"], k["capped"],
            k["recheck"],
        ]  # fmt: skip
        args = [
            k["list"], self.depth, most, now_us(), self.running_prefix, self.presence_prefix,
            presence.TTL_SECONDS, queue, f"{self.ns}:", ended, looks, slot_of,
        ]  # fmt: skip
        return self._admit, keys, args

    def sent(self, queue: str, *admitted: Admitted) -> None:
        """The admitted jobs are with the broker: no longer waiting to be sent."""
        members = [f"{item.tenant_id}|{item.job_id}" for item in admitted]
        self.client.zrem(self._keys(queue)["sending"], *members)

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

    def forget_tenant(self, tenant_id: str, queues: Sequence[str]) -> None:
        """Remove what admission keeps about a tenant whose account was deleted: its waiting
        lists, its place in each queue's fair order, its weight, cap and capped state, and its
        admitted entries not yet sent. One MULTI, so no pump sees half of it; the jobs it
        drops were canceled and deleted with the account."""
        pipe = self.client.pipeline(transaction=True)
        for queue in queues:
            k = self._keys(queue)
            pipe.delete(k["list"] + tenant_id)
            pipe.zrem(k["tenants"], tenant_id)
            pipe.hdel(k["weights"], tenant_id, f"{tenant_id}:last")
            pipe.hdel(k["caps"], tenant_id)
            pipe.hdel(k["capped"], tenant_id)
            pipe.zrem(k["recheck"], tenant_id)
        pipe.delete(f"{self.ns}:capped-in:{tenant_id}")
        pipe.execute()
        for queue in queues:
            sending = self._keys(queue)["sending"]
            unsent = [member for member, _ in self.client.zscan_iter(sending, match=f"{tenant_id}|*")]
            if unsent:
                self.client.zrem(sending, *unsent)

    def capped(self, queue: str) -> set[str]:
        """The tenants with jobs waiting here that wait out their running-job cap."""
        return {_s(t) for t in self.client.hkeys(self._keys(queue)["capped"])}

    def waiting(self, queue: str) -> int:
        k = self._keys(queue)
        tenants = [_s(t) for t in self.client.zrange(k["tenants"], 0, -1)] + sorted(self.capped(queue))
        pipe = self.client.pipeline(transaction=False)
        for tenant in tenants:
            pipe.llen(k["list"] + tenant)
        return int(sum(pipe.execute()))

    def position(self, queue: str, tenant_id: str, job_id: str) -> int | None:
        """How many jobs admission will hand out before this one, by the fair order as it
        stands (None when the job is no longer waiting here). Tenants waiting out their cap
        count with the virtual time they return with."""
        k = self._keys(queue)
        found = self.client.lpos(k["list"] + tenant_id, job_id)
        if found is None or isinstance(found, list):
            return None
        index = int(found)
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(k["tenants"], tenant_id)
        pipe.hget(k["capped"], tenant_id)
        pipe.hget(k["weights"], tenant_id)
        score, capped_score, weight = pipe.execute()
        my_score = float(score if score is not None else capped_score or 0.0)
        my_finish = my_score + index / max(1.0, float(weight or 1))  # virtual time at which it is picked
        # Only tenants whose virtual time comes first can have jobs ahead of it.
        rivals = {
            _s(t): float(s)
            for t, s in self.client.zrangebyscore(k["tenants"], "-inf", my_finish, withscores=True)
        }
        for t, s in self.client.hgetall(k["capped"]).items():
            if float(s) <= my_finish:
                rivals[_s(t)] = float(s)
        rivals.pop(tenant_id, None)
        names = list(rivals)
        if not names:
            return index
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(k["weights"], names)
        for tenant in names:
            pipe.llen(k["list"] + tenant)
        weights, *lengths = pipe.execute()
        ahead = index
        for tenant, w, length in zip(names, weights, lengths, strict=True):
            turns = int((my_finish - rivals[tenant]) * max(1.0, float(w or 1))) + 1
            ahead += min(turns, int(length))
        return ahead


def _admitted(answer: Any) -> tuple[list[Admitted], list[str]]:
    """The admission script's answer: who was admitted, and the other queues to pump."""
    raw, others = answer
    return [Admitted(*_s(item).split("|", 1)) for item in raw], [_s(q) for q in others]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AdmittingSender:
    """A `pipelines.services.Sender` that offers each job to fair admission, then admits
    what fits. Everything that dispatches a new job goes through here: submits, replays
    and the reconciler."""

    def __init__(
        self, broker_sender: Any, admission: Admission, sessions: Any, queues: list[str], tiers: Any = None
    ) -> None:
        self.broker_sender = broker_sender
        self.admission = admission
        self.sessions = sessions
        self.queues = queues
        self.tiers = tiers if tiers is not None else TierCache()

    def send(self, queue: str, job_id: str) -> None:
        """Offer a job known by its id alone (the reconciler's resends)."""
        from faktry.db import transaction
        from pipelines.models import Job

        with transaction(self.sessions) as session:
            tenant_id = session.scalar(select(Job.tenant_id).where(Job.id == job_id))
        if tenant_id is not None:
            self.send_jobs([(queue, job_id, tenant_id)])

    def send_jobs(self, jobs: Sequence[tuple[str, str, str]]) -> None:
        """Offer committed ``(queue, job id, tenant id)`` jobs and admit what fits on each
        queue they went to, in one round trip; then send what was admitted. Tier limits come
        from the tier cache."""
        limits = {tenant_id: self._limits(tenant_id) for _, _, tenant_id in jobs}
        offers = [
            (
                queue,
                tenant_id,
                job_id,
                limits[tenant_id].scheduling_weight,
                limits[tenant_id].max_concurrent_jobs,
            )
            for queue, job_id, tenant_id in jobs
        ]
        admitted, error = self.admission.offer_and_admit(
            offers, list(dict.fromkeys(queue for queue, _, _ in jobs))
        )
        for queue, items in admitted.items():
            self._send(queue, items)
        if error is not None:
            raise error

    def _limits(self, tenant_id: str) -> TierLimits:
        from faktry.db import transaction

        cached = self.tiers.cached(tenant_id)
        if cached is not None:
            return cached
        with transaction(self.sessions) as session:
            return self.tiers.limits(session, tenant_id)

    def pump(self, queue: str) -> int:
        return self._send(queue, self.admission.admit(queue))

    def finished(self, queue: str, job_id: str, *, slot_of: str | None = None) -> int:
        """A worker is done with a delivery of ``job_id`` from ``queue``: its place on the
        queue and perhaps its tenant's running slot are free (``slot_of``: the tenant whose
        slot it gives up, in the same round trip). Pumps that queue, and the queues where the
        tenant was waiting out its cap (see the module's docstring)."""
        admitted, others = self.admission.admit_after(queue, job_id, slot_of=slot_of)
        count = self._send(queue, admitted)
        for other in others:
            count += self.pump(other)
        return count

    def pump_all(self) -> int:
        """Every queue, looking at every due capped tenant: the reconciler's sweep."""
        return sum(self._send(queue, self.admission.admit(queue, look_at_all=True)) for queue in self.queues)

    def _send(self, queue: str, admitted: list[Admitted]) -> int:
        """Enqueue what was admitted (in one round trip when the broker is admission's Redis),
        then take what the broker holds out of ``sending``: a job whose enqueue failed stays
        there, and is offered again after a while (`unsent`). The first error is raised once
        the others are sent."""
        if not admitted:
            return 0
        if getattr(self.broker_sender, "rides", False):
            errors = self.broker_sender.send_admitted(queue, [item.job_id for item in admitted])
            sent = [item for item, error in zip(admitted, errors, strict=True) if error is None]
            if sent:
                self.admission.sent(queue, *sent)
            failed = next((error for error in errors if error is not None), None)
            if failed is not None:
                raise failed
            return len(sent)
        for item in admitted:
            self.broker_sender.send(queue, item.job_id, admitted=True)
            self.admission.sent(queue, item)
        return len(admitted)

    def present(self, jobs: Sequence[tuple[str, str]]) -> set[str]:
        """Which of these queued jobs wait in admission or in the broker (see
        `pipelines.presence`)."""
        present = getattr(self.broker_sender, "present", None)
        return {job_id for job_id, _ in jobs} if present is None else set(present(jobs))
