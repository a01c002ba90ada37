"""Job inputs given as a URL: fetched by the worker from a real HTTP server on loopback
(allowed by the test-only setting), kept once in the tenant's library, and refused (logged,
nothing charged, nothing stored) when it points inside, is too large, too slow or not media."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipelines import runner, urlinputs
from pipelines.webhooks import safehttp
from tests.conftest import make_settings
from tests.standins.server import serve_handler
from tests.web.helpers import upload

BIG = 50_000


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


@dataclass
class Origin:
    """The loopback server's base URL and the paths it was asked for."""

    base: str
    asked: list[str] = field(default_factory=list)
    #: More paths to serve, with their bytes.
    files: dict[str, bytes] = field(default_factory=dict)
    #: Bytes of ``/slow`` written before the fetcher hung up, and whether it is over.
    slow_sent: int = 0
    slow_done: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def origin() -> Iterator[Origin]:
    state = Origin("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.asked.append(self.path)
            path = self.path
            if path == "/pic.png":
                self.answer(200, PNG, "image/png")
            elif path in state.files:
                self.answer(200, state.files[path], "application/octet-stream")
            elif path.startswith("/hops/"):  # /hops/3 -> /hops/2 -> ... -> /pic.png
                left = int(path.rsplit("/", 1)[1])
                self.redirect("/pic.png" if left == 0 else f"/hops/{left - 1}")
            elif path == "/to-private":
                self.redirect("http://10.0.0.7/pic.png")
            elif path == "/to-metadata":
                self.redirect("http://169.254.169.254/latest/meta-data/")
            elif path == "/big":
                self.answer(200, b"\0" * BIG, "image/png")
            elif path == "/big-unsized":  # no Content-Length: cut off while it streams
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(BIG // 1000):
                    self.wfile.write(b"\0" * 1000)
            elif path == "/slow":  # 30 bytes over 6 s, never the whole body
                self.send_response(200)
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                try:
                    for byte in PNG[:30]:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        state.slow_sent += 1
                        time.sleep(0.2)
                except OSError:  # the fetcher hung up
                    pass
                state.slow_done.set()
            elif path == "/text":
                self.answer(200, b"hello, this is not a picture\n" * 20, "image/png")
            else:
                self.answer(404, b"no", "text/plain")

        def do_POST(self) -> None:  # a webhook delivery's receiver: the body back
            state.asked.append(self.path)
            self.answer(200, self.rfile.read(int(self.headers["Content-Length"])), "application/json")

        def answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serve_handler(Handler) as base:
        state.base = base
        yield state


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str) -> Any:
    return make_settings(
        tmp_path,
        db_url,
        redis_namespace,
        url_fetch_allow_loopback=True,
        url_fetch_timeout_seconds=1.0,
        max_retries=0,
        max_upload_bytes=20_000,
    )


def submit(client: Any, tenant: Any, url: str) -> Any:
    body = {"type": "image.resize", "input": {"url": url}, "params": {"width": 100, "height": 100}}
    return client.post("/v1/jobs", json=body, headers=tenant.headers)


def run(client: Any, tenant: Any, ctx: runner.Context, url: str) -> dict[str, Any]:
    """Submit an image.resize of ``url`` and run it here, as the job actor does; its JSON."""
    r = submit(client, tenant, url)
    assert r.status_code == 202, r.json
    runner.run(ctx, r.json["id"])
    return dict(client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json)


def account(client: Any, tenant: Any) -> dict[str, Any]:
    return dict(client.get("/v1/account", headers=tenant.headers).json)


def uploads(client: Any, tenant: Any) -> list[dict[str, Any]]:
    return list(client.get("/v1/files?origin=upload", headers=tenant.headers).json["data"])


def resolver(table: dict[str, list[str]]) -> safehttp.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def assert_failed_leaving_nothing(
    client: Any, tenant: Any, job: dict[str, Any], code: str, before: dict[str, Any], storage: Path
) -> None:
    assert job["status"] == "failed" and job["error"]["code"] == code, job
    assert job["cost"]["charged"] in (0, None) and "file_id" not in job["input"]
    after = account(client, tenant)
    assert after["credits"]["available"] == before["credits"]["available"]  # nothing charged
    assert after["credits"]["held"] == 0  # the hold released
    assert after["storage"]["used_bytes"] == 0 and after["storage"]["reserved_bytes"] == 0
    assert uploads(client, tenant) == []
    left = [p for p in (storage / "t" / tenant.id).rglob("*") if p.is_file()]
    assert left == []  # no object left in storage


def test_a_url_input_is_fetched_into_the_library_once_and_the_job_runs_on_it(client, runtime, tenant, origin):
    start = account(client, tenant)
    first = run(client, tenant, runtime.context, origin.url("/hops/2"))  # two redirects to the PNG
    assert first["status"] == "succeeded", first
    library = uploads(client, tenant)
    assert len(library) == 1 and library[0]["kind"] == "image" and library[0]["size"] == len(PNG)
    assert first["input"] == {"url": origin.url("/hops/2"), "file_id": library[0]["id"]}
    assert library[0]["filename"] == "pic.png"  # named after where it was found at last
    assert first["cost"]["charged"] == 100 and first["outputs"]
    used = account(client, tenant)["storage"]["used_bytes"]
    assert used == len(PNG) + first["outputs"][0]["size"]

    second = run(client, tenant, runtime.context, origin.url("/pic.png"))  # the same bytes
    assert second["status"] == "succeeded", second
    assert second["input"]["file_id"] == library[0]["id"]
    assert len(uploads(client, tenant)) == 1  # reused, not stored twice
    after = account(client, tenant)
    assert after["storage"]["used_bytes"] == used + second["outputs"][0]["size"]  # counted once
    assert after["credits"]["available"] == start["credits"]["available"] - 200
    assert after["credits"]["held"] == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_without_the_test_setting_loopback_is_refused_and_logged(
    client, runtime, tenant, origin, tmp_path, caplog, host
):
    ctx = replace(runtime.context, settings=runtime.context.settings.replace(url_fetch_allow_loopback=False))
    before = account(client, tenant)
    with caplog.at_level(logging.WARNING, logger="faktry.urlinputs"):
        job = run(client, tenant, ctx, origin.url("/pic.png").replace("127.0.0.1", host))
    assert_failed_leaving_nothing(client, tenant, job, "url_refused", before, tmp_path / "storage")
    assert origin.asked == []  # refused before connecting
    assert any("blocked_address" in r.getMessage() and host in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "192.168.1.20", "169.254.169.254", "172.16.0.1", "::ffff:10.0.0.5", "fd00::1"]
)
def test_a_name_resolving_inside_is_refused_even_with_loopback_allowed(
    client, runtime, tenant, tmp_path, caplog, address
):
    ctx = replace(runtime.context, url_resolve=resolver({"cdn.example": ["93.184.215.14", address]}))
    before = account(client, tenant)
    with caplog.at_level(logging.WARNING, logger="faktry.urlinputs"):
        job = run(client, tenant, ctx, "http://cdn.example/pic.png")
    assert_failed_leaving_nothing(client, tenant, job, "url_refused", before, tmp_path / "storage")
    assert address in job["error"]["message"]
    assert any("cdn.example" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "url",
    ["http://10.1.2.3/pic.png", "http://192.168.0.1/pic.png", "http://169.254.169.254/latest/meta-data/",
     "http://[fd00::1]/x.png", "http://0.0.0.0/x.png"],
)  # fmt: skip
def test_a_literal_inside_address_is_refused_at_submit(client, tenant, url):
    before = account(client, tenant)
    r = submit(client, tenant, url)
    assert r.status_code == 422, r.json
    assert (r.json["error"]["code"], r.json["error"]["field"]) == ("url_refused", "input.url")
    assert account(client, tenant)["credits"] == before["credits"]


