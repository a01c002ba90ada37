"""``browse``: web users browsing their library: file pages, a file, its content, the account, the ledger.

Each user uploads its inputs and generates one image at start, so every library and ledger
has something to show. Content downloads do not follow redirects: on S3 they point at
another host, and load only goes to loopback.
"""

from __future__ import annotations

import random
from typing import Any

from locust import between, tag, task

from loadtests.scenarios.base import FaktryUser


class WebUser(FaktryUser):
    role = "web"
    wait_time = between(1, 3)

    def on_start(self) -> None:
        super().on_start()
        self.file_ids: list[str] = [f for f in (self.png_id, self.mp4_id) if f]
        body = self.body("generate")
        if body is not None:
            self.submit(body)

    @tag("browse")
    @task(3)
    def page_through_the_library(self) -> None:
        self._pages("/v1/files", "/v1/files", pages=5, limit=10, collect=True)

    @tag("browse")
    @task(2)
    def open_a_file(self) -> None:
        if not self.file_ids:
            return
        file_id = random.choice(self.file_ids)
        self.get(f"/v1/files/{file_id}", "/v1/files/[id]")
        with self.client.get(
            f"/v1/files/{file_id}/content",
            name="/v1/files/[id]/content",
            allow_redirects=False,
            catch_response=True,
        ) as r:
            if r.status_code in (200, 302):
                r.success()
            else:
                r.failure(f"{r.status_code} {r.text[:120]!r}")

    @tag("browse")
    @task(2)
    def look_at_the_account(self) -> None:
        self.get("/v1/account", "/v1/account")

    @tag("browse")
    @task(2)
    def read_the_transactions(self) -> None:
        self._pages("/v1/account/transactions", "/v1/account/transactions", pages=3, limit=20)

    @tag("browse")
    @task(1)
    def list_jobs(self) -> None:
        self.get("/v1/jobs", "/v1/jobs?limit", limit=20)

    def _pages(self, path: str, name: str, *, pages: int, limit: int, collect: bool = False) -> None:
        """Follow ``next_cursor`` for up to ``pages`` pages; later pages are grouped as one name."""
        params: dict[str, Any] = {"limit": limit}
        for page in range(pages):
            body = self.get(path, name if page == 0 else f"{name}?cursor=[next]", **params)
            if body is None:
                return
            if collect:
                known = set(self.file_ids)
                self.file_ids += [f["id"] for f in body.get("data", []) if f.get("id") not in known][:50]
                self.file_ids = self.file_ids[-200:]
            if not body.get("next_cursor"):
                return
            params["cursor"] = body["next_cursor"]
