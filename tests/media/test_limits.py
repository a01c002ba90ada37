"""Bounded media work: ffmpeg and ffprobe run under a memory limit and die with their worker;
running out of memory fails a job once, for good; outputs that can never be made are refused
at submit, naming the field, or fail once with ``output_too_large``."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from faktry.config import Settings
from faktry.db import transaction
from faktry.errors import Canceled, OutputTooLarge, ProcessingFailed, ResourceLimitExceeded
from pipelines import jobtypes, runner
from pipelines.media import ffmpeg
from pipelines.media.ffmpeg import input_args, probe, run, sprite, thumbnail, transcode
from pipelines.media.images import resize
from pipelines.models import Job
from pipelines.steps import media as media_steps
from quotas import ledger
from tests.mediafixtures import H264, MakeMedia, lavfi_video
from tests.platform import children_of
from tests.web.helpers import upload

ROOT = Path(__file__).resolve().parents[2]
TINY = 16 * 1024**2  # too little even to load ffmpeg's libraries
GIB = 1024**3


def _endless(clip: Path) -> list[str]:
    return ["-stream_loop", "-1", "-re", *input_args(clip), "-f", "null", os.devnull]


@pytest.fixture(scope="session")
def portrait_clip(make_media: MakeMedia) -> Path:
    """1 s, 64x1280: a tile 3840 wide would be 76800 high."""
    return make_media("portrait.mp4", *lavfi_video("64x1280", 1), *H264)


# -- the child process --------------------------------------------------------------------------


def test_ffmpeg_runs_in_the_given_folder_under_the_given_address_space_limit(
    clip_small: Path, tmp_path: Path
) -> None:
    seen: dict[str, str] = {}

    def look() -> bool:
        for pid in children_of(os.getpid(), name="ffmpeg"):
            limits = Path(f"/proc/{pid}/limits").read_text()
            seen["limits"] = next(
                line for line in limits.splitlines() if line.startswith("Max address space")
            )
            seen["cwd"] = os.readlink(f"/proc/{pid}/cwd")
        return bool(seen)

    with pytest.raises(Canceled):
        run(_endless(clip_small), duration=None, timeout=30, should_cancel=look, check_interval=0.05,
            cwd=tmp_path, memory_limit=GIB)  # fmt: skip

    assert seen["limits"].split()[3:5] == [str(GIB), str(GIB)]  # soft and hard
    assert seen["cwd"] == str(tmp_path)


def test_ffmpeg_dies_with_a_worker_killed_with_sigkill(clip_small: Path) -> None:
    script = (
        "import sys; from pipelines.media.ffmpeg import run, input_args; "
        "run(['-stream_loop', '-1', '-re', *input_args(sys.argv[1]), '-f', 'null', '-'], "
        "duration=None, timeout=60)"
    )
    worker = subprocess.Popen([sys.executable, "-c", script, str(clip_small)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not (started := children_of(worker.pid, name="ffmpeg")):
            assert time.monotonic() < deadline, "ffmpeg never started"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in started):
            assert time.monotonic() < deadline, "ffmpeg outlived its worker"
            time.sleep(0.05)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2 :].split()[0]


# -- out of memory ------------------------------------------------------------------------------


def test_ffmpeg_under_a_tiny_memory_limit_fails_for_good(clip_small: Path, tmp_path: Path) -> None:
    with pytest.raises(ResourceLimitExceeded) as caught:
        run([*input_args(clip_small), "-f", "null", os.devnull], duration=None, timeout=30, memory_limit=TINY)
    assert caught.value.code == "resource_limit_exceeded" and not caught.value.transient
    assert str(clip_small) not in caught.value.message

    with pytest.raises(ResourceLimitExceeded):
        probe(clip_small, memory_limit=TINY)


@pytest.mark.parametrize(
    "stderr",
    [
        "x264 [error]: malloc of size 3569077 failed\nError initializing output stream 0:0",
        "[libvpx-vp9 @ 0x55db57c52380] Failed to initialize encoder: Memory allocation error",
        "[h264 @ 0x5581] Error splitting the input into NAL units.: Cannot allocate memory",
        "ffmpeg: error while loading shared libraries: libavcodec.so.59: failed to map segment",
    ],
)
def test_what_ffmpeg_prints_when_out_of_memory_is_resource_limit_exceeded(stderr: str) -> None:
    error = ffmpeg._classify_failure(stderr, 1, "ffmpeg")
    assert isinstance(error, ResourceLimitExceeded) and not error.transient


def test_ffmpeg_killed_from_outside_is_resource_limit_exceeded(clip_small: Path) -> None:
    """The kernel's OOM killer ends a process with SIGKILL; our own kills raise Canceled or
    ProcessingTimeout instead."""
    killed: list[int] = []

    def oom_kill() -> bool:
        for pid in children_of(os.getpid(), name="ffmpeg"):
            if pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return False

    with pytest.raises(ResourceLimitExceeded):
        run(_endless(clip_small), duration=None, timeout=30, should_cancel=oom_kill, check_interval=0.05)
    assert killed


def test_the_default_memory_limit_fits_real_transcodes(clip_720p: Path, tmp_path: Path) -> None:
    limit = Settings().ffmpeg_memory_limit_bytes
    assert limit > 0
    info = probe(clip_720p, memory_limit=limit)
    for preset in ("hls", "webm_vp9", "mp4_1080p"):
        outputs = transcode(clip_720p, tmp_path / preset, preset, info=info, timeout=120, memory_limit=limit)
        assert outputs


def test_a_job_out_of_memory_fails_once_and_releases_its_hold(
    client, tenant, runtime, clip_small, monkeypatch
) -> None:
    ctx = runtime.context
    real = jobtypes.JOB_TYPES["video.transcode"]

    def under_a_tiny_limit(step_ctx):
        return media_steps.transcode(dataclasses.replace(step_ctx, memory_limit_bytes=TINY))

    monkeypatch.setitem(
        jobtypes.JOB_TYPES, "video.transcode", dataclasses.replace(real, run=under_a_tiny_limit)
    )
    file_id = upload(client, tenant, clip_small).json["id"]
    body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_360p"}}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json

    runner.run(ctx, r.json["id"])  # no RetryLater: nothing to try again
    runner.run(ctx, r.json["id"])  # a redelivery finds it finished

    with transaction(ctx.sessions) as s:
        job = s.scalars(select(Job).where(Job.id == r.json["id"])).one()
        assert (job.status, job.attempts, job.error_code) == ("failed", 1, "resource_limit_exceeded")
        assert job.cost_charged == 0
        assert ledger.balance(s, tenant.id).held == 0
    shown = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert shown["error"]["code"] == "resource_limit_exceeded"


# -- outputs that can never be made -------------------------------------------------------------


def test_a_sprite_sheet_taller_than_jpeg_allows_is_refused_before_ffmpeg_runs(
    portrait_clip: Path, tmp_path: Path
) -> None:
    with pytest.raises(OutputTooLarge) as caught:
        sprite(portrait_clip, tmp_path / "out", info=probe(portrait_clip), frames=2, columns=2, width=3840,
               timeout=30)  # fmt: skip
    assert caught.value.code == "output_too_large" and not caught.value.transient
    assert not (tmp_path / "out").exists()


def test_a_frame_too_large_for_its_format_fails_with_output_too_large_not_a_retry(
    portrait_clip: Path, tmp_path: Path
) -> None:
    info = probe(portrait_clip)
    with pytest.raises(OutputTooLarge) as caught:
        thumbnail(portrait_clip, tmp_path, info=info, width=3840, timeout=30)
    assert not caught.value.transient
    with pytest.raises(OutputTooLarge):  # WebP stops at 16383 a side
        thumbnail(portrait_clip, tmp_path, info=info, width=1280, format="webp", timeout=30)
    # PNG has no such limit.
    assert thumbnail(portrait_clip, tmp_path, info=info, width=160, format="png", timeout=30)


def test_a_resize_box_beyond_the_deployments_pixel_limit_is_output_too_large(
    png_image: Path, tmp_path: Path
) -> None:
    limit = 400 * 300  # the picture's own size
    with pytest.raises(OutputTooLarge) as caught:
        resize(png_image, tmp_path, width=400, height=301, mode="fit", format="png", max_pixels=limit)
    assert caught.value.code == "output_too_large"
    assert resize(png_image, tmp_path, width=400, height=300, mode="fit", format="png", max_pixels=limit)


def test_a_failure_of_ours_is_still_transient(clip_small: Path, tmp_path: Path) -> None:
    args = [*input_args(clip_small), "-c:v", "no_such_encoder", str(tmp_path / "out.mp4")]
    with pytest.raises(ProcessingFailed) as caught:
        run(args, duration=None, timeout=30, memory_limit=GIB)
    assert caught.value.transient and not isinstance(caught.value, ResourceLimitExceeded)


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("video.thumbnail", {"sprite": True, "frames": 20, "columns": 20, "width": 3840}),
        ("video.thumbnail", {"sprite": True, "frames": 100, "columns": 18, "width": 3640}),
        ("image.resize", {"width": 8192, "height": 8192}),
        ("image.resize", {"width": 8192, "height": 6104, "mode": "fit"}),
    ],
)
def test_an_output_that_can_never_be_made_is_a_422_naming_the_field(
    client, tenant, clip_small, png_image, type_, params
) -> None:
    source = clip_small if type_.startswith("video.") else png_image
    file_id = upload(client, tenant, source).json["id"]
    body = {"type": type_, "input": {"file_id": file_id}, "params": params}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.json
    assert (r.json["error"]["code"], r.json["error"]["field"]) == ("output_too_large", "params.width")
    assert client.get("/v1/jobs", headers=tenant.headers).json["data"] == []


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("video.thumbnail", {"sprite": True, "frames": 20, "columns": 17, "width": 3840}),
        ("video.thumbnail", {"sprite": False, "columns": 20, "width": 3840}),  # not a sheet
        ("image.resize", {"width": 8192, "height": 6103}),
    ],
)
def test_outputs_just_within_the_limits_are_accepted(
    client, tenant, clip_small, png_image, type_, params
) -> None:
    source = clip_small if type_.startswith("video.") else png_image
    file_id = upload(client, tenant, source).json["id"]
    body = {"type": type_, "input": {"file_id": file_id}, "params": params}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
