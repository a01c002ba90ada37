"""Ingest: how fast each way of bringing a large file in takes it, and how much memory every
faktry process holds meanwhile.

A real ``faktry web`` (gunicorn, 2 processes x 8 threads) and ``faktry worker --kind media``
(2 processes, 1 thread each) on PostgreSQL (SQLite when none answers), local storage or S3
(moto's server in a process of its own). The file is a real MP4 (720p H.264 noise at a high
bitrate and AAC, one short clip repeated with ffmpeg's concat demuxer), cached under
``var/bench/`` by size. Each path runs for a tenant of its own (a URL fetch of bytes the
tenant already holds would store nothing), after a warm-up on the short clip:

- ``form``: ``POST /v1/files``, a multipart body streamed from disk with its Content-Length;
  timed until the 201.
- ``url``: a ``media.probe`` job whose input is a URL served from disk by a loopback server
  in this process (``FAKTRY_URL_FETCH_ALLOW_LOOPBACK``); timed from the submit until the job
  has succeeded (fetched, stored in the library, probed).
- ``tus``: ``POST /v1/uploads/tus`` then ``PATCH`` in chunks of 32 MiB (tuspy); the last
  answer names the new file (``Faktry-File-Id``).
- ``s3``: ``POST /v1/uploads``, each part ``PUT`` to its presigned URL straight from disk,
  then ``POST`` its ``complete_url`` (on local storage the answer is tus, and tus is used).

A path whose endpoint answers 404 or 405 prints "not available". Beside them, a baseline:
the same file copied and hashed (SHA-256) in one pass by this process, what any server must
at least do with it; ``x baseline`` is each path's time over the baseline's.

For each path it prints the time, the rate, and the resident memory (VmRSS sampled every
50 ms from /proc) of every faktry process: each gunicorn worker and the master, each worker
process and the supervisor; its peak over the transfer and its growth over what it held when
the transfer began. ffprobe and ffmpeg are counted apart (their VmHWM). Meanwhile a thread
asks ``GET /healthz`` every 50 ms: p50 and p99 say whether the web stayed responsive.

``--transcode`` then turns the uploaded file into ``mp4_480p`` with a ``video.transcode``
job and reports the same for it.

    python -m bench.ingest                                  # 1 GiB, local storage, every path
    python -m bench.ingest --storage s3 --paths form,url    # the same on S3 (moto)
    python -m bench.ingest --size 4G --paths form,url --transcode
    python -m bench.ingest --quick                          # 64 MiB, local storage (smoke)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import boto3
import requests

from bench.common import (
    ROOT,
    bench_settings,
    bench_tier,
    free_port,
    make_tenant,
    percentile,
    postgres_database,
    redis_url,
)
from faktry import migrate
from tests.platform import Platform, Proc

MiB = 1 << 20
CACHE = ROOT / "var" / "bench"
PATHS = ("form", "url", "tus", "s3")
TUS_CHUNK = 32 * MiB
PRESET = "mp4_480p"
SAMPLE_SECONDS = 0.05
#: What the quick mode's test holds the web processes to (growth while taking the file).
QUICK_WEB_GROWTH_BOUND_MB = 64
_TOOLS = ("ffmpeg", "ffprobe")


class NotAvailable(Exception):
    """The path's endpoint answered 404 or 405: this faktry does not offer it."""


# -- the file ---------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True, timeout=600
    )


def _clip() -> Path:
    """Half a second of 720p30 noise, H.264 at a near-lossless quantizer (~400 Mbit/s) with
    AAC: big per second, so a large file holds few frames to decode."""
    clip = CACHE / "ingest-clip.mp4"
    if not clip.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        part = clip.with_suffix(".part.mp4")
        _ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=0.5",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.5",
            "-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "4",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(part),
        )  # fmt: skip
        part.rename(clip)
    return clip


def media_file(size: int) -> Path:
    """A valid MP4 of about ``size`` bytes (within half a clip), made once and kept."""
    clip = _clip()
    target = CACHE / f"ingest-{size}.mp4"
    if target.exists():
        return target
    copies = max(1, round(size / clip.stat().st_size))
    listing = CACHE / f"ingest-{size}.txt"
    listing.write_text(f"file '{clip.name}'\n" * copies)
    part = target.with_suffix(".part.mp4")
    try:
        _ffmpeg(
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(part),
        )
        part.rename(target)
    finally:
        listing.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    return target


def baseline(source: Path, tmp: Path) -> float:
    """Seconds to copy ``source`` and hash it in one pass (what storing an upload does)."""
    dest = tmp / "baseline-copy"
    digest = hashlib.sha256()
    started = time.perf_counter()
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(MiB):
            digest.update(chunk)
            out.write(chunk)
    took = time.perf_counter() - started
    dest.unlink()
    return took


