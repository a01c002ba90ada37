"""Counters shared by every web and worker process, kept in Redis, rendered for Prometheus.

A process-local registry would show one process's view; these counters live in Redis, so
whichever web process ``/metrics`` hits reports the whole platform.

Counting never calls Redis. Each process adds its counts up in memory, per namespace, and a
background thread writes them in one pipeline: at once when nothing was written during the
last ``flush_seconds`` (1 s), else at the end of that interval, so a process writes at most
once per interval however many jobs it runs. What cannot be written (Redis away) is kept
and written with the next flush, so no count is lost while Redis is down; only a process
that is killed loses its last interval. `Metrics.read` writes its own process's counts
first; another process's last interval may show up to ``flush_seconds`` late.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterable

import redis

log = logging.getLogger("faktry.metrics")

BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

#: The shortest time between two writes of one process's counts, by default.
FLUSH_SECONDS = 1.0


class Metrics:
    def __init__(self, client: redis.Redis, namespace: str, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.client = client
        self.ns = f"{namespace}:metrics"
        self._pending = _pending_for(self.ns, client, flush_seconds)

    def job_finished(self, job_type: str, status: str, seconds: float | None) -> None:
        counts: dict[tuple[str, str], float] = {("jobs_total", f"{job_type}|{status}"): 1}
        if seconds is not None and seconds >= 0:
            name = f"duration:{job_type}"
            for bound in BUCKETS:
                if seconds <= bound:
                    counts[(name, str(bound))] = 1
            counts[(name, "+Inf")] = 1
            counts[(name, "sum")] = float(seconds)
        self._pending.add(counts)

    def job_created(self, job_type: str) -> None:
        self._pending.add({("jobs_total", f"{job_type}|created"): 1})

    def provider_error(self, provider: str, code: str) -> None:
        self._pending.add({("provider_errors", f"{provider}|{code}"): 1})

    def dependency_error(self, process: str, dependency: str) -> None:
        """A dependency (``database``, ``redis``, ``broker``) failed a call of ``process``.

        The dependency that failed may be Redis itself: like every count, it is kept
        in-process until a flush gets through."""
        self._pending.add({("dependency_errors", f"{process}|{dependency}"): 1})

    def process_restart(self, process: str) -> None:
        """A supervisor started ``process`` again after it exited."""
        self._pending.add({("process_restarts", process): 1})

    def flush(self) -> None:
        """Write this process's counts now (the background thread does it by itself);
        never raises: what Redis does not take is kept for the next flush."""
        self._pending.flush()

    def read(self) -> dict[str, dict[str, float]]:
        self.flush()
        out: dict[str, dict[str, float]] = {}
        for name in ("jobs_total", "provider_errors", "dependency_errors", "process_restarts"):
            raw = self.client.hgetall(f"{self.ns}:{name}")
            out[name] = {_s(k): float(v) for k, v in raw.items()}
        for key in self.client.scan_iter(match=f"{self.ns}:duration:*", count=100):
            job_type = _s(key).rsplit(":", 1)[1]
            out[f"duration:{job_type}"] = {_s(k): float(v) for k, v in self.client.hgetall(key).items()}
        return out


class _Pending:
    """Counts of one namespace not yet written to Redis, shared by every `Metrics` of the
    process on that namespace, and the thread that writes them.

    ``flushes`` counts the pipelines sent (tests count them)."""

    def __init__(self, ns: str, client: redis.Redis, interval: float) -> None:
        self.ns = ns
        self.client = client
        self.interval = interval
        self.flushes = 0
        self._reset()

    def _reset(self) -> None:
        # Also run in a forked child: the parent writes what it counted, the child starts empty.
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._counts: dict[tuple[str, str], float] = {}
        self._thread: threading.Thread | None = None
        self._last = float("-inf")

    def add(self, counts: dict[tuple[str, str], float]) -> None:
        with self._lock:
            for key, amount in counts.items():
                self._counts[key] = self._counts.get(key, 0) + amount
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"metrics {self.ns}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._counts:
                    self._thread = None  # the next count starts another
                    return
                wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.flush()

    def flush(self) -> None:
        with self._flushing:
            with self._lock:
                taken, self._counts = self._counts, {}
            if not taken:
                return
            self._last = time.monotonic()
            self.flushes += 1
            try:
                pipe = self.client.pipeline(transaction=False)
                for (name, field), amount in taken.items():
                    if isinstance(amount, float):
                        pipe.hincrbyfloat(f"{self.ns}:{name}", field, amount)
                    else:
                        pipe.hincrby(f"{self.ns}:{name}", field, amount)
                pipe.execute()
            except (redis.RedisError, OSError):
                with self._lock:
                    for key, amount in taken.items():
                        self._counts[key] = self._counts.get(key, 0) + amount
                log.debug("metrics kept in-process until Redis answers", exc_info=True)


_REGISTRY: dict[str, _Pending] = {}
_REGISTRY_LOCK = threading.Lock()


def _pending_for(ns: str, client: redis.Redis, interval: float) -> _Pending:
    with _REGISTRY_LOCK:
        pending = _REGISTRY.get(ns)
        if pending is None:
            pending = _REGISTRY[ns] = _Pending(ns, client, interval)
        else:  # the newest client and interval: an older client may have been closed since
            pending.client, pending.interval = client, interval
        return pending


def flush_all() -> None:
    """Write every namespace's counts now: a process that is about to exit calls this."""
    with _REGISTRY_LOCK:
        pendings = list(_REGISTRY.values())
    for pending in pendings:
        pending.flush()


