"""One worker process: ``python -m workers.process --threads T [--queues Q ...]``.

`faktry worker` keeps N of these running (`faktry.supervise`), so one that dies (the
out-of-memory killer's SIGKILL during a transcode grown too big) is replaced and the others
never notice. Each builds its broker, database engine and storage after it starts
(`workers.broker.setup`), emits the broker's ``process_boot`` as Dramatiq's own command line
does, and consumes with a `dramatiq.Worker` until SIGTERM or SIGINT.

On the first signal it stops taking messages and gives running jobs
``worker_shutdown_seconds`` to finish; then it exits, and what still runs stops with it: an
ffmpeg dies with the worker that started it, the job's message comes back from the broker
(or the reconciler sends it again once its lease expires), so the job runs again elsewhere.
A process that cannot start (its broker or database is down) exits with status 1, and its
supervisor tries again after a backoff.

`workers.entry` remains for running Dramatiq's command line directly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

import dramatiq

from faktry import clock
from faktry.config import Settings
from faktry.logs import configure as configure_logging
from pipelines.metrics import flush_all

log = logging.getLogger("faktry.workers")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workers.process", description="One worker process of `faktry worker`."
    )
    parser.add_argument("--queues", "-Q", nargs="*", default=[], help="Queues to consume (default: all).")
    parser.add_argument("--threads", "-t", type=int, default=0, help="Default: FAKTRY_WORKER_THREADS.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    clock.configure_from_env()
    settings = Settings.from_env()
    configure_logging(settings)
    stopping = False

    def _on_signal(_signum: int, _frame: Any) -> None:
        # Once is enough, and twice means nothing more: a service manager may signal every
        # process of a unit as the supervisor does, and neither should cut the grace short.
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)

    from workers.broker import setup  # after the settings: nothing is built at import

    threads = args.threads or settings.worker_threads
    try:
        broker = setup(settings).broker
        broker.emit_after("process_boot")
        worker = dramatiq.Worker(
            broker,
            queues=set(args.queues) or None,
            worker_threads=threads,
            worker_timeout=settings.worker_timeout_ms,
        )
        worker.start()
    except Exception:
        log.exception("worker process could not start")
        return 1
    log.info("worker process ready: %d thread(s) on %s", threads, ", ".join(args.queues) or "every queue")
    while not stopping:
        time.sleep(0.2)
    log.info("stopping: running jobs have %.0f s to finish", settings.worker_shutdown_seconds)
    worker.stop(timeout=int(settings.worker_shutdown_seconds * 1000))
    broker.close()
    # The process ends with os._exit (no atexit hooks): write the last second's counts now.
    flush_all()
    log.info("worker process stopped")
    return 0


def _exit(code: int) -> None:
    """Exit without waiting for threads: a job still running past the shutdown grace must
    not hold the process (its worker thread, or a pool it started, would be joined)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