@pytest.mark.parametrize("path", ["/to-private", "/to-metadata"])
def test_a_redirect_to_an_inside_address_is_refused(client, runtime, tenant, origin, tmp_path, path):
    before = account(client, tenant)
    job = run(client, tenant, runtime.context, origin.url(path))
    assert_failed_leaving_nothing(client, tenant, job, "url_refused", before, tmp_path / "storage")
    assert origin.asked == [path]  # the redirect's target was never asked


def test_more_redirects_than_the_limit_are_refused(client, runtime, make_tenant, origin, tmp_path):
    five = run(client, make_tenant(), runtime.context, origin.url("/hops/4"))  # 5: the limit
    assert five["status"] == "succeeded", five
    tenant = make_tenant()
    before = account(client, tenant)
    six = run(client, tenant, runtime.context, origin.url("/hops/5"))
    assert_failed_leaving_nothing(client, tenant, six, "url_refused", before, tmp_path / "storage")
    assert "redirects" in six["error"]["message"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/big", "url_too_large"),
        ("/big-unsized", "url_too_large"),
        ("/slow", "url_fetch_failed"),
        ("/missing", "url_fetch_failed"),
        ("/text", "unsupported_format"),
    ],
)
def test_a_fetch_that_fails_ends_the_job_with_its_code_and_leaves_nothing(
    client, runtime, tenant, origin, tmp_path, path, code
):
    before = account(client, tenant)
    job = run(client, tenant, runtime.context, origin.url(path))
    assert_failed_leaving_nothing(client, tenant, job, code, before, tmp_path / "storage")
    if path == "/slow":
        # Cut at the 1 s deadline: the origin, sending a byte every 0.2 s, found the
        # fetcher gone long before its 30th byte.
        assert origin.slow_done.wait(10)
        assert origin.slow_sent < 30, origin.slow_sent


