"""Real, tiny media for the stand-ins, made once per process and cached.

Images are drawn with Pillow; video and audio come from ffmpeg's lavfi sources (``testsrc``,
``sine``), so every output a stand-in serves is probeable by ffprobe. The speech clip
(`speech`) is "the known test clip": the OpenAI stand-in transcribes it as `SPEECH_TEXT`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog."
SPEECH_SECONDS = 1.0

#: Pillow format name and MIME type per file extension.
IMAGE_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}

#: ffmpeg output arguments and MIME type per audio format (the names OpenAI's speech API uses).
AUDIO_FORMATS: dict[str, tuple[list[str], str]] = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"], "audio/mpeg"),
    "wav": (["-c:a", "pcm_s16le", "-f", "wav"], "audio/wav"),
    "opus": (["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"], "audio/ogg"),
    "aac": (["-c:a", "aac", "-b:a", "64k", "-f", "adts"], "audio/aac"),
    "flac": (["-c:a", "flac", "-f", "flac"], "audio/flac"),
    "pcm": (["-c:a", "pcm_s16le", "-f", "s16le"], "audio/pcm"),
}

_known_lock = threading.Lock()
_known_speech: set[str] = set()


def ffmpeg_available() -> bool:
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=128)
def image(
    width: int = 64, height: int = 64, fmt: str = "png", text: str = "faktry", transparent: bool = False
) -> bytes:
    """A ``width`` x ``height`` image with ``text`` drawn on a gradient, encoded as ``fmt``."""
    pil_format, _ = IMAGE_FORMATS[fmt]
    mode = "RGBA" if transparent and pil_format != "JPEG" else "RGB"
    ramp = Image.linear_gradient("L")
    gradient = ramp.resize((width, height))
    across = ramp.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    img = Image.merge("RGB", (gradient, across, Image.new("L", (width, height), 96)))
    if mode == "RGBA":
        img.putalpha(gradient)
    ImageDraw.Draw(img).text((max(1, width // 16), max(1, height // 2 - 5)), text, fill="white")
    out = io.BytesIO()
    img.save(out, format=pil_format)
    return out.getvalue()


def png(width: int = 64, height: int = 64, text: str = "faktry") -> bytes:
    return image(width, height, "png", text)


def _ffmpeg(args: list[str], suffix: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="standin-media-") as tmp:
        out = Path(tmp) / f"out{suffix}"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(out)],
            check=True,
            timeout=60,
        )
        return out.read_bytes()


@functools.lru_cache(maxsize=32)
def mp4(
    seconds: float = 1.0, width: int = 320, height: int = 240, fps: int = 24, audio: bool = False
) -> bytes:
    """An H.264 MP4 (yuv420p, faststart) of ffmpeg's test pattern; with ``audio`` an AAC sine too."""
    args = ["-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    return _ffmpeg(args, ".mp4")


@functools.lru_cache(maxsize=32)
def audio(fmt: str = "mp3", seconds: float = 1.0, sample_rate: int = 24000) -> bytes:
    """A mono 440 Hz sine of ``seconds`` in ``fmt`` (a key of `AUDIO_FORMATS`)."""
    codec_args, _ = AUDIO_FORMATS[fmt]
    source = f"sine=frequency=440:duration={seconds}:sample_rate={sample_rate}"
    return _ffmpeg(["-f", "lavfi", "-i", source, "-ac", "1", *codec_args], f".{fmt}")


def mp3(seconds: float = 1.0) -> bytes:
    return audio("mp3", seconds)


def wav(seconds: float = 1.0) -> bytes:
    return audio("wav", seconds)


def speech(fmt: str = "mp3") -> bytes:
    """The known test clip in ``fmt``; `is_known_speech` recognises it afterwards."""
    data = audio(fmt, SPEECH_SECONDS)
    with _known_lock:
        _known_speech.add(digest(data))
    return data


def is_known_speech(data: bytes) -> bool:
    with _known_lock:
        return digest(data) in _known_speech


def probe(data: bytes, suffix: str = "") -> dict[str, Any]:
    """ffprobe's ``-show_format -show_streams`` JSON for ``data``; raises CalledProcessError if
    ffprobe cannot read it."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        result = subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", tmp.name],
            check=True,
            capture_output=True,
            timeout=30,
        )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed
