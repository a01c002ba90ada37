"""What the platform adds around media work: faktry's jobs beside the same tool run directly.

One real ``faktry web`` and one ``faktry worker --kind media`` process (1 thread, idle
otherwise) run every job; times go from the submit to the job's ``succeeded`` event. Runs
alternate with the direct ones. The target is the job at most 1.05x the direct ffmpeg
command and at most 1.2x direct Pillow.

Transcode: a generated 720p clip (testsrc + a tone, H.264/AAC) transcoded to ``mp4_480p``
by a ``video.transcode`` job, beside `pipelines.media.ffmpeg.transcode` run directly on
the same file with the same preset (the same ffmpeg command; the input is probed
beforehand, outside the timing). The job's time includes the pick-up, the claim, the
storing of the output (its facts read from its MP4 header, its sha256, its move into
storage) and the database work.

Image resize: a generated 6000x4000 JPEG resized to fit 300x200 (JPEG q85) by an
``image.resize`` job, beside direct Pillow doing the same work on the same file (decode at
a reduced DCT scale, LANCZOS, save with the same settings). Then the decoder alone, in
resizes per second: ``images.resize(draft=True)`` (what ``image.resize`` jobs run) beside
plain Pillow decoding the whole image, and ``draft=False``.

    python -m bench.media_overhead            # 10 s clip, 3 transcodes and 15 resizes each; 8 s per decoder
    python -m bench.media_overhead --quick    # 3 s clip, 1 transcode and 3 resizes each; 2 s per decoder (smoke)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
from PIL import Image

from bench.common import jobs_finished, redis_url, sqlite_platform, stamp, upload
from pipelines.media import ffmpeg, images

PRESET = "mp4_480p"
BOX = (300, 200)
RESIZE = {"width": BOX[0], "height": BOX[1], "mode": "fit", "format": "jpeg", "quality": 85}


def make_clip(path: Path, seconds: float) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=1280x720:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(path),
        ],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def make_jpeg(path: Path, size: tuple[int, int] = (6000, 4000)) -> Path:
    """A photo-sized JPEG with smooth detail (upscaled noise over gradients), not a flat colour."""
    small = (size[0] // 10, size[1] // 10)
    red = Image.effect_noise(small, 60)
    green = Image.linear_gradient("L").resize(small)
    blue = Image.radial_gradient("L").resize(small)
    Image.merge("RGB", (red, green, blue)).resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def pillow_resize(src: Path, dest: Path) -> None:
    """Direct Pillow: what a careful script does for a thumbnail of a large JPEG."""
    with Image.open(src) as im:
        im.draft("RGB", BOX)
        im.load()
        scale = min(BOX[0] / im.width, BOX[1] / im.height, 1.0)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        small = im.resize(size, Image.Resampling.LANCZOS)
    small.save(dest, format="JPEG", quality=RESIZE["quality"], optimize=True)


@dataclass
class Timings:
    direct: list[float] = field(default_factory=list)
    faktry: list[float] = field(default_factory=list)
    pickup: list[float] = field(default_factory=list)
    in_worker: list[float] = field(default_factory=list)
    probe: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


class Jobs:
    """Submits one job at a time to an idle platform and times it from its events."""

    def __init__(self, base: str, headers: dict[str, str], client: redis.Redis, namespace: str) -> None:
        self.base, self.headers, self.client, self.namespace = base, headers, client, namespace
        self.http = requests.Session()

    def run(self, body: dict[str, Any], into: Timings | None = None) -> None:
        kind = body["type"]
        done_before = sum(jobs_finished(self.client, self.namespace, kind).values())
        time.sleep(0.5)  # the worker's consumers back off to their idle poll first
        sent = time.time()
        r = self.http.post(f"{self.base}/v1/jobs", headers=self.headers, json=body, timeout=60)
        if r.status_code != 202:
            raise RuntimeError(f"submit answered {r.status_code}: {r.text[:500]}")
        job_id = r.json()["id"]
        deadline = time.monotonic() + 600
        while sum(jobs_finished(self.client, self.namespace, kind).values()) <= done_before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish")
            time.sleep(0.002)
        events = self.http.get(f"{self.base}/v1/jobs/{job_id}/events", headers=self.headers, timeout=60)
        at = {e["kind"]: stamp(e["at"]) for e in events.json()["data"]}
        if "succeeded" not in at:
            raise RuntimeError(f"job {job_id} did not succeed: {events.text[:2000]}")
        if into is not None:
            into.faktry.append(at["succeeded"] - sent)
            into.pickup.append(at["started"] - sent)
            into.in_worker.append(at["succeeded"] - at["started"])

    def close(self) -> None:
        self.http.close()


def alternate(runs: int, direct: Callable[[], None], job: Callable[[], None]) -> None:
    for i in range(runs):
        first, second = (direct, job) if i % 2 == 0 else (job, direct)
        first()
        second()


def jobs(
    tmp: Path, url: str, namespace: str, clip: Path, jpeg: Path, transcodes: int, resizes: int
) -> tuple[Timings, Timings]:
    platform, headers = sqlite_platform(tmp, url, namespace, credits=1000)
    client = redis.Redis.from_url(url)
    video, image = Timings(), Timings()
    submit: Jobs | None = None
    try:
        platform.start_web()
        platform.start_worker(1, 1, kind="media")
        platform.wait_healthy()
        submit = Jobs(platform.base, headers, client, namespace)
        clip_id = upload(platform.base, headers, clip)
        jpeg_id = upload(platform.base, headers, jpeg)
        transcode = {"type": "video.transcode", "input": {"file_id": clip_id}, "params": {"preset": PRESET}}
        resize = {"type": "image.resize", "input": {"file_id": jpeg_id}, "params": RESIZE}
        # Warm the worker (imports, its connections, ffprobe, Pillow's plugins) with jobs it
        # will not be timed on.
        submit.run({"type": "media.probe", "input": {"file_id": clip_id}})
        submit.run(resize)

        def direct_transcode() -> None:
            start = time.perf_counter()
            info = ffmpeg.probe(clip)
            probed = time.perf_counter()
            target = tmp / f"direct-{time.monotonic_ns()}"
            ffmpeg.transcode(clip, target, PRESET, info=info, timeout=600)
            video.direct.append(time.perf_counter() - probed)
            video.probe.append(probed - start)
            shutil.rmtree(target)

        def direct_resize() -> None:
            time.sleep(0.5)  # the same pause as before a job, so the caches cool alike
            start = time.perf_counter()
            pillow_resize(jpeg, tmp / "direct.jpg")
            image.direct.append(time.perf_counter() - start)

        alternate(transcodes, direct_transcode, lambda: submit.run(transcode, video))
        alternate(resizes, direct_resize, lambda: submit.run(resize, image))
    except BaseException:
        print(platform.logs())
        raise
    finally:
        if submit is not None:
            submit.close()
        platform.stop()
        client.close()
    return video, image


def per_second(work: Callable[[], None], budget: float, least: int) -> float:
    work()  # warm: file cache, Pillow's plugins
    done, start = 0, time.perf_counter()
    while done < least or time.perf_counter() - start < budget:
        work()
        done += 1
    return done / (time.perf_counter() - start)


def decoders(tmp: Path, src: Path, budget: float, least: int) -> dict[str, float]:
    out = tmp / "resized"

    def faktry(draft: bool) -> Callable[[], None]:
        def run() -> None:
            images.resize(
                src, out, width=BOX[0], height=BOX[1], mode="fit", format="jpeg", quality=85, draft=draft
            )

        return run

    def plain() -> None:
        with Image.open(src) as im:
            im.load()
            small = im.resize(BOX, Image.Resampling.LANCZOS)
        out.mkdir(exist_ok=True)
        small.save(out / "plain.jpg", format="JPEG", quality=85, optimize=True)

    return {
        "draft": per_second(faktry(True), budget, least),
        "plain": per_second(plain, budget, least),
        "no_draft": per_second(faktry(False), budget, least),
    }


def each(t: Timings, unit: float, fmt: str) -> str:
    return ", ".join(f"{f * unit:{fmt}}/{d * unit:{fmt}}" for f, d in zip(t.faktry, t.direct, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds, transcodes, resizes, budget, least = (3, 1, 3, 2.0, 2) if args.quick else (10, 3, 15, 8.0, 5)
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        clip = make_clip(tmp / "clip720.mp4", seconds)
        jpeg = make_jpeg(tmp / "large.jpg")
        video, image = jobs(tmp, url, namespace, clip, jpeg, transcodes, resizes)
        r = decoders(tmp, jpeg, budget, least)
    v = {k: video.median(k) for k in ("direct", "faktry", "pickup", "in_worker", "probe")}
    print(f"transcode of a {seconds} s 1280x720 H.264/AAC clip to {PRESET}, {transcodes} run(s) each, median")
    print(
        f"  direct  pipelines.media.ffmpeg.transcode          {v['direct']:7.2f} s  (+ its probe {v['probe']:.2f} s)"
    )
    print(f"  faktry  submit -> succeeded, one idle worker      {v['faktry']:7.2f} s")
    print(
        f"          of which submit -> started {v['pickup']:.2f} s, started -> succeeded {v['in_worker']:.2f} s"
    )
    print(
        f"  ratio faktry/direct: {v['faktry'] / v['direct']:.3f}x the wall time, target 1.05x"
        f"  (each run, s: {each(video, 1, '.2f')})"
    )
    i = {k: image.median(k) * 1000 for k in ("direct", "faktry", "pickup", "in_worker")}
    print(
        f"image resize of a 6000x4000 JPEG to fit {BOX[0]}x{BOX[1]} (JPEG q85), {resizes} run(s) each, median"
    )
    print(f"  direct  Pillow: draft decode + LANCZOS + save     {i['direct']:7.1f} ms")
    print(f"  faktry  submit -> succeeded, one idle worker      {i['faktry']:7.1f} ms")
    print(
        f"          of which submit -> started {i['pickup']:.1f} ms, started -> succeeded {i['in_worker']:.1f} ms"
    )
    print(
        f"  ratio faktry/direct: {i['faktry'] / i['direct']:.2f}x the wall time"
        f" (started -> succeeded: {i['in_worker'] / i['direct']:.2f}x), target 1.2x"
        f"  (each run, ms: {each(image, 1000, '.0f')})"
    )
    print("decoding alone: the same resize in a loop, one thread")
    print(f"  faktry images.resize(draft=True)            {r['draft']:7.2f} resizes/s")
    print(f"  plain Pillow: full decode + LANCZOS resize  {r['plain']:7.2f} resizes/s")
    print(f"  faktry images.resize(draft=False)           {r['no_draft']:7.2f} resizes/s")
    print(f"  ratio draft/plain: {r['draft'] / r['plain']:.1f}x the resizes per second")


if __name__ == "__main__":
    main()