def test_a_fetch_that_timed_out_is_retried_like_other_transient_errors(client, runtime, tenant, origin):
    ctx = replace(runtime.context, settings=runtime.context.settings.replace(max_retries=1))
    r = submit(client, tenant, origin.url("/slow"))
    with pytest.raises(runner.RetryLater) as retry:
        runner.run(ctx, r.json["id"])
    assert retry.value.code == "url_fetch_failed"
    queued = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert queued["status"] == "queued" and account(client, tenant)["credits"]["held"] == 100
    runner.run(ctx, r.json["id"])  # the last attempt: failed, the hold released
    done = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert done["status"] == "failed" and done["error"]["code"] == "url_fetch_failed"
    assert account(client, tenant)["credits"]["held"] == 0


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/pic.png", "http://user:secret@example.com/pic.png", "http:///pic.png",
     "https://", "example.com/pic.png", "http://exa mple.com/pic.png", "http://example.com/" + "a" * 2100,
     "file:///etc/passwd", "http://example.com:99999/pic.png"],
)  # fmt: skip
def test_a_url_of_the_wrong_shape_is_a_422_naming_input_url(client, tenant, url):
    r = submit(client, tenant, url)
    assert r.status_code == 422, r.json
    assert r.json["error"]["field"] == "input.url", r.json


