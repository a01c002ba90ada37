"""A media job's outputs are described, hashed and stored without going over them twice: the
input is not probed again, an image or an MP4 the step encoded is not probed at all (its facts
are those a probe would find), and each output's sha256 and size come from the single read
that stores it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from faktry.db import transaction
from pipelines import runner
from pipelines.media import detect, ffmpeg
from storage.models import File
from tests.web.helpers import upload


@pytest.fixture
def inspected(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files inspected (sniffed, then probed) and those a step probes with ffprobe, by name."""
    seen: list[str] = []
    real_inspect, real_probe = detect.inspect, ffmpeg.probe

    def inspect(path: Any, **kw: Any) -> Any:
        seen.append(Path(path).name)
        return real_inspect(path, **kw)

    def probe(path: Any, **kw: Any) -> Any:
        seen.append(f"ffprobe:{Path(path).name}")
        return real_probe(path, **kw)

    monkeypatch.setattr(detect, "inspect", inspect)
    monkeypatch.setattr(ffmpeg, "probe", probe)
    return seen


def run_job(client: Any, tenant: Any, runtime: Any, body: dict[str, Any]) -> File:
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    runner.run(runtime.context, r.json["id"])
    with transaction(runtime.context.sessions) as s:
        [row] = s.scalars(select(File).where(File.job_id == r.json["id"])).all()
        s.expunge(row)
    assert row.origin == "output"
    return row


def stored_bytes(runtime: Any, row: File) -> bytes:
    data: bytes = runtime.context.storage.read_bytes(row.storage_key)
    return data


def test_a_transcode_to_mp4_runs_no_ffprobe_and_stores_what_a_probe_would_find(
    client: Any, tenant: Any, runtime: Any, clip_small: Path, tmp_path: Path, inspected: list[str]
) -> None:
    """The output's facts come from its header (`pipelines.media.mp4`), the input's from its
    upload: no ffprobe at all. The stored facts are those a probe of the stored bytes finds."""
    file_id = upload(client, tenant, clip_small).json["id"]
    inspected.clear()
    row = run_job(
        client,
        tenant,
        runtime,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_360p"}},
    )
    assert inspected == []  # neither the input nor the output
    data = stored_bytes(runtime, row)
    assert (row.size, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    copy = tmp_path / "back.mp4"
    copy.write_bytes(data)
    sniffed, info = detect.inspect(copy, timeout=30)
    assert (row.content_type, row.kind, row.media) == (sniffed.content_type, sniffed.kind, info.to_dict())
    assert row.kind == "video" and row.content_type == "video/mp4"
    assert row.media["height"] == 360 and row.media["duration"] > 0


def test_an_audio_only_transcode_to_m4a_is_described_as_audio_without_a_probe(
    client: Any, tenant: Any, runtime: Any, clip_small: Path, tmp_path: Path, inspected: list[str]
) -> None:
    file_id = upload(client, tenant, clip_small).json["id"]
    inspected.clear()
    body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "audio_aac"}}
    row = run_job(client, tenant, runtime, body)
    assert inspected == []
    copy = tmp_path / "back.m4a"
    copy.write_bytes(stored_bytes(runtime, row))
    sniffed, info = detect.inspect(copy, timeout=30)
    assert (row.content_type, row.kind, row.media) == (sniffed.content_type, sniffed.kind, info.to_dict())
    assert (row.kind, row.content_type) == ("audio", "audio/mp4")


def test_an_output_of_another_format_is_still_probed_once(
    client: Any, tenant: Any, runtime: Any, clip_small: Path, inspected: list[str]
) -> None:
    file_id = upload(client, tenant, clip_small).json["id"]
    inspected.clear()
    body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "audio_mp3"}}
    row = run_job(client, tenant, runtime, body)
    assert inspected == ["audio.mp3"]  # the output, once (ffprobe inside); never the input
    assert row.kind == "audio" and row.media["audio_codec"] == "mp3"


def test_an_image_resize_stores_its_output_described_as_a_probe_would_without_probing_it(
    client: Any, tenant: Any, runtime: Any, tmp_path: Path, inspected: list[str]
) -> None:
    src = tmp_path / "photo.jpg"
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(src, quality=90)
    file_id = upload(client, tenant, src).json["id"]
    inspected.clear()
    params = {"width": 100, "height": 100, "format": "webp"}
    row = run_job(
        client, tenant, runtime, {"type": "image.resize", "input": {"file_id": file_id}, "params": params}
    )
    assert inspected == []
    data = stored_bytes(runtime, row)
    assert (row.size, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    copy = tmp_path / "back.webp"
    copy.write_bytes(data)
    sniffed, info = detect.inspect(copy, timeout=30)
    assert (row.content_type, row.kind, row.media) == (sniffed.content_type, sniffed.kind, info.to_dict())
    assert (row.media["width"], row.media["height"]) == (100, 75)


def test_a_probe_job_answers_from_the_upload_without_running_ffprobe(
    client: Any, tenant: Any, runtime: Any, clip_small: Path, inspected: list[str]
) -> None:
    file_id = upload(client, tenant, clip_small).json["id"]
    uploaded = client.get(f"/v1/files/{file_id}", headers=tenant.headers).json["media"]
    inspected.clear()
    r = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    )
    runner.run(runtime.context, r.json["id"])
    job = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert job["status"] == "succeeded", job
    assert job["result"]["media"] == uploaded
    assert inspected == []