# -- what faktry's processes hold -------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        values[name] = value.strip()
    return values


def _children(pid: int) -> list[int]:
    """Live children of ``pid``, whichever of its threads started them."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _kb(value: str) -> int:
    return int(value.split()[0]) if value else 0


@dataclass
class Seen:
    """One process over one window, in kB."""

    role: str
    pid: int
    name: str
    first: int
    peak: int
    hwm: int
    #: Running when the window opened: its growth is the window's doing.
    before: bool


#: The role of a process, by its root's role and its depth below it.
_ROLES = {
    "web": ("web master", "web worker", "web child"),
    "worker": ("worker supervisor", "worker process", "worker child"),
    "s3": ("S3 stand-in (moto)", "S3 stand-in (moto)", "S3 stand-in (moto)"),
}


class Memory:
    """Samples the resident size of every process under each root until stopped."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.seen: dict[int, Seen] = {}
        self._opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Memory:
        self._sample()  # the baseline, before the work starts
        self._opened = True
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        for kind, root in self.roots.items():
            todo = [(root, 0)]
            while todo:
                pid, depth = todo.pop()
                todo += [(child, depth + 1) for child in _children(pid)]
                try:
                    status = _status(pid)
                except OSError:
                    continue
                name = status.get("Name", "?")
                rss, hwm = _kb(status.get("VmRSS", "")), _kb(status.get("VmHWM", ""))
                if rss == 0:
                    continue  # a zombie, or a kernel thread
                seen = self.seen.get(pid)
                if seen is None:
                    role = name if name in _TOOLS else _ROLES[kind][min(depth, 2)]
                    self.seen[pid] = Seen(role, pid, name, rss, rss, hwm, before=not self._opened)
                else:
                    seen.peak = max(seen.peak, rss)
                    seen.hwm = max(seen.hwm, hwm)

    def of(self, *roles: str) -> list[Seen]:
        return [s for s in self.seen.values() if s.role in roles]


def mb(kb: float) -> float:
    return kb / 1024


