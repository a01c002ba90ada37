from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from faktry.errors import InvalidMedia
from pipelines.media.ffmpeg import probe, sprite, thumbnail


@pytest.mark.parametrize(
    ("fmt", "name"), [("jpeg", "thumbnail.jpg"), ("png", "thumbnail.png"), ("webp", "thumbnail.webp")]
)
def test_thumbnail_writes_one_frame_at_the_requested_width(
    clip_720p: Path, tmp_path: Path, fmt: str, name: str
) -> None:
    outputs = thumbnail(clip_720p, tmp_path, info=probe(clip_720p), width=320, format=fmt, timeout=30)

    assert outputs == [name]
    with Image.open(tmp_path / name) as im:
        assert im.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt]
        assert im.size == (320, 180)


def test_thumbnail_keeps_the_source_size_without_a_width(clip_small: Path, tmp_path: Path) -> None:
    thumbnail(clip_small, tmp_path, info=probe(clip_small), at_fraction=0.5, timeout=30)

    with Image.open(tmp_path / "thumbnail.jpg") as im:
        assert im.size == (320, 240)


def test_thumbnail_past_the_end_still_finds_the_last_frame(clip_small: Path, tmp_path: Path) -> None:
    assert thumbnail(clip_small, tmp_path, info=probe(clip_small), at_seconds=999, timeout=30)


def test_thumbnail_of_audio_says_there_is_no_video(wav: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="no video stream"):
        thumbnail(wav, tmp_path, info=probe(wav), timeout=30)


@pytest.mark.parametrize(("frames", "columns", "rows"), [(12, 4, 3), (10, 4, 3), (3, 5, 1)])
def test_sprite_is_one_jpeg_grid_of_evenly_spaced_frames(
    clip_720p: Path, tmp_path: Path, frames: int, columns: int, rows: int
) -> None:
    outputs = sprite(
        clip_720p, tmp_path, info=probe(clip_720p), frames=frames, columns=columns, width=160, timeout=30
    )

    assert outputs == ["sprite.jpg"]
    with Image.open(tmp_path / "sprite.jpg") as im:
        assert im.format == "JPEG"
        assert im.size == (160 * columns, 90 * rows)
