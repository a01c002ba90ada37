"""What the platform adds around media work, and what JPEG draft decoding saves.

Transcode: a generated 720p clip (testsrc + a tone, H.264/AAC) transcoded to ``mp4_480p``
by a job through faktry (a real ``faktry web`` and one ``faktry worker --kind media``
process, 1 thread, idle otherwise: submit to the job's succeeded event), beside
`pipelines.media.ffmpeg.transcode` run directly on the same file with the same preset (the
same ffmpeg command; the input is probed beforehand, outside the timing). Runs alternate.
The job's time includes the worker's own ffprobe of the input, the ffprobe of the output,
its sha256, the copy into storage and the database work.

Images: ``images.resize(..., draft=True)`` (what ``image.resize`` jobs run) of a generated
6000x4000 JPEG to fit 300x200, beside plain Pillow decoding the whole image and resizing it
with the same filter (LANCZOS) and the same JPEG settings; ``draft=False`` shows faktry's
path without the draft decode.

    python -m bench.media_overhead            # 10 s clip, 3 runs each; 8 s per image variant
    python -m bench.media_overhead --quick    # 3 s clip, 1 run each; 2 s per image variant (smoke)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import requests
from PIL import Image

from bench.common import jobs_finished, redis_url, sqlite_platform, stamp, upload
from pipelines.media import ffmpeg, images

PRESET = "mp4_480p"


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


def transcodes(tmp: Path, url: str, namespace: str, clip: Path, runs: int) -> dict[str, list[float]]:
    platform, headers = sqlite_platform(tmp, url, namespace, credits=1000)
    client = redis.Redis.from_url(url)
    http = requests.Session()
    out: dict[str, list[float]] = {"direct": [], "faktry": [], "pickup": [], "in_worker": [], "probe": []}
    try:
        platform.start_web()
        platform.start_worker(1, 1, kind="media")
        platform.wait_healthy()
        file_id = upload(platform.base, headers, clip)
        body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": PRESET}}

        def direct() -> None:
            start = time.perf_counter()
            info = ffmpeg.probe(clip)
            probed = time.perf_counter()
            target = tmp / f"direct-{time.monotonic_ns()}"
            ffmpeg.transcode(clip, target, PRESET, info=info, timeout=600)
            out["direct"].append(time.perf_counter() - probed)
            out["probe"].append(probed - start)
            shutil.rmtree(target)

        def through_faktry() -> None:
            done_before = sum(jobs_finished(client, namespace, "video.transcode").values())
            time.sleep(0.5)  # the worker's consumers back off to their idle poll first
            sent = time.time()
            r = http.post(f"{platform.base}/v1/jobs", headers=headers, json=body, timeout=60)
            if r.status_code != 202:
                raise RuntimeError(f"submit answered {r.status_code}: {r.text[:500]}")
            job_id = r.json()["id"]
            deadline = time.monotonic() + 600
            while sum(jobs_finished(client, namespace, "video.transcode").values()) <= done_before:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} did not finish:\n{platform.logs()}")
                time.sleep(0.01)
            events = http.get(f"{platform.base}/v1/jobs/{job_id}/events", headers=headers, timeout=60).json()
            at = {e["kind"]: stamp(e["at"]) for e in events["data"]}
            if "succeeded" not in at:
                raise RuntimeError(f"job {job_id} did not succeed: {events}")
            out["faktry"].append(at["succeeded"] - sent)
            out["pickup"].append(at["started"] - sent)
            out["in_worker"].append(at["succeeded"] - at["started"])

        # Warm the worker (imports, its connections, ffprobe) with a probe job of the same file.
        probe = {"type": "media.probe", "input": {"file_id": file_id}}
        if http.post(f"{platform.base}/v1/jobs", headers=headers, json=probe, timeout=60).status_code != 202:
            raise RuntimeError("could not submit the warm-up job")
        deadline = time.monotonic() + 60
        while not jobs_finished(client, namespace, "media.probe"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the warm-up job did not finish:\n{platform.logs()}")
            time.sleep(0.05)
        for i in range(runs):
            first, second = (direct, through_faktry) if i % 2 == 0 else (through_faktry, direct)
            first()
            second()
    finally:
        platform.stop()
        client.close()
        http.close()
    return out


def per_second(work: Callable[[], None], budget: float, least: int) -> float:
    work()  # warm: file cache, Pillow's plugins
    done, start = 0, time.perf_counter()
    while done < least or time.perf_counter() - start < budget:
        work()
        done += 1
    return done / (time.perf_counter() - start)


def resizes(tmp: Path, budget: float, least: int) -> dict[str, float]:
    src = make_jpeg(tmp / "large.jpg")
    out = tmp / "resized"

    def faktry(draft: bool) -> Callable[[], None]:
        def run() -> None:
            images.resize(src, out, width=300, height=200, mode="fit", format="jpeg", quality=85, draft=draft)

        return run

    def plain() -> None:
        with Image.open(src) as im:
            im.load()
            small = im.resize((300, 200), Image.Resampling.LANCZOS)
        out.mkdir(exist_ok=True)
        small.save(out / "plain.jpg", format="JPEG", quality=85, optimize=True)

    return {
        "draft": per_second(faktry(True), budget, least),
        "plain": per_second(plain, budget, least),
        "no_draft": per_second(faktry(False), budget, least),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds, runs, budget, least = (3, 1, 2.0, 2) if args.quick else (10, 3, 8.0, 5)
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        clip = make_clip(tmp / "clip720.mp4", seconds)
        t = transcodes(tmp, url, namespace, clip, runs)
        r = resizes(tmp, budget, least)
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"transcode of a {seconds} s 1280x720 H.264/AAC clip to {PRESET}, {runs} run(s) each, median")
    print(
        f"  direct  pipelines.media.ffmpeg.transcode          {med['direct']:7.2f} s  (+ its probe {med['probe']:.2f} s)"
    )
    print(f"  faktry  submit -> succeeded, one idle worker      {med['faktry']:7.2f} s")
    print(
        f"          of which submit -> started {med['pickup']:.2f} s, started -> succeeded {med['in_worker']:.2f} s"
    )
    each = ", ".join(f"{f:.2f}/{d:.2f}" for f, d in zip(t["faktry"], t["direct"], strict=True))
    print(f"  ratio faktry/direct: {med['faktry'] / med['direct']:.2f}x the wall time  (each run, s: {each})")
    print("image resize of a 6000x4000 JPEG to fit 300x200 (JPEG q85), one thread")
    print(f"  faktry images.resize(draft=True)            {r['draft']:7.2f} resizes/s")
    print(f"  plain Pillow: full decode + LANCZOS resize  {r['plain']:7.2f} resizes/s")
    print(f"  faktry images.resize(draft=False)           {r['no_draft']:7.2f} resizes/s")
    print(f"  ratio draft/plain: {r['draft'] / r['plain']:.1f}x the resizes per second")


if __name__ == "__main__":
    main()
