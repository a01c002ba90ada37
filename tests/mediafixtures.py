"""Tiny media generated with real ffmpeg (lavfi testsrc/sine) and Pillow, once per session.

Loaded for the whole suite as a pytest plugin (see tests/conftest.py).

Without ffmpeg the tests that need it skip, except in CI (CI=true) where they fail.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

MakeMedia = Callable[..., Path]


@pytest.fixture(scope="session")
def require_ffmpeg() -> None:
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    message = "ffmpeg and ffprobe are needed for the media tests"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def make_media(require_ffmpeg: None, media_dir: Path) -> MakeMedia:
    """make_media(name, *ffmpeg_args) runs ``ffmpeg -y <args> <media_dir/name>`` and returns the path.
    The arguments use lavfi, which the code under test refuses; that is fine for generating."""

    def make(name: str, *args: str) -> Path:
        out = media_dir / name
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(out)],
            check=True,
            timeout=60,
        )
        return out

    return make


def lavfi_video(size: str, seconds: float, rate: int = 25) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]


def lavfi_tone(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="session")
def clip_720p(make_media: MakeMedia) -> Path:
    """2 s, 1280x720, H.264 + AAC (moov at the end, as ffmpeg writes by default)."""
    return make_media(
        "clip720.mp4", *lavfi_video("1280x720", 2), *lavfi_tone(2), *H264, "-c:a", "aac", "-shortest"
    )


@pytest.fixture(scope="session")
def clip_small(make_media: MakeMedia) -> Path:
    """1 s, 320x240, H.264 + AAC."""
    return make_media(
        "clip240.mp4", *lavfi_video("320x240", 1), *lavfi_tone(1), *H264, "-c:a", "aac", "-shortest"
    )


@pytest.fixture(scope="session")
def silent_clip(make_media: MakeMedia) -> Path:
    """1 s, 320x240, H.264, no audio stream at all."""
    return make_media("silent.mp4", *lavfi_video("320x240", 1), *H264)


@pytest.fixture(scope="session")
def wav(make_media: MakeMedia) -> Path:
    """1 s of a 440 Hz sine, PCM."""
    return make_media("tone.wav", *lavfi_tone(1))


@pytest.fixture
def png_image(tmp_path: Path) -> Path:
    path = tmp_path / "picture.png"
    Image.new("RGB", (400, 300), (10, 120, 200)).save(path)
    return path


@pytest.fixture(scope="session")
def long_clip(make_media: MakeMedia) -> Path:
    """8 s, 1280x720 at 30 fps, H.264 + AAC: long enough to be canceled or killed mid-transcode."""
    return make_media(
        "long720.mp4", *lavfi_video("1280x720", 8, rate=30), *lavfi_tone(8), *H264, "-c:a", "aac", "-shortest"
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that is nothing but a signature, an IHDR declaring `width` x `height` (8-bit RGB,
    correct CRC) and IEND: a decompression bomb's header without the bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def bomb_png(tmp_path: Path) -> Path:
    """68 bytes declaring 100000 x 100000 pixels."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    return path
