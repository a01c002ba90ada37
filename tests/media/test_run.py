"""ffmpeg process control: progress, cancel, timeout, and never a process left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from faktry.errors import Canceled, ProcessingFailed, ProcessingTimeout
from pipelines.media.ffmpeg import input_args, probe, run, transcode
from tests.platform import children_of


def _ffmpeg_children() -> list[int]:
    """Pids of ffmpeg processes whose parent is this test process (alive or zombie)."""
    return children_of(os.getpid(), name="ffmpeg", zombies=True)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _endless(clip: Path) -> list[str]:
    """Read `clip` in a loop at real-time speed: ffmpeg never finishes on its own."""
    return ["-stream_loop", "-1", "-re", *input_args(clip), "-f", "null", os.devnull]


@pytest.fixture
def no_ffmpeg_left() -> object:
    assert _ffmpeg_children() == []
    yield
    assert _ffmpeg_children() == []


def test_progress_rises_monotonically_to_one(clip_small: Path, no_ffmpeg_left: None) -> None:
    seen: list[float] = []
    # -re and a short stats period make ffmpeg report several blocks within one second.
    args = ["-stats_period", "0.1", "-re", *input_args(clip_small), "-f", "null", os.devnull]

    run(args, duration=probe(clip_small).duration, timeout=30, on_progress=seen.append)

    assert len(seen) >= 3
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)
    assert 0 < seen[0] < 1
    assert seen[-1] == 1.0


def test_transcode_reports_progress_ending_at_one(clip_small: Path, tmp_path: Path) -> None:
    seen: list[float] = []

    transcode(clip_small, tmp_path, "mp4_360p", info=probe(clip_small), timeout=60, on_progress=seen.append)

    assert seen and seen == sorted(seen)
    assert seen[-1] == 1.0


def test_cancel_kills_the_ffmpeg_process_group_and_raises_canceled(
    clip_small: Path, no_ffmpeg_left: None
) -> None:
    started = time.monotonic()
    groups: list[int] = []

    def should_cancel() -> bool:
        groups.extend(pid for pid in _ffmpeg_children() if pid not in groups)
        return time.monotonic() - started > 0.5

    with pytest.raises(Canceled):
        run(_endless(clip_small), duration=None, timeout=30, should_cancel=should_cancel, check_interval=0.05)

    assert time.monotonic() - started < 3
    assert len(groups) == 1
    assert os.getpgid(0) != groups[0]  # ffmpeg led its own group...
    assert not _group_exists(groups[0])  # ...and nothing of it is left, not even a zombie


def test_timeout_kills_ffmpeg_and_raises_processing_timeout(clip_small: Path, no_ffmpeg_left: None) -> None:
    started = time.monotonic()

    with pytest.raises(ProcessingTimeout):
        run(_endless(clip_small), duration=None, timeout=0.6, check_interval=0.05)

    assert 0.6 <= time.monotonic() - started < 3


def test_a_failing_progress_callback_still_kills_ffmpeg(clip_small: Path, no_ffmpeg_left: None) -> None:
    def explode(fraction: float) -> None:
        raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        run(["-stats_period", "0.1", *_endless(clip_small)], duration=1.0, timeout=30, on_progress=explode)


def test_run_refuses_an_input_not_built_by_input_args(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        run(["-i", str(tmp_path / "a.mp4"), "-f", "null", os.devnull], duration=None, timeout=5)
    with pytest.raises(ValueError):
        run(["-f", "lavfi", "-i", "testsrc", "-f", "null", os.devnull], duration=None, timeout=5)


def test_a_failure_that_is_not_the_inputs_fault_is_processing_failed(
    clip_small: Path, tmp_path: Path
) -> None:
    args = [*input_args(clip_small), "-c:v", "no_such_encoder", str(tmp_path / "out.mp4")]

    with pytest.raises(ProcessingFailed) as caught:
        run(args, duration=None, timeout=30)

    assert caught.value.transient
    assert str(tmp_path) not in str(caught.value)


def test_a_probe_that_runs_out_of_time_raises_processing_timeout(clip_small: Path) -> None:
    with pytest.raises(ProcessingTimeout):
        probe(clip_small, timeout=0.001)
