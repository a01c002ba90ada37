"""The ingest benchmark's quick mode (bench/ingest.py) runs the way the other benchmarks'
do, and prints for every path it offers a size, a rate and the peak resident size of faktry's
processes. The one figure held to a bound is a count, not a time: while a web process takes
a file of 64 MiB its resident size grows by less than 64 MiB, so the body is streamed to disk,
never held in memory."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ingest import QUICK_WEB_GROWTH_BOUND_MB
from tests import services as svc

ROOT = Path(__file__).resolve().parents[2]

ROW = re.compile(
    r"^(?P<path>form|url|tus|s3)\s+(?P<size>\d+\.\d)\s+(?P<seconds>\d+\.\d+)\s+(?P<rate>\d+\.\d)\s+"
    r"(?P<ratio>\d+\.\d+)x\s+(?P<web>\d+\.\d) \((?P<web_growth>[+-]\d+\.\d)\)\s+(?P<master>\d+\.\d)\s+"
    r"(?P<worker>\d+\.\d) \((?P<worker_growth>[+-]\d+\.\d)\)\s+(?P<p50>\d+\.\d)/(?P<p99>\d+\.\d)",
    re.MULTILINE,
)
UNAVAILABLE = re.compile(r"^(?P<path>form|url|tus|s3)\s+not available \(", re.MULTILINE)


@pytest.mark.slow
def test_the_ingest_quick_mode_prints_a_row_per_path_and_the_web_stays_small():
    if not svc.redis_available():
        svc.missing("Redis")
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        svc.missing("ffmpeg")
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {m["path"]: m for m in ROW.finditer(out.stdout)}
    missing = {m["path"] for m in UNAVAILABLE.finditer(out.stdout)}
    # Every path has a line: measured, or said to be missing from this faktry.
    assert set(rows) | missing == {"form", "url", "tus", "s3"}, out.stdout
    assert not set(rows) & missing, out.stdout
    # The two paths every faktry has are measured.
    assert {"form", "url"} <= set(rows), out.stdout
    for path, row in rows.items():
        assert float(row["size"]) >= 32, (path, out.stdout)
        assert float(row["rate"]) > 0, (path, out.stdout)
        assert float(row["web"]) > 0 and float(row["worker"]) > 0, (path, out.stdout)
        assert float(row["web_growth"]) < QUICK_WEB_GROWTH_BOUND_MB, (path, out.stdout)
    assert "largest faktry process:" in out.stdout
    assert "x the time" in out.stdout


def test_a_body_of_pieces_reads_as_its_bytes_and_file_slices_in_order(tmp_path):
    from bench.ingest import _Body

    data = bytes(range(256)) * 40
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    body = _Body([b"head", (path, 1000, 5000), b"tail", (path, 0, 7)])
    assert len(body) == 4 + 5000 + 4 + 7
    read = b""
    while chunk := body.read(333):
        assert len(chunk) <= 333
        read += chunk
    assert read == b"head" + data[1000:6000] + b"tail" + data[:7]
