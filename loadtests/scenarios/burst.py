"""``burst``: many submits at once, then every one of them awaited.

Each user submits ``LOADTEST_BURST`` jobs (default 10) in one ``POST /v1/jobs/batch``
(or, with ``LOADTEST_BURST_SINGLE=1``, as that many concurrent single submits), waits for
all of them, rests 5 s and bursts again. With ``--spawn-rate`` equal to ``--users`` (the runner's default
for this scenario) the users' first bursts land in the same second.
"""

from __future__ import annotations

import os

from gevent.pool import Pool
from locust import constant, tag, task

from loadtests.scenarios.base import FaktryUser


class BurstClient(FaktryUser):
    role = "api"
    wait_time = constant(5)

    @tag("burst")
    @task
    def burst_then_wait(self) -> None:
        size = max(1, int(os.environ.get("LOADTEST_BURST", "10")))
        bodies = [b for b in (self.mixed() for _ in range(size)) if b is not None]
        if os.environ.get("LOADTEST_BURST_SINGLE"):  # one request per job, all at once
            pool = Pool(len(bodies) or 1)
            jobs = [j for j in pool.imap_unordered(self.submit, bodies) if j is not None]
        else:  # the whole burst in one batch request, as a client submitting many should
            jobs = self.submit_batch(bodies) if bodies else []
        self.wait_for(jobs, timeout=120)
