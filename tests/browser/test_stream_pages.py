"""The job page follows the job's event stream, and polls instead where streams are cut.

A queued job (the tenant's one running slot is taken) is canceled through the API, not by
the page: the page learns it from its stream. With the stream up the page sends no reads
of its own while nothing happens; with every stream request cut on the way (as by a proxy
that does not pass them on) the page falls back to polling and still sees the change.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import log_in

#: How long a page's fallback may take to notice (a safety net, not a timing).
PATIENCE_MS = 30_000


def test_the_job_page_follows_the_stream_and_reads_only_when_something_happened(page, site, queued_job):
    person, http, job_id = queued_job
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if r.url.endswith(f"/v1/jobs/{job_id}") else None)
    with page.expect_request(lambda r: r.url.endswith(f"/v1/jobs/{job_id}/events/stream")) as opened:
        log_in(page, person, next_path=f"/jobs/{job_id}")
    assert opened.value.resource_type == "eventsource"
    expect(page.locator("#job-status")).to_have_text("queued")
    page.wait_for_timeout(1500)  # let the first reads (load, the stream's backlog) settle
    settled = len(reads)
    page.wait_for_timeout(3000)  # three poll intervals with nothing happening
    assert len(reads) == settled, "the page polled while its stream was up"

    assert http.post(f"{site.base}/v1/jobs/{job_id}/cancel").status_code == 202
    expect(page.locator("#job-status")).to_have_text("canceled", timeout=PATIENCE_MS)
    assert len(reads) > settled


def test_the_job_page_polls_when_streams_are_cut_on_the_way(page, site, queued_job):
    person, http, job_id = queued_job
    # A proxy that answers a stream but ends it at once, with nothing passed on.
    cut = {"status": 200, "headers": {"Content-Type": "text/event-stream"}, "body": ""}
    page.route("**/events/stream*", lambda route: route.fulfill(**cut))
    log_in(page, person, next_path=f"/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("queued")
    assert http.post(f"{site.base}/v1/jobs/{job_id}/cancel").status_code == 202
    expect(page.locator("#job-status")).to_have_text("canceled", timeout=PATIENCE_MS)
