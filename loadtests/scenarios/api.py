"""``api``: API integrations submitting a mixed media workload and polling what they submitted."""

from __future__ import annotations

from locust import between, tag, task

from loadtests.scenarios.base import FaktryUser


class ApiClient(FaktryUser):
    role = "api"
    wait_time = between(0.5, 2.0)

    @tag("api")
    @task(4)
    def resize_an_image(self) -> None:
        self._submit("resize")

    @tag("api")
    @task(2)
    def generate_an_image(self) -> None:
        self._submit("generate")

    @tag("api")
    @task(2)
    def probe_a_clip(self) -> None:
        self._submit("probe")

    @tag("api")
    @task(1)
    def transcode_a_clip(self) -> None:
        self._submit("transcode")  # does nothing without ffmpeg

    @tag("api")
    @task(4)
    def poll_a_job(self) -> None:
        self.poll_recent()

    @tag("api")
    @task(1)
    def list_jobs(self) -> None:
        self.get("/v1/jobs", "/v1/jobs?limit", limit=20)

    def _submit(self, kind: str) -> None:
        body = self.body(kind)
        if body is not None:
            self.submit(body)
