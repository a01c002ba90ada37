"""The benchmarks' quick modes run as smoke tests: they must run and print their ratios.

The figures themselves are not asserted (machines are shared and noisy); bench/RESULTS.md
records full runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services as svc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("module", "expect"),
    [
        ("bench.pickup_latency", "ratio default/faktry"),
        ("bench.redelivery", "faktry / target"),
        ("bench.throughput", "ratio bare/faktry"),
        ("bench.latency", "ratio faktry/bare"),
        ("bench.media_overhead", "ratio draft/plain"),
        ("bench.scale", "reconciler pass"),
        ("bench.submit_load", "ratio healthz/submit"),
        ("bench.fairness", "ratio FIFO / fair"),
        ("bench.admission_scale", "ratio 10,000/10"),
        ("bench.key_checks", "ratio off/on"),
        ("bench.workflow_fanout", "the fan-out run takes"),
        ("bench.project_render", "ratio run/steps-alone"),
        ("bench.webhook_latency", "ratio sweep/fast"),
        ("bench.sse_clients", "ratio streams/threads"),
        ("bench.gallery_listing", "worst ratio"),
    ],
)
def test_a_benchmark_quick_mode_runs_and_prints_its_ratio(module, expect):
    if not svc.redis_available():
        svc.missing("Redis")
    if module in ("bench.media_overhead", "bench.project_render") and not (
        shutil.which("ffmpeg") and shutil.which("ffprobe")
    ):
        svc.missing("ffmpeg")
    out = subprocess.run(
        [sys.executable, "-m", module, "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert expect in out.stdout, out.stdout
