"""``soak``: a steady low rate for a long time.

Each user runs one iteration every ``LOADTEST_SOAK_PACING`` seconds (default 10): a job of
the media mix, awaited, and a read of the account. Run it for long (the runner's default is
30 min) and look for drift: latency and turnaround that creep up, jobs left open, a ledger
that stops balancing.
"""

from __future__ import annotations

import os
import time

from locust import tag, task

from loadtests.scenarios.base import FaktryUser


class SoakClient(FaktryUser):
    role = "api"

    def on_start(self) -> None:
        super().on_start()
        self.pacing = float(os.environ.get("LOADTEST_SOAK_PACING", "10"))
        self.started = time.monotonic()

    def wait_time(self) -> float:
        return max(0.0, self.pacing - (time.monotonic() - self.started))

    @tag("soak")
    @task
    def one_job_and_the_account(self) -> None:
        self.started = time.monotonic()
        body = self.mixed()
        job = self.submit(body) if body is not None else None
        if job is not None:
            self.wait_for([job], timeout=max(30.0, self.pacing * 3))
        self.get("/v1/account", "/v1/account")
