"""A video project goes from an idea to one branded MP4 on the offline models: three 9:16
scenes (a generated still, a library still and a generated clip), narration per scene,
generated music, the brand's logo and caption colours. The render is a workflow run; its
MP4 and SRT land in the library.

The MP4 is checked from the outside (ffprobe and ffmpeg's own loudness meter): its size,
frame rate, duration and audio stream; the SRT's text is the scripts' and its times lie
within each scene's narration; the loudness is within 1 LU of the target; the logo is in
its corner. The money is exact: the run charged what its steps cost, and nothing is held.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageStat
from sqlalchemy import select

from faktry.db import transaction
from pipelines.models import Job
from quotas import ledger
from quotas.models import Hold
from tests.media.test_edit_jobs import download, ffprobe, loudness
from tests.web.helpers import upload

LOGO = (255, 0, 255)
SCRIPTS = [
    "Every morning the harbour wakes before the town does.",
    "Our roasters start the fire at five, and the first batch is ready by six.",
    "Come by the pier and taste the sea in a cup.",
]
TARGET_LUFS = -14.0


def _logo(tmp: Path) -> Path:
    path = tmp / "logo.png"
    Image.new("RGB", (200, 100), LOGO).save(path)
    return path


def _still(tmp: Path) -> Path:
    path = tmp / "still.png"
    image = Image.new("RGB", (900, 1600), (20, 90, 40))
    for x in range(0, 900, 100):
        image.paste((200, 200, 60), (x, 0, x + 40, 1600))
    image.save(path)
    return path


def project_body(brand_id: str, still_id: str) -> dict[str, Any]:
    fade = {"type": "fade", "duration": 0.5}
    return {
        "name": "Harbour mornings",
        "description": "A short for the new roast.",
        "idea": "The harbour at dawn, the roastery, an invitation.",
        "format": "9:16",
        "target_seconds": 12,
        "brand_id": brand_id,
        "music": {"prompt": "calm acoustic guitar", "volume": 0.5},
        "scenes": [
            {"script": SCRIPTS[0], "media": {"prompt": "a harbour at dawn", "kind": "image"}, "duration": 3,
             "transition": fade},
            {"script": SCRIPTS[1], "media": {"file_id": still_id}, "duration": 3, "transition": fade},
            {"script": SCRIPTS[2], "media": {"prompt": "steam over a cup", "kind": "video"}, "duration": 3},
        ],
    }  # fmt: skip


def _frame(path: Path, at: float, out: Path) -> Image.Image:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{at:.2f}", "-i", str(path), "-frames:v", "1", "-y", str(out)],
        check=True,
    )
    return Image.open(out).convert("RGB")


def _mean(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image.crop(box)).mean)


def _srt(text: str) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.strip().splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((seconds(start), seconds(end), " ".join(lines[2:])))
    return cues


def _wait(client, tenant, run_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/workflow-runs/{run_id}", headers=tenant.headers).json
        if body["status"] != "running":
            return dict(body)
        assert time.monotonic() < deadline, f"run {run_id} still running after {timeout}s"
        time.sleep(0.2)


def test_a_three_scene_9_16_project_renders_one_branded_mp4_with_its_srt(
    client, make_tenant, runtime, worker, tmp_path
):
    tenant = make_tenant("studio", credits=500)
    logo_id = upload(client, tenant, _logo(tmp_path)).json["id"]
    still_id = upload(client, tenant, _still(tmp_path)).json["id"]
    brand = client.post(
        "/v1/brands",
        json={
            "name": "Northwind",
            "logo_file_id": logo_id,
            "colors": {"primary": "#ffdd00", "secondary": "#101010", "accent": "#e58e26"},
            "typography": {"heading_font": "DejaVu Sans", "body_font": "DejaVu Sans"},
        },
        headers=tenant.headers,
    )
    assert brand.status_code == 201, brand.json
    made = client.post("/v1/projects", json=project_body(brand.json["id"], still_id), headers=tenant.headers)
    assert made.status_code == 201, made.json
    project_id = made.json["id"]

    quote = client.post(f"/v1/projects/{project_id}/quote", headers=tenant.headers)
    assert quote.status_code == 200, quote.json
    price = quote.json["price"]
    with transaction(runtime.context.sessions) as s:
        before = ledger.balance(s, tenant.id).available
    started = client.post(f"/v1/projects/{project_id}/render", headers=tenant.headers)
    assert started.status_code == 202, started.json
    run_id = started.json["id"]
    assert started.json["cost"]["quoted"] == price

    run = _wait(client, tenant, run_id)
    assert run["status"] == "succeeded", json.dumps(run, indent=1)[:3000]
    # The price was quoted and held whole before the first step was queued.
    events = client.get(f"/v1/workflow-runs/{run_id}/events", headers=tenant.headers).json["data"]
    assert events[0]["kind"] == "started" and events[0]["data"]["quote"] == price
    assert events[1]["kind"] == "step_queued"
    project = client.get(f"/v1/projects/{project_id}", headers=tenant.headers).json
    render = project["render"]
    assert render["run_id"] == run_id and render["status"] == "succeeded"
    video = download(client, tenant, render["video_file_id"], tmp_path / "out.mp4")
    subtitles = download(client, tenant, render["subtitles_file_id"], tmp_path / "out.srt")

    with transaction(runtime.context.sessions) as s:
        job = s.scalars(select(Job).where(Job.run_id == run_id, Job.type == "video.render")).one()
        result = dict(job.result or {})

    # The picture and the sound, from the outside.
    probe = ffprobe(video)
    [picture] = [st for st in probe["streams"] if st["codec_type"] == "video"]
    [sound] = [st for st in probe["streams"] if st["codec_type"] == "audio"]
    assert (picture["width"], picture["height"]) == (720, 1280)
    assert picture["r_frame_rate"] == "30/1"
    assert sound["codec_name"] == "aac"
    duration = float(probe["format"]["duration"])
    assert abs(duration - result["duration"]) < 0.15
    assert duration >= 3 * 3 - 2 * 0.5 - 0.1  # the scenes as written, at the least
    clips = result["clips"]
    assert len(clips) == 3

    # Captions: the scripts' words, in order, each cue inside its scene's narration.
    cues = _srt(subtitles.read_text(encoding="utf-8"))
    assert " ".join(text for _, _, text in cues).split() == " ".join(SCRIPTS).split()
    assert all(start < end for start, end, _ in cues)
    assert all(a[1] <= b[0] + 1e-3 for a, b in itertools.pairwise(cues))
    assert cues[-1][1] <= duration + 0.05
    spans = [(c["start"], c["end"]) for c in clips]
    words = [len(s.split()) for s in SCRIPTS]
    seen = 0
    for scene, (start, end) in enumerate(spans):
        scene_cues = []
        while seen < len(cues) and sum(len(t.split()) for *_, t in scene_cues) < words[scene]:
            scene_cues.append(cues[seen])
            seen += 1
        assert scene_cues[0][0] >= start - 0.05 and scene_cues[-1][1] <= end + 0.6, (scene, spans, scene_cues)

    # Loudness, measured by ffmpeg's own meter.
    assert abs(loudness(video) - TARGET_LUFS) <= 1.0

    # The watermark: the logo's colour in the bottom-right corner, not in the top-left.
    frame = _frame(video, duration / 2, tmp_path / "mid.png")
    corner = _mean(frame, (720 - 24 - 100, 1280 - 24 - 40, 720 - 34, 1280 - 34))
    other = _mean(frame, (34, 34, 134, 74))
    assert corner[0] > 180 and corner[1] < 90 and corner[2] > 180, corner
    assert not (other[0] > 180 and other[1] < 90 and other[2] > 180), other

    # Money: what the steps cost, once; no hold left.
    with transaction(runtime.context.sessions) as s:
        after = ledger.balance(s, tenant.id)
        assert ledger.check(s) == []
        holds = s.scalars(select(Hold.status).where(Hold.tenant_id == tenant.id, Hold.status == "held")).all()
    assert holds == []
    steps = [st for node in run["nodes"].values() for st in node["steps"]]
    assert run["cost"]["charged"] == sum(st["cost"] for st in steps) > 0
    assert before - after.available == run["cost"]["charged"] <= price
