"""The inputs the users upload, generated once when locust starts: a PNG and, with ffmpeg, a 1 s MP4."""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Media:
    png: bytes
    #: None without ffmpeg: the users then skip the transcode and probe the PNG instead.
    mp4: bytes | None


def generate(folder: Path) -> Media:
    folder.mkdir(parents=True, exist_ok=True)
    return Media(png=_png(folder / "input.png"), mp4=_mp4(folder / "input.mp4"))


def _png(path: Path) -> bytes:
    image = Image.new("RGB", (320, 240))
    draw = ImageDraw.Draw(image)
    for x in range(320):
        draw.line([(x, 0), (x, 239)], fill=(x * 255 // 319, 96, 255 - x * 255 // 319))
    draw.text((12, 12), "faktry load test", fill=(255, 255, 255))
    image.save(path, format="PNG")
    return path.read_bytes()


def _mp4(path: Path) -> bytes | None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        log.warning("ffmpeg not found: no MP4 input, the transcode task is skipped")
        return None
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15:duration=1",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
        "-pix_fmt", "yuv420p", "-shortest", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log.warning("ffmpeg could not make the MP4 input (%s): the transcode task is skipped", exc)
        return None
    return path.read_bytes()
