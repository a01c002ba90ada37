"""End to end in real processes: upload, transcode, poll, download, check with ffprobe.

Once on PostgreSQL + Redis + S3 (moto) and once on the zero-setup default (``faktry up``:
SQLite, local disk, embedded Redis); then a worker killed with SIGKILL mid-transcode, and
an upload far over the limit cut off near the limit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from faktry.cli import DEMO_EMAIL
from tests import services as svc
from tests.platform import Platform, Proc, tenant_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def upload(base: str, headers: dict[str, str], path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        r = requests.post(f"{base}/v1/files", headers=headers, files={"file": (path.name, fh)}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def submit(base: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{base}/v1/jobs", headers=headers, json=body, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def poll(
    base: str, headers: dict[str, str], job_id: str, until: tuple[str, ...], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{base}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return json.loads(out.stdout)


def transcode_and_check(base: str, headers: dict[str, str], clip: Path, tmp_path: Path) -> dict[str, Any]:
    source = upload(base, headers, clip)
    job = submit(
        base,
        headers,
        {"type": "video.transcode", "input": {"file_id": source["id"]}, "params": {"preset": "mp4_480p"}},
    )
    seen_progress = []
    deadline = time.monotonic() + 120
    while True:
        state = requests.get(f"{base}{job['urls']['self']}", headers=headers, timeout=10).json()
        seen_progress.append(state["progress"])
        if state["status"] in ("succeeded", "failed", "canceled"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["status"] == "succeeded", state
    assert seen_progress == sorted(seen_progress)
    [output] = state["outputs"]
    content = requests.get(f"{base}{output['url']}", headers=headers, timeout=60)
    assert content.status_code == 200
    target = tmp_path / "downloaded.mp4"
    target.write_bytes(content.content)
    facts = ffprobe(target)
    video = next(s for s in facts["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and int(video["height"]) == 480
    assert abs(float(facts["format"]["duration"]) - source["media"]["duration"]) < 0.5
    return state


def test_a_transcode_end_to_end_on_postgresql_redis_and_s3(production: Platform, clip_720p, tmp_path):
    headers = tenant_key(production.settings)
    state = transcode_and_check(production.base, headers, clip_720p, tmp_path)
    # On S3 the download is a redirect to a short-lived presigned URL.
    r = requests.get(
        f"{production.base}{state['outputs'][0]['url']}", headers=headers, allow_redirects=False, timeout=10
    )
    assert r.status_code == 302 and "X-Amz-Signature" in r.headers["Location"]


def test_a_worker_killed_mid_transcode_is_replaced_and_the_job_succeeds_once(
    production: Platform, long_clip, tmp_path
):
    headers = tenant_key(production.settings)
    source = upload(production.base, headers, long_clip)
    job = submit(
        production.base,
        headers,
        {"type": "video.transcode", "input": {"file_id": source["id"]}, "params": {"preset": "mp4_720p"}},
    )
    poll_deadline = time.monotonic() + 60
    while True:
        state = requests.get(f"{production.base}/v1/jobs/{job['id']}", headers=headers, timeout=10).json()
        if state["status"] == "running" and state["progress"] > 0:
            break
        assert state["status"] in ("queued", "running"), state
        assert time.monotonic() < poll_deadline
        time.sleep(0.05)
    [worker] = [p for p in production.procs if p.name == "worker" and p.popen.poll() is None]
    worker.kill(9)
    worker.popen.wait()
    time.sleep(0.5)
    assert not _ffmpeg_alive(production), "ffmpeg outlived its killed worker"
    production.start_worker()
    done = poll(production.base, headers, job["id"], ("succeeded", "failed", "canceled"), timeout=120)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert len(done["outputs"]) == 1
    files = requests.get(f"{production.base}/v1/files?limit=100", headers=headers, timeout=10).json()["data"]
    assert len([f for f in files if f["job_id"] == job["id"]]) == 1


def test_sigterm_lets_a_worker_stop_within_its_bound_and_the_job_still_succeeds(
    production: Platform, long_clip
):
    headers = tenant_key(production.settings)
    source = upload(production.base, headers, long_clip)
    job = submit(
        production.base, headers,
        {"type": "video.transcode", "input": {"file_id": source["id"]}, "params": {"preset": "mp4_1080p"}},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while (
        requests.get(f"{production.base}/v1/jobs/{job['id']}", headers=headers, timeout=10).json()["progress"]
        <= 0
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [worker] = [p for p in production.procs if p.name == "worker" and p.popen.poll() is None]
    stopped_at = time.monotonic()
    worker.kill(15)  # SIGTERM to the worker's process group, as a process manager does
    worker.popen.wait(timeout=production.settings.worker_shutdown_seconds + 15)
    assert time.monotonic() - stopped_at < production.settings.worker_shutdown_seconds + 15
    time.sleep(0.5)
    assert not _ffmpeg_alive(production), "ffmpeg outlived its stopped worker"
    production.start_worker()
    done = poll(production.base, headers, job["id"], ("succeeded", "failed", "canceled"), timeout=120)
    assert done["status"] == "succeeded", done
    assert len(done["outputs"]) == 1


def _ffmpeg_alive(platform: Platform) -> bool:
    """An ffmpeg of this platform's (its inputs are under the platform's var folder)."""
    pattern = f"ffmpeg .*{platform.settings.var_dir}"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return bool(out.stdout.strip())


def test_an_upload_far_over_the_limit_is_cut_off_near_the_limit(production: Platform):
    headers = tenant_key(production.settings)
    limit = production.settings.max_upload_bytes
    sent, status = _chunked_upload(
        production.settings.port, headers["Authorization"], total=200 * 1024 * 1024
    )
    assert status == 413
    # What is in flight in socket buffers may exceed the limit; the rest is never sent.
    assert sent < limit + 16 * 1024 * 1024, sent


def _chunked_upload(port: int, auth: str, total: int) -> tuple[int, int | None]:
    boundary = "faktryboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        (
            f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    chunk = os.urandom(64 * 1024)
    sent = 0
    status = None
    sock.settimeout(0.0)
    try:
        payload = head
        while sent < total:
            data = payload + chunk
            payload = b""
            frame = f"{len(data):x}\r\n".encode() + data + b"\r\n"
            view = memoryview(frame)
            while view:
                try:
                    n = sock.send(view)
                    view = view[n:]
                except BlockingIOError:
                    status = _read_status(sock) or status
                    if status is not None:
                        return sent, status
                    time.sleep(0.01)
            sent += len(data)
            status = _read_status(sock)
            if status is not None:
                return sent, status
    except (BrokenPipeError, ConnectionResetError):
        sock.settimeout(5)
        return sent, _read_status(sock, block=True)
    finally:
        sock.close()
    return sent, status


def _read_status(sock: socket.socket, block: bool = False) -> int | None:
    try:
        data = sock.recv(4096) if block else sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, ConnectionResetError, OSError):
        return None
    if data.startswith(b"HTTP/1."):
        return int(data.split(b" ", 2)[1])
    return None


@pytest.fixture
def zero_setup(tmp_path) -> Any:
    port = svc.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKTRY_")}
    env.update(
        {
            "FAKTRY_PORT": str(port),
            "FAKTRY_BASE_URL": f"http://127.0.0.1:{port}",
            "FAKTRY_WORKER_PROCESSES": "1",
        }
    )
    proc = Proc("up", [sys.executable, "-m", "faktry.cli", "up"], env, tmp_path, cwd=tmp_path)
    platform = Platform.__new__(Platform)
    platform.base = f"http://127.0.0.1:{port}"
    platform.procs = [proc]
    key_file = tmp_path / "var" / "demo-api-key"
    try:
        platform.wait_healthy(timeout=60)
        deadline = time.monotonic() + 10
        while not key_file.exists():
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        yield platform, {"Authorization": f"Bearer {key_file.read_text().strip()}"}, tmp_path, proc
    finally:
        proc.stop(timeout=60)


def test_a_transcode_end_to_end_on_the_zero_setup_default(zero_setup, clip_720p, tmp_path):
    platform, headers, home, proc = zero_setup
    assert "faktry is up at" in proc.output()
    transcode_and_check(platform.base, headers, clip_720p, tmp_path)
    # The demo owner logs in to the pages with the printed password, and runs the console.
    password = (home / "var" / "demo-password").read_text().strip()
    assert f"with password {password}" in proc.output()
    assert (home / "var" / "demo-password").stat().st_mode & 0o777 == 0o600
    browser = requests.Session()
    login = browser.post(f"{platform.base}/v1/session", json={"email": DEMO_EMAIL, "password": password})
    assert login.status_code == 201
    for path in ("/jobs", "/admin"):
        page = browser.get(platform.base + path, headers={"Accept": "text/html"}, allow_redirects=False)
        assert page.status_code == 200 and "<h1>" in page.text
    var = home / "var"
    assert (var / "faktry.db").exists()
    assert list((var / "storage").rglob("original.mp4"))
    proc.stop(timeout=60)
    assert proc.popen.returncode == 0, proc.output()
    sock = next((var / "redis").glob("*.sock"), None)
    assert sock is None or not _answers(sock), "the embedded Redis outlived faktry up"


def _answers(sock: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def test_metrics_cover_every_process_with_two_web_and_two_worker_processes(tmp_path, png_image):
    from faktry import migrate
    from tests.platform import e2e_settings

    if not svc.redis_available():
        svc.missing("Redis")
    db = f"sqlite:///{tmp_path / 'two.db'}"
    migrate.upgrade(db)
    namespace = f"faktry-e2e-{svc.RUN_ID}-two"
    settings = e2e_settings(
        tmp_path, database_url=db, redis_url=svc.REDIS_URL, redis_namespace=namespace,
        storage_url=f"file:{tmp_path / 'storage'}", web_workers=2,
    )  # fmt: skip
    platform = Platform(settings, tmp_path)
    try:
        platform.start("web", "web")
        platform.start_worker()
        platform.start_worker()
        platform.wait_healthy()
        headers = tenant_key(settings)
        file_id = upload(platform.base, headers, png_image)["id"]
        ids = [
            submit(platform.base, headers, {"type": "media.probe", "input": {"file_id": file_id}})["id"]
            for _ in range(6)
        ]
        for job_id in ids:
            assert (
                poll(platform.base, headers, job_id, ("succeeded", "failed"), timeout=60)["status"]
                == "succeeded"
            )
        # Each process writes its counts at most once a second: wait for the last of them.
        deadline = time.monotonic() + 15
        while True:
            seen = set()
            for _ in range(8):  # fresh connections land on either gunicorn worker
                text = requests.get(
                    f"{platform.base}/metrics", timeout=10, headers={"Connection": "close"}
                ).text
                line = next(
                    (
                        x
                        for x in text.splitlines()
                        if x.startswith('faktry_jobs_total{type="media.probe",status="succeeded"}')
                    ),
                    None,
                )
                seen.add(line)
            if (
                seen == {'faktry_jobs_total{type="media.probe",status="succeeded"} 6'}
                or time.monotonic() > deadline
            ):
                break
            time.sleep(0.2)
        assert seen == {'faktry_jobs_total{type="media.probe",status="succeeded"} 6'}
        web_log = next(p for p in platform.procs if p.name == "web").log.read_text(errors="replace")
        pids = {int(x.split()[-1]) for x in web_log.splitlines() if "Booting worker with pid" in x}
        assert len(pids) == 2
    finally:
        platform.stop()
        svc.clear_namespace(namespace)


def test_faktry_up_starts_again_any_of_its_processes_that_dies(zero_setup):
    """kill -9 of the scheduler and of the web server under `faktry up`: each is started
    again (with its backoff), the web answers again, and `faktry up` itself stays up."""
    from tests.platform import children_of

    platform, headers, _, proc = zero_setup

    def child(marker: str) -> int | None:
        for pid in children_of(proc.popen.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue  # gone meanwhile
            if marker in cmdline:
                return pid
        return None

    for marker in ("scheduler", "gunicorn"):
        victim = child(marker)
        assert victim is not None, f"no {marker} under faktry up"
        os.kill(victim, 9)
        deadline = time.monotonic() + 30
        while child(marker) in (None, victim):
            assert time.monotonic() < deadline, f"{marker} was not started again:\n{proc.output()}"
            time.sleep(0.1)
    platform.wait_healthy(timeout=60)
    assert requests.get(f"{platform.base}/v1/jobs", headers=headers, timeout=10).status_code == 200
    assert proc.popen.poll() is None, proc.output()
