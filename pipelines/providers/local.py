"""The offline provider: real outputs with no network, so the zero-setup default can run
every job type. Nothing here is AI, and the outputs say so.

- images: the prompt drawn with Pillow on a colour field taken from the prompt;
- speech: espeak-ng where it is installed, else a tone (the job's result says which);
- video: frames showing the prompt, composed into an H.264 MP4 with ffmpeg;
- music: a synthesized melody;
- transcription: audio that faktry's local speech made carries its text, which is read back;
  any other audio gets an empty transcript and a note.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import struct
import subprocess
import textwrap
import wave
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pipelines.media import ffmpeg
from pipelines.media.images import open_image
from pipelines.providers.base import Finished, Output, Pending, ProviderError, Request, Submitted

TRANSCRIPT_TAG = "faktry-transcript:"
RATE = 22050


class LocalProvider:
    name = "local"
    queued = False

    def __init__(self, *, timeout: float = 120.0) -> None:
        self._timeout = timeout

    def run(self, request: Request) -> Finished:
        handlers = {
            "image.generate": self._image,
            "image.edit": self._image,
            "video.generate": self._video,
            "speech.synthesize": self._speech,
            "speech.transcribe": self._transcribe,
            "music.generate": self._music,
        }
        return handlers[request.job_type](request)

    def submit(self, request: Request) -> Submitted:
        raise NotImplementedError("the local provider answers at once")

    def poll(self, request: Request, submitted: Submitted) -> Pending | Finished:
        raise NotImplementedError("the local provider answers at once")

    def cancel(self, submitted: Submitted) -> None:
        return None

    # -- images and video ------------------------------------------------------------------

    def _image(self, request: Request) -> Finished:
        width, height = _size(request.params, default=(768, 768))
        fmt = request.params.get("output_format", "png")
        fmt = fmt if fmt in ("png", "jpeg", "webp") else "png"
        canvas = _canvas(request, (width, height), "faktry local image (not AI)")
        path = request.work_dir / f"image.{'jpg' if fmt == 'jpeg' else fmt}"
        canvas.save(path, format=fmt.upper())
        return Finished([Output("image", path)], {"note": "drawn offline by the local provider"})

    def _video(self, request: Request) -> Finished:
        seconds = _seconds(request.params.get("duration"), default=4)
        aspect = request.params.get("aspect_ratio", "16:9")
        width, height = {"9:16": (360, 640), "1:1": (480, 480)}.get(aspect, (640, 360))
        frame = request.work_dir / "frame.png"
        canvas = _canvas(request, (width, height), "faktry local video (not AI)")
        canvas.save(frame)
        path = request.work_dir / "video.mp4"
        ffmpeg.run(
            ["-loop", "1", *ffmpeg.input_args(frame), "-t", str(seconds), "-r", "25",
             "-vf", "format=yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart",
             str(path)],
            duration=seconds, timeout=self._timeout,
        )  # fmt: skip
        frame.unlink()
        return Finished([Output("video", path)], {"note": "composed offline by the local provider"})

    # -- audio ------------------------------------------------------------------------------

    def _speech(self, request: Request) -> Finished:
        text = request.prompt or ""
        fmt = request.params.get("response_format", "mp3")
        wav_path = request.work_dir / "speech.wav"
        note = "spoken offline by espeak-ng"
        espeak = shutil.which("espeak-ng")
        if espeak:
            voice = str(request.params.get("voice") or "en")
            voice = voice if re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)?", voice) else "en"
            try:
                subprocess.run(
                    [espeak, "-v", voice, "-w", str(wav_path), "--", text],
                    check=True, timeout=self._timeout, capture_output=True,
                )  # fmt: skip
            except subprocess.CalledProcessError:
                subprocess.run(
                    [espeak, "-w", str(wav_path), "--", text],
                    check=True,
                    timeout=self._timeout,
                    capture_output=True,
                )
        else:
            note = "espeak-ng is not installed: a tone stands in for speech"
            _write_tones(wav_path, [440.0], seconds=min(30.0, 0.5 + len(text) / 15))
        path = _encode(wav_path, fmt, transcript=text, timeout=self._timeout)
        return Finished([Output("audio", path)], {"note": note})

    def _music(self, request: Request) -> Finished:
        seconds = _seconds(request.params.get("duration"), default=10)
        digest = hashlib.sha256((request.prompt or "").encode()).digest()
        scale = [261.63, 293.66, 329.63, 392.0, 440.0, 523.25]
        notes = [scale[b % len(scale)] for b in digest[: max(1, int(seconds * 2))]]
        wav_path = request.work_dir / "music.wav"
        _write_tones(wav_path, notes, seconds=seconds)
        path = _encode(wav_path, "mp3", transcript=None, timeout=self._timeout)
        return Finished([Output("audio", path)], {"note": "a melody synthesized offline (not AI)"})

    def _transcribe(self, request: Request) -> Finished:
        comment = _comment(request.files["file_id"])
        if comment.startswith(TRANSCRIPT_TAG):
            return Finished([], {"text": comment.removeprefix(TRANSCRIPT_TAG), "language": "en"})
        note = "offline transcription only knows audio made by faktry's local speech"
        return Finished([], {"text": "", "note": note})


def _size(params: dict[str, Any], *, default: tuple[int, int]) -> tuple[int, int]:
    if isinstance(params.get("width"), int) and isinstance(params.get("height"), int):
        return min(params["width"], 2048), min(params["height"], 2048)
    size = params.get("size")
    if isinstance(size, str) and re.fullmatch(r"\d{2,4}x\d{2,4}", size):
        w, h = (int(x) for x in size.split("x"))
        return min(w, 2048), min(h, 2048)
    return default


def _seconds(value: Any, *, default: int) -> int:
    digits = re.sub(r"\D", "", str(value)) if value is not None else ""
    return max(1, min(60, int(digits))) if digits else default


def _colour(prompt: str) -> tuple[int, int, int]:
    d = hashlib.sha256(prompt.encode()).digest()
    return (40 + d[0] % 160, 40 + d[1] % 160, 40 + d[2] % 160)


def _canvas(request: Request, size: tuple[int, int], label: str) -> Image.Image:
    """The start image resized to ``size`` (or a colour of the prompt's), captioned."""
    if "file_id" in request.files:
        with open_image(request.files["file_id"]) as source:
            canvas = source.convert("RGB").resize(size)
    else:
        canvas = Image.new("RGB", size, _colour(request.prompt or ""))
    _caption(canvas, request.prompt or "", label)
    return canvas


def _caption(canvas: Image.Image, prompt: str, label: str) -> None:
    draw = ImageDraw.Draw(canvas)
    lines = textwrap.wrap(prompt, width=max(10, canvas.width // 9))[:12]
    y = 12
    for line in [*lines, "", label]:
        draw.text((12, y), line, fill=(255, 255, 255))
        y += 14


def _write_tones(path: Path, notes: list[float], *, seconds: float) -> None:
    frames = int(RATE * seconds)
    per_note = max(1, frames // len(notes))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        data = bytearray()
        for i in range(frames):
            freq = notes[min(i // per_note, len(notes) - 1)]
            fade = min(1.0, (i % per_note) / 400, (per_note - i % per_note) / 400)
            data += struct.pack("<h", int(9000 * fade * math.sin(2 * math.pi * freq * i / RATE)))
        out.writeframes(bytes(data))


def _encode(wav_path: Path, fmt: str, *, transcript: str | None, timeout: float) -> Path:
    """Encode to the asked format; keep the spoken text in the comment tag for transcription."""
    fmt = fmt if fmt in ("mp3", "wav") else "mp3"
    target = wav_path.with_name(f"{wav_path.stem}-out.{fmt}")
    args = [*ffmpeg.input_args(wav_path)]
    if transcript is not None:
        args += ["-metadata", f"comment={TRANSCRIPT_TAG}{transcript[:2000]}"]
    args += ["-c:a", "libmp3lame" if fmt == "mp3" else "pcm_s16le", str(target)]
    ffmpeg.run(args, duration=None, timeout=timeout)
    wav_path.unlink()
    final = wav_path.with_suffix(f".{fmt}")
    target.rename(final)
    return final


def _comment(path: Path) -> str:
    """The comment tag of an audio file, read under the same safe input policy as probing."""
    safe = ffmpeg.input_args(path)
    source = safe.pop()  # "-i" then the file: URL; ffprobe takes the URL alone
    safe.pop()
    out = subprocess.run(
        [ffmpeg.FFPROBE, "-v", "error", "-show_entries", "format_tags=comment", "-of", "default=nw=1:nk=1",
         *safe, source],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if out.returncode != 0:
        raise ProviderError("the audio could not be read")
    return out.stdout.strip()
