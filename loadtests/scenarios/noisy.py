"""``noisy``: one tenant floods submits beside quiet tenants that submit now and then.

The noisy tenant's users (``fixed_count`` 2, all on the one ``noisy`` tenant) submit
``LOADTEST_NOISY_CONCURRENCY`` jobs at a time (default 5), back to back, and ignore
``Retry-After``: its 429s, and its 402s once its credits run out, are expected and counted
as handled. The quiet tenants' users (the rest of ``--users``) submit one job every few
seconds and wait for it: their ``JOB`` turnaround is what this scenario measures (fair
scheduling keeps it near the unloaded figure).
"""

from __future__ import annotations

import os
import random

from gevent.pool import Pool
from locust import between, constant, tag, task

from loadtests.scenarios.base import FaktryUser


class NoisyTenant(FaktryUser):
    role = "noisy"
    fixed_count = 2
    wait_time = constant(0)
    honours_retry_after = False

    @tag("noisy")
    @task
    def flood(self) -> None:
        width = max(1, int(os.environ.get("LOADTEST_NOISY_CONCURRENCY", "5")))
        bodies = [self.body(random.choice(("resize", "generate"))) for _ in range(width)]
        Pool(width).map(self.submit, [b for b in bodies if b is not None])


class QuietTenant(FaktryUser):
    role = "quiet"
    wait_time = between(2, 5)

    @tag("noisy")
    @task(3)
    def submit_and_wait(self) -> None:
        body = self.mixed()
        job = self.submit(body) if body is not None else None
        if job is not None:
            self.wait_for([job], timeout=120)

    @tag("noisy")
    @task(1)
    def look_at_the_library(self) -> None:
        self.get("/v1/files", "/v1/files?limit", limit=20)
