"""Jobs write nothing outside storage and their attempt's temporary folder, wherever the worker
was started: every job type that runs locally leaves the current directory as it found it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job
from tests.web.helpers import upload

MEDIA_JOBS: list[tuple[str, str, dict[str, Any]]] = [
    # (input fixture, job type, params)
    ("clip_small", "media.probe", {}),
    ("wav", "media.probe", {}),
    ("png_image", "media.probe", {}),
    ("clip_small", "video.transcode", {"preset": "mp4_360p"}),
    ("clip_small", "video.transcode", {"preset": "webm_vp9"}),
    ("clip_small", "video.transcode", {"preset": "hls"}),
    ("clip_small", "video.transcode", {"preset": "audio_aac"}),
    ("wav", "video.transcode", {"preset": "audio_mp3"}),
    ("clip_small", "video.thumbnail", {"at_fraction": 0.5, "width": 160}),
    ("clip_small", "video.thumbnail", {"format": "webp"}),
    ("clip_small", "video.thumbnail", {"sprite": True, "frames": 4, "columns": 2, "width": 64}),
    ("png_image", "image.resize", {"width": 100, "height": 80, "mode": "fill", "format": "png"}),
    ("png_image", "image.resize", {"width": 120, "height": 120}),
]


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder made the process's current directory for the whole test."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _run_to_the_end(client, tenant, ctx, body: dict[str, Any]) -> Job:
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    runner.run(ctx, r.json["id"])
    with transaction(ctx.sessions) as s:
        return s.scalars(select(Job).where(Job.id == r.json["id"])).one()


def test_every_media_job_leaves_the_current_directory_empty(
    client, tenant, runtime, scratch, request, png_image, require_ffmpeg
):
    files: dict[str, str] = {}
    for fixture, type_, params in MEDIA_JOBS:
        if fixture not in files:
            path = png_image if fixture == "png_image" else request.getfixturevalue(fixture)
            files[fixture] = upload(client, tenant, path).json["id"]
        body = {"type": type_, "input": {"file_id": files[fixture]}, "params": params}
        job = _run_to_the_end(client, tenant, runtime.context, body)
        assert (job.status, job.error_code) == ("succeeded", None), (type_, params)
        assert sorted(scratch.rglob("*")) == [], (type_, params)


def test_every_offline_generation_job_leaves_the_current_directory_empty(
    client, tenant, runtime, scratch, png_image, require_ffmpeg
):
    image_id = upload(client, tenant, png_image).json["id"]
    jobs: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("image.generate", {"prompt": "a lighthouse"}, {"model": "gpt-image-1", "size": "1024x1024"}),
        ("image.edit", {"prompt": "add stars", "file_id": image_id}, {"model": "local-image"}),
        ("video.generate", {"prompt": "waves"}, {"model": "local-video", "duration": 2}),
        ("speech.synthesize", {"text": "Nothing lands here."}, {"model": "local-speech"}),
        ("music.generate", {"prompt": "calm piano"}, {"model": "minimax-music-v2.5"}),
    ]
    spoken: Job | None = None
    for type_, inputs, params in jobs:
        job = _run_to_the_end(
            client, tenant, runtime.context, {"type": type_, "input": inputs, "params": params}
        )
        assert (job.status, job.error_code) == ("succeeded", None), type_
        assert sorted(scratch.rglob("*")) == [], type_
        if type_ == "speech.synthesize":
            spoken = job
    assert spoken is not None
    audio_id = client.get(f"/v1/jobs/{spoken.id}", headers=tenant.headers).json["outputs"][0]["id"]
    body = {"type": "speech.transcribe", "input": {"file_id": audio_id}, "params": {"model": "whisper-1"}}
    job = _run_to_the_end(client, tenant, runtime.context, body)
    assert job.status == "succeeded"
    assert sorted(scratch.rglob("*")) == []