def _after_fork_in_child() -> None:
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()
    for pending in _REGISTRY.values():
        pending._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush_all)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def render(
    counters: dict[str, dict[str, float]],
    *,
    queues: Iterable[tuple[str, int, float | None, int]],
    running: dict[str, int],
    breakers: dict[str, bool],
    credits_held: int,
) -> str:
    """The Prometheus text exposition of everything faktry counts."""
    lines = _family("faktry_queue_depth", "Messages waiting in a queue (delayed ones included).", "gauge")
    queue_rows = list(queues)
    for queue, depth, _, _ in queue_rows:
        lines.append(f"faktry_queue_depth{_labels(queue=queue)} {depth}")
    lines += _family(
        "faktry_queue_oldest_age_seconds", "Age of the oldest message waiting in a queue.", "gauge"
    )
    for queue, _, age, _ in queue_rows:
        lines.append(f"faktry_queue_oldest_age_seconds{_labels(queue=queue)} {age or 0:.3f}")
    lines += _family("faktry_jobs_running", "Jobs running now, by queue.", "gauge")
    for queue, count in sorted(running.items()):
        lines.append(f"faktry_jobs_running{_labels(queue=queue)} {count}")
    lines += _family(
        "faktry_jobs_total", "Jobs by type and the status they reached (created, succeeded, ...).", "counter"
    )
    for key, value in sorted(counters.get("jobs_total", {}).items()):
        job_type, status = key.split("|", 1)
        lines.append(f"faktry_jobs_total{_labels(type=job_type, status=status)} {int(value)}")
    lines += _family(
        "faktry_job_duration_seconds", "Time from start to finish of finished jobs.", "histogram"
    )
    for name, buckets in sorted(counters.items()):
        if not name.startswith("duration:"):
            continue
        job_type = name.split(":", 1)[1]
        for bound in BUCKETS:
            le = str(bound)
            lines.append(
                f"faktry_job_duration_seconds_bucket{_labels(type=job_type, le=le)} {int(buckets.get(le, 0))}"
            )
        total = int(buckets.get("+Inf", 0))
        lines.append(f"faktry_job_duration_seconds_bucket{_labels(type=job_type, le='+Inf')} {total}")
        lines.append(f"faktry_job_duration_seconds_sum{_labels(type=job_type)} {buckets.get('sum', 0.0):.6f}")
        lines.append(f"faktry_job_duration_seconds_count{_labels(type=job_type)} {total}")
    lines += _family(
        "faktry_provider_errors_total", "Errors from AI providers, by provider and code.", "counter"
    )
    for key, value in sorted(counters.get("provider_errors", {}).items()):
        provider, code = key.split("|", 1)
        lines.append(f"faktry_provider_errors_total{_labels(provider=provider, code=code)} {int(value)}")
    lines += _family(
        "faktry_dependency_errors_total",
        "Calls that failed because a dependency (database, redis, broker) was away, by process.",
        "counter",
    )
    for key, value in sorted(counters.get("dependency_errors", {}).items()):
        process, dependency = key.split("|", 1)
        lines.append(
            f"faktry_dependency_errors_total{_labels(process=process, dependency=dependency)} {int(value)}"
        )
    lines += _family(
        "faktry_process_restarts_total", "Processes started again by their supervisor.", "counter"
    )
    for process, value in sorted(counters.get("process_restarts", {}).items()):
        lines.append(f"faktry_process_restarts_total{_labels(process=process)} {int(value)}")
    lines += _family("faktry_breaker_open", "1 while a provider's circuit breaker is open.", "gauge")
    for provider, is_open in sorted(breakers.items()):
        lines.append(f"faktry_breaker_open{_labels(provider=provider)} {1 if is_open else 0}")
    lines += _family("faktry_credits_held_millicredits", "Credits held for jobs not yet finished.", "gauge")
    lines.append(f"faktry_credits_held_millicredits {credits_held}")
    return "\n".join(lines) + "\n"