def test_a_url_and_a_file_id_together_or_neither_are_refused(client, tenant):
    body: dict[str, Any] = {"type": "image.resize", "params": {"width": 10, "height": 10}}
    both = {**body, "input": {"url": "https://example.com/a.png", "file_id": "fil_x"}}
    r = client.post("/v1/jobs", json=both, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "conflicting_fields", r.json
    r = client.post("/v1/jobs", json={**body, "input": {}}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "input.file_id", r.json


def test_a_job_type_over_a_list_of_files_takes_no_url(client, tenant):
    given = {"file_ids": ["fil_a", "fil_b"], "url": "https://example.com/a.mp4"}
    r = client.post("/v1/jobs", json={"type": "video.concat", "input": given}, headers=tenant.headers)
    assert r.status_code == 422, r.json
    assert (r.json["error"]["code"], r.json["error"]["field"]) == ("unknown_field", "input.url")


def test_a_duration_priced_job_holds_the_tiers_longest_input_and_charges_what_it_was(
    client, runtime, tenant, origin
):
    body = {
        "type": "video.transcode",
        "input": {"url": origin.url("/pic.png")},
        "params": {"preset": "mp4_360p"},
    }
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    limit = account(client, tenant)["limits"]["max_duration_seconds"]
    assert r.json["cost"]["held"] == 500 * limit // 60  # 500 a minute, for the tier's longest
    runner.run(runtime.context, r.json["id"])
    done = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    # A picture is not an input a transcode takes: failed, the hold released, nothing charged.
    assert done["status"] == "failed" and done["error"]["code"] == "unsupported_input", done
    assert account(client, tenant)["credits"]["held"] == 0
    assert uploads(client, tenant) == []  # not kept: the job could not use it


def test_a_duration_priced_job_is_charged_for_the_input_it_fetched(
    client, runtime, tenant, origin, clip_small
):
    origin.files["/clip.mp4"] = clip_small.read_bytes()
    body = {
        "type": "video.transcode",
        "input": {"url": origin.url("/clip.mp4")},
        "params": {"preset": "audio_mp3"},
    }
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    assert r.json["cost"]["held"] == 200 * account(client, tenant)["limits"]["max_duration_seconds"] // 60
    roomy = runtime.context.settings.replace(max_upload_bytes=10 * 1024**2)  # a clip, not a PNG
    runner.run(replace(runtime.context, settings=roomy), r.json["id"])
    done = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert done["status"] == "succeeded", done["error"]
    assert done["cost"]["charged"] == 200  # a few seconds of audio: the minimum, not the hold
    assert account(client, tenant)["credits"]["held"] == 0


def test_the_safe_client_still_posts_a_webhook_as_before(origin):
    loopback = safehttp.Limits(allow_loopback=True)
    answer = safehttp.post(origin.url("/hook"), b'{"a": 1}', {"X-Test": "1"}, loopback)
    assert (answer.status, answer.body) == (200, b'{"a": 1}')
    with pytest.raises(safehttp.Refused):
        safehttp.post(origin.url("/hook"), b"{}", {}, safehttp.Limits())  # loopback not allowed
    assert origin.asked == ["/hook"]


def test_bytes_another_job_stored_while_this_one_fetched_are_used_once(
    client, runtime, tenant, origin, tmp_path, monkeypatch
):
    picture = tmp_path / "mine.png"
    picture.write_bytes(PNG)
    mine = upload(client, tenant, picture).json
    used = account(client, tenant)["storage"]["used_bytes"]
    # The first look misses it, as when another fetch of these bytes commits just after it:
    # the second look, under the account's lock, finds it and this copy is undone.
    real = urlinputs._same_bytes
    looks: list[str] = []

    def late(session: Any, tenant_id: str, digest: str, *, other_than: str = "") -> Any:
        looks.append(other_than)
        return None if len(looks) == 1 else real(session, tenant_id, digest, other_than=other_than)

    monkeypatch.setattr(urlinputs, "_same_bytes", late)
    job = run(client, tenant, runtime.context, origin.url("/pic.png"))
    assert job["status"] == "succeeded", job
    assert len(looks) == 2 and job["input"]["file_id"] == mine["id"]
    assert [f["id"] for f in uploads(client, tenant)] == [mine["id"]]
    after = account(client, tenant)["storage"]
    assert after["used_bytes"] == used + job["outputs"][0]["size"] and after["reserved_bytes"] == 0
    stored = [p for p in (tmp_path / "storage" / "t" / tenant.id / "files").rglob("*") if p.is_file()]
    assert len(stored) == 1  # the undone copy left no object behind


def test_a_name_that_does_not_resolve_fails_the_fetch_without_calling_it_refused(
    client, runtime, tenant, tmp_path
):
    def nowhere(host: str, port: int) -> list[str]:
        raise safehttp.Refused("unresolvable", f"cannot resolve {host}")

    before = account(client, tenant)
    job = run(client, tenant, replace(runtime.context, url_resolve=nowhere), "https://gone.example/a.png")
    assert_failed_leaving_nothing(client, tenant, job, "url_fetch_failed", before, tmp_path / "storage")
