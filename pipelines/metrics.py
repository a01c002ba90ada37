"""Counters shared by every web and worker process, kept in Redis, rendered for Prometheus.

A process-local registry would show one process's view; these counters live in Redis, so
whichever web process ``/metrics`` hits reports the whole platform. Writes are single
HINCRBY calls: cheap enough for every job event.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable

import redis

log = logging.getLogger("faktry.metrics")

BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.ns = f"{namespace}:metrics"

    def job_finished(self, job_type: str, status: str, seconds: float | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(f"{self.ns}:jobs_total", f"{job_type}|{status}", 1)
        if seconds is not None and seconds >= 0:
            key = f"{self.ns}:duration:{job_type}"
            for bound in BUCKETS:
                if seconds <= bound:
                    pipe.hincrby(key, str(bound), 1)
            pipe.hincrby(key, "+Inf", 1)
            pipe.hincrbyfloat(key, "sum", seconds)
        pipe.execute()

    def job_created(self, job_type: str) -> None:
        self.client.hincrby(f"{self.ns}:jobs_total", f"{job_type}|created", 1)

    def provider_error(self, provider: str, code: str) -> None:
        self.client.hincrby(f"{self.ns}:provider_errors", f"{provider}|{code}", 1)

    def dependency_error(self, process: str, dependency: str) -> None:
        """A dependency (``database``, ``redis``, ``broker``) failed a call of ``process``.

        Counted in-process first: the dependency that failed may be Redis itself, so what
        cannot be written now is kept and written with the next count that gets through."""
        _PENDING.add("dependency_errors", f"{process}|{dependency}")
        self.flush()

    def process_restart(self, process: str) -> None:
        """A supervisor started ``process`` again after it exited."""
        _PENDING.add("process_restarts", process)
        self.flush()

    def flush(self) -> None:
        """Write the in-process counts kept while Redis was away; never raises."""
        taken = _PENDING.take()
        if not taken:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for (name, field), count in taken.items():
                pipe.hincrby(f"{self.ns}:{name}", field, count)
            pipe.execute()
        except (redis.RedisError, OSError):
            _PENDING.give_back(taken)
            log.debug("metrics kept in-process until Redis answers", exc_info=True)

    def read(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name in ("jobs_total", "provider_errors", "dependency_errors", "process_restarts"):
            raw = self.client.hgetall(f"{self.ns}:{name}")
            out[name] = {_s(k): float(v) for k, v in raw.items()}
        for key in self.client.scan_iter(match=f"{self.ns}:duration:*", count=100):
            job_type = _s(key).rsplit(":", 1)[1]
            out[f"duration:{job_type}"] = {_s(k): float(v) for k, v in self.client.hgetall(key).items()}
        return out


class _Pending:
    """Counts not yet written to Redis, shared by every `Metrics` of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, name: str, field: str) -> None:
        with self._lock:
            self._counts[(name, field)] += 1

    def take(self) -> Counter[tuple[str, str]]:
        with self._lock:
            taken, self._counts = self._counts, Counter()
        return taken

    def give_back(self, counts: Counter[tuple[str, str]]) -> None:
        with self._lock:
            self._counts.update(counts)


_PENDING = _Pending()


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