class Health:
    """Asks ``GET /healthz`` every 50 ms from a thread of its own until stopped."""

    def __init__(self, base: str) -> None:
        self.url = base + "/healthz"
        self.took: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Health:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get(self.url, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                self.took.append(time.perf_counter() - started)
                self.failed += not ok
                self._stop.wait(SAMPLE_SECONDS)


# -- the paths ----------------------------------------------------------------------------------


class _Body:
    """Bytes from memory and slices of a file, read in order as one body with a length, so
    requests sends a Content-Length and reads the file as it sends it."""

    def __init__(self, pieces: list[bytes | tuple[Path, int, int]]) -> None:
        self._pieces = pieces
        self._length = sum(len(p) if isinstance(p, bytes) else p[2] for p in pieces)
        self._index = 0
        self._open: Any = None
        self._left = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self._length
        while self._index < len(self._pieces):
            if self._open is None:
                piece = self._pieces[self._index]
                if isinstance(piece, bytes):
                    self._open, self._left = io.BytesIO(piece), len(piece)
                else:
                    path, offset, length = piece
                    self._open, self._left = path.open("rb"), length
                    self._open.seek(offset)
            data = self._open.read(min(size, self._left))
            self._left -= len(data)
            if data:
                return bytes(data)
            self._open.close()
            self._open = None
            self._index += 1
        return b""


def form(base: str, headers: dict[str, str], path: Path) -> str:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    body = _Body([head, (path, 0, path.stat().st_size), f"\r\n--{boundary}--\r\n".encode()])
    answer = requests.post(
        f"{base}/v1/files",
        data=body,  # a reader with a length: sent as read
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=(10, 3600),
    )
    if answer.status_code != 201:
        raise RuntimeError(f"POST /v1/files answered {answer.status_code}: {answer.text[:500]}")
    return str(answer.json()["id"])


class Origin:
    """A loopback HTTP server handing out files from disk (``sendfile``), by path."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                source = files.get(self.path)
                if source is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(source.stat().st_size))
                self.end_headers()
                with source.open("rb") as fh:
                    self.connection.sendfile(fh)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: Path) -> str:
        name = f"/{uuid.uuid4().hex[:8]}/{path.name}"
        self.files[name] = path
        return self.base + name

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for_job(base: str, headers: dict[str, str], job_id: str, timeout: float = 7200) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with requests.Session() as http:
        while time.monotonic() < deadline:
            job: dict[str, Any] = http.get(f"{base}/v1/jobs/{job_id}", headers=headers, timeout=30).json()
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "canceled"):
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
            time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish")


def submit(base: str, headers: dict[str, str], body: dict[str, Any]) -> str:
    answer = requests.post(f"{base}/v1/jobs", headers=headers, json=body, timeout=60)
    if answer.status_code != 202:
        raise RuntimeError(f"POST /v1/jobs answered {answer.status_code}: {answer.text[:500]}")
    return str(answer.json()["id"])


def url(base: str, headers: dict[str, str], path: Path, origin: Origin) -> str:
    job_id = submit(base, headers, {"type": "media.probe", "input": {"url": origin.serve(path)}})
    return str(wait_for_job(base, headers, job_id)["input"]["file_id"])


def _tus_upload(uploader: Any) -> str:
    from tusclient.exceptions import TusCommunicationError

    try:
        uploader.upload()
    except TusCommunicationError as err:
        if err.status_code in (404, 405):
            raise NotAvailable(f"the tus endpoint answered {err.status_code}") from None
        raise
    file_id = uploader.request.response_headers.get("faktry-file-id") if uploader.request else None
    if not file_id:
        raise RuntimeError("the last PATCH named no file (Faktry-File-Id)")
    return str(file_id)


def tus(base: str, headers: dict[str, str], path: Path, *, endpoint: str = "/v1/uploads/tus") -> str:
    from tusclient.client import TusClient

    client = TusClient(urljoin(base, endpoint), headers=headers)
    metadata = {"filename": path.name, "filetype": "video/mp4"}
    return _tus_upload(client.uploader(file_path=str(path), chunk_size=TUS_CHUNK, metadata=metadata))


def _tus_given(base: str, headers: dict[str, str], path: Path, tus_url: str) -> str:
    """Tus at the URL an upload's answer gave: the upload itself when a HEAD tells its
    offset, else where to create one."""
    from tusclient.client import TusClient

    target = urljoin(base, tus_url)
    head = requests.head(target, headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=30)
    if "Upload-Offset" not in head.headers:
        return tus(base, headers, path, endpoint=target)
    client = TusClient(target, headers=headers)
    return _tus_upload(client.uploader(file_path=str(path), url=target, chunk_size=TUS_CHUNK))


def direct(base: str, headers: dict[str, str], path: Path) -> str:
    size = path.stat().st_size
    with requests.Session() as http:
        answer = http.post(
            f"{base}/v1/uploads", headers=headers, json={"filename": path.name, "size": size}, timeout=60
        )
        if answer.status_code in (404, 405):
            raise NotAvailable(f"POST /v1/uploads answered {answer.status_code}")
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"POST /v1/uploads answered {answer.status_code}: {answer.text[:500]}")
        upload = answer.json()
        if upload.get("protocol") == "tus":
            return _tus_given(base, headers, path, upload["tus_url"])
        parts, offset = [], 0
        for part in sorted(upload["parts"], key=lambda p: p["number"]):
            # Presigned: the URL is the authority, faktry's key is not sent to storage.
            put = http.put(part["url"], data=_Body([(path, offset, part["size"])]), timeout=(10, 600))
            if put.status_code != 200:
                raise RuntimeError(
                    f"PUT of part {part['number']} answered {put.status_code}: {put.text[:500]}"
                )
            parts.append({"number": part["number"], "etag": put.headers.get("ETag", "")})
            offset += part["size"]
        complete_url = urljoin(base, upload["complete_url"])
        done = http.post(complete_url, headers=headers, json={"parts": parts}, timeout=(10, 3600))
        if done.status_code in (400, 422):  # a server that lists the parts itself takes no body
            done = http.post(complete_url, headers=headers, timeout=(10, 3600))
        if done.status_code != 201:
            raise RuntimeError(f"POST complete_url answered {done.status_code}: {done.text[:500]}")
        return str(done.json()["id"])


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Measured:
    name: str
    size: int
    seconds: float
    memory: Memory
    health: Health

    @property
    def rate(self) -> float:
        return self.size / MiB / self.seconds


@dataclass
class Run:
    size: int
    storage: str
    database: str
    baseline: float
    rows: list[Measured | tuple[str, str]] = field(default_factory=list)
    transcode: Measured | None = None


def measured(
    name: str, size: int, roots: dict[str, int], base: str, work: Callable[[], str]
) -> tuple[Measured, str]:
    """``work`` timed, with the memory of every process under ``roots`` and the web's health
    checks sampled meanwhile; and what it returned."""
    with Memory(roots) as memory, Health(base) as health:
        started = time.perf_counter()
        got = work()
        took = time.perf_counter() - started
    return Measured(name, size, took, memory, health), got


@contextlib.contextmanager
def s3_server(tmp: Path) -> Iterator[tuple[str, Proc]]:
    """moto's S3 server in a process (and process group) of its own."""
    port = free_port()
    proc = Proc(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        dict(os.environ),
        tmp,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint + "/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.popen.poll() is not None:
                    raise RuntimeError(f"moto did not start:\n{proc.output()}") from None
                time.sleep(0.1)
        yield endpoint, proc
    finally:
        proc.stop()


def run(args: argparse.Namespace, source: Path, paths: list[str]) -> Run:
    clip = _clip()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faktry-ingest-")))
        url_, namespace = stack.enter_context(redis_url(tmp))
        pg = stack.enter_context(postgres_database())
        database_url = pg or f"sqlite:///{tmp / 'faktry.db'}"
        migrate.upgrade(database_url)
        overrides: dict[str, Any] = {}
        roots: dict[str, int] = {}
        if args.storage == "s3":
            endpoint, moto = stack.enter_context(s3_server(tmp))
            bucket = f"faktry-bench-{uuid.uuid4().hex[:8]}"
            boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).create_bucket(Bucket=bucket)  # fmt: skip
            overrides = {
                "storage_url": f"s3://{bucket}/media", "s3_endpoint_url": endpoint,
                "s3_access_key_id": "testing", "s3_secret_access_key": "testing",
            }  # fmt: skip
            roots["s3"] = moto.popen.pid
        settings = bench_settings(
            tmp, redis=url_, namespace=namespace, database_url=database_url,
            web_workers=2, web_threads=8, max_upload_bytes=1 << 40,
            url_fetch_allow_loopback=True, url_fetch_timeout_seconds=3600.0,
            probe_timeout=300.0, ffmpeg_timeout_factor=50.0, **overrides,
        )  # fmt: skip
        tier = bench_tier(database_url)
        platform = Platform(settings, tmp)
        stack.callback(platform.stop)
        origin = Origin()
        stack.callback(origin.close)
        base = platform.base
        result = Run(
            source.stat().st_size, args.storage, "PostgreSQL" if pg else "SQLite", baseline(source, tmp)
        )
        try:
            roots["web"] = platform.start_web().popen.pid
            roots["worker"] = platform.start_worker(2, 1, kind="media").popen.pid
            platform.wait_healthy()
            ways: dict[str, Callable[[dict[str, str], Path], str]] = {
                "form": lambda h, p: form(base, h, p),
                "url": lambda h, p: url(base, h, p, origin),
                "tus": lambda h, p: tus(base, h, p),
                "s3": lambda h, p: direct(base, h, p),
            }
            uploaded = None
            for name in paths:
                headers = {
                    "Authorization": f"Bearer {make_tenant(database_url, tier=tier, credits=10**6)[1]}"
                }
                try:
                    ways[name](headers, clip)  # warm: imports, connections, the code path
                except NotAvailable as err:
                    result.rows.append((name, str(err)))
                    continue
                row, file_id = measured(
                    name, result.size, roots, base, functools.partial(ways[name], headers, source)
                )
                result.rows.append(row)
                print(f"  {name}: {row.seconds:.1f} s", file=sys.stderr, flush=True)
                if uploaded is None:
                    uploaded = (headers, file_id)
            if args.transcode:
                if uploaded is None:
                    headers = {
                        "Authorization": f"Bearer {make_tenant(database_url, tier=tier, credits=10**6)[1]}"
                    }
                    uploaded = (headers, form(base, headers, source))
                headers, file_id = uploaded
                body = {
                    "type": "video.transcode",
                    "input": {"file_id": file_id},
                    "params": {"preset": PRESET},
                }
                result.transcode, _ = measured(
                    "transcode", result.size, roots, base,
                    lambda: wait_for_job(base, headers, submit(base, headers, body))["id"],
                )  # fmt: skip
        except BaseException:
            print(platform.logs(), file=sys.stderr)
            raise
    return result


# -- the report ---------------------------------------------------------------------------------

# A child other than ffmpeg/ffprobe is, in practice, a worker forked to start one of them and
# not yet exec'd: it shares its parent's pages. Listed, and counted in the bound, not in growth.
_WEB = ("web worker",)
_WORKER = ("worker process",)
_FAKTRY = ("web master", *_WEB, "web child", "worker supervisor", *_WORKER, "worker child")


def _peak(row: Measured, roles: tuple[str, ...]) -> tuple[float, float]:
    """The largest peak (MiB) of processes in these roles, and the largest growth (MiB) of
    those that were running when the work began."""
    seen = row.memory.of(*roles)
    if not seen:
        return 0.0, 0.0
    grew = [s.peak - s.first for s in seen if s.before]
    return mb(max(s.peak for s in seen)), mb(max(grew, default=0))


def _tools(row: Measured) -> str:
    seen = row.memory.of(*_TOOLS)
    if not seen:
        return "-"
    return " ".join(
        f"{name} {mb(max(s.hwm for s in seen if s.name == name)):.1f}"
        for name in sorted({s.name for s in seen})
    )


HEADER = (
    f"{'path':<10}{'size MiB':>9}{'seconds':>9}{'MiB/s':>8}{'x baseline':>11}  {'web MiB (+growth)':<18}"
    f"{'master MiB':>10}  {'worker MiB (+growth)':<21}{'healthz p50/p99 ms':<20}ffprobe/ffmpeg MiB (VmHWM)"
)


def line(row: Measured, base_seconds: float) -> str:
    web, web_growth = _peak(row, _WEB)
    master, _ = _peak(row, ("web master",))
    worker, worker_growth = _peak(row, _WORKER)
    h = row.health.took
    healthz = f"{percentile(h, 50) * 1000:.1f}/{percentile(h, 99) * 1000:.1f}"
    if row.health.failed:
        healthz += f" ({row.health.failed} failed)"
    return (
        f"{row.name:<10}{row.size / MiB:>9.1f}{row.seconds:>9.2f}{row.rate:>8.1f}{row.seconds / base_seconds:>10.2f}x  "
        f"{f'{web:.1f} ({web_growth:+.1f})':<18}{master:>10.1f}  {f'{worker:.1f} ({worker_growth:+.1f})':<21}"
        f"{healthz:<20}{_tools(row)}"
    )


def details(row: Measured) -> list[str]:
    out = [f"  {row.name}: every process, MiB (at start, or when first seen (*) -> peak, VmHWM)"]
    for s in sorted(row.memory.seen.values(), key=lambda s: (s.role, s.pid)):
        out.append(
            f"    {s.role:<20} pid {s.pid:<8} {s.name:<16} {mb(s.first):8.1f}{' ' if s.before else '*'} -> "
            f"{mb(s.peak):8.1f}  hwm {mb(s.hwm):8.1f}"
        )
    return out


def report(result: Run) -> None:
    base_rate = result.size / MiB / result.baseline
    print(
        f"ingest of a {result.size / MiB:.1f} MiB MP4 ({result.size:,} bytes), {result.storage} storage, "
        f"{result.database}; faktry web 2 processes x 8 threads, faktry worker --kind media 2 x 1"
    )
    print(
        f"baseline  copy + SHA-256 in one pass, this process: {result.baseline:.2f} s, {base_rate:.1f} MiB/s"
    )
    print(HEADER)
    measured_rows = [r for r in result.rows if isinstance(r, Measured)]
    for row in result.rows:
        if isinstance(row, Measured):
            print(line(row, result.baseline))
        else:
            print(f"{row[0]:<10}not available ({row[1]})")
    if result.transcode is not None:
        print(line(result.transcode, result.baseline) + f"  (to {PRESET})")
        measured_rows.append(result.transcode)
    for row in measured_rows:
        print("\n".join(details(row)))
    if not measured_rows:
        return
    every = [s for row in measured_rows for s in row.memory.of(*_FAKTRY)]
    top = max(every, key=lambda s: s.peak)
    web_growth = max((_peak(r, _WEB)[1] for r in measured_rows), default=0.0)
    print(
        f"largest faktry process: {mb(top.peak):.1f} MiB resident ({top.role}, pid {top.pid}); "
        f"web processes grew at most {web_growth:+.1f} MiB while taking {result.size / MiB:.1f} MiB"
    )
    fastest = max((r for r in measured_rows if r.name in PATHS), key=lambda r: r.rate, default=None)
    if fastest is not None:
        print(
            f"ratio {fastest.name}/baseline (the fastest path): {fastest.seconds / result.baseline:.2f}x the time"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="the file's size: 64M, 1G, 4G...")
    parser.add_argument("--quick", action="store_true", help="64 MiB (smoke)")
    parser.add_argument("--storage", choices=("local", "s3"), default="local")
    parser.add_argument("--paths", default=",".join(PATHS), help="of form,url,tus,s3")
    parser.add_argument("--transcode", action="store_true", help=f"then a {PRESET} transcode of the file")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        parser.error("ffmpeg and ffprobe are needed")
    size = parse_size("64M" if args.quick else args.size)
    source = media_file(size)
    report(run(args, source, paths))


if __name__ == "__main__":
    main()
