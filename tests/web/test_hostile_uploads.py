"""Crafted files that try to make ffmpeg read another file never leak its bytes, whether they
come in as uploads or are found in storage by a job."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job
from storage.models import File
from tests.web.helpers import upload

SECRET = b"TOP-SECRET-NEIGHBOUR-BYTES-7f3a"


@pytest.fixture
def secret_clip(tmp_path, clip_small) -> Path:
    """Another tenant's video, whose bytes carry a marker."""
    path = tmp_path / "neighbour.mp4"
    path.write_bytes(clip_small.read_bytes() + SECRET)
    return path


def crafted(kind: str, target: Path, folder: Path) -> Path:
    path = folder / f"{kind}.mp4"
    if kind == "hls":
        path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n")
    elif kind == "hls_file_url":
        path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n")
    elif kind == "ffconcat":
        path.write_text(f"ffconcat version 1.0\nfile {target.name}\n")
    return path


@pytest.mark.parametrize("kind", ["hls", "hls_file_url", "ffconcat"])
def test_a_disguised_playlist_upload_is_refused_without_leaking(client, tenant, secret_clip, tmp_path, kind):
    bait = crafted(kind, secret_clip, secret_clip.parent)
    r = upload(client, tenant, bait, name="video.mp4")
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_format"
    assert SECRET not in r.data and str(secret_clip).encode() not in r.data


@pytest.mark.parametrize("kind", ["hls", "ffconcat"])
def test_a_playlist_found_in_storage_fails_the_job_without_leaking(
    client, tenant, clip_small, secret_clip, runtime, settings, kind
):
    """Defence in depth: even if a playlist reached storage, ffmpeg's whitelist refuses it."""
    ctx = runtime.context
    file_id = upload(client, tenant, clip_small).json["id"]
    with transaction(ctx.sessions) as s:
        key = s.get(File, file_id).storage_key
    stored = Path(settings.resolved_storage_url.removeprefix("file:")) / key
    # The neighbour sits next to the stored file, where a relative ffconcat entry would look.
    (stored.parent / secret_clip.name).write_bytes(secret_clip.read_bytes())
    stored.write_bytes(crafted(kind, stored.parent / secret_clip.name, stored.parent).read_bytes())
    r = client.post(
        "/v1/jobs",
        json={"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_360p"}},
        headers=tenant.headers,
    )
    job_id = r.json["id"]
    runner.run(ctx, job_id)
    with transaction(ctx.sessions) as s:
        job = s.scalars(select(Job).where(Job.id == job_id)).one()
        outputs = s.scalars(select(File).where(File.job_id == job_id)).all()
    assert job.status == "failed"
    assert job.error_code in ("unsupported_format", "invalid_media")
    assert SECRET.decode() not in (job.error_message or "") and str(stored.parent) not in (
        job.error_message or ""
    )
    assert outputs == []
    body = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).data
    assert SECRET not in body
