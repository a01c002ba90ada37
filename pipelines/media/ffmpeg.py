"""Running ffprobe and ffmpeg on untrusted uploads, safely.

Safe input policy (RECIPES §8), applied to every input of both tools through `input_args`:

- the input is always ``file:`` + an absolute, server-generated path, so no URL scheme or
  leading ``-`` in a name can be interpreted;
- ``-protocol_whitelist file`` so nothing is fetched over the network;
- ``-format_whitelist SAFE_FORMATS``: the control that actually works. HLS, DASH, concat and SDP
  detect themselves from *content* whatever the file is called, and then open other local
  files (another tenant's upload) — only a demuxer allow-list stops that;
- ``-nostdin`` and a timeout on every process; ffmpeg runs in its own process group so the
  whole group is killed on cancel or timeout.

Resource policy, applied to every child by `_spawn`:

- an address-space limit (``RLIMIT_AS``) when the caller gives one, so a crafted input or an
  oversized output cannot take the worker's memory; running out of it is
  `ResourceLimitExceeded`, which is never retried (the same input needs the same memory);
- SIGKILL from the kernel when the worker dies, so no ffmpeg outlives a worker killed with -9;
- a working directory inside the job's temporary folder (the operations pass their output
  folder), so anything a tool writes relative to it stays where it is cleaned up.

Outputs are absolute paths, with the ``file:`` prefix except for HLS: the HLS muxer makes the
variant folders from the output name as a plain path, so ``file:/x/360p`` would become a
folder named ``file:`` in the working directory.

Errors are faktry errors with short generic messages: ffmpeg's stderr names paths and can quote
the content of crafted files, so it is logged at DEBUG only and never put in a message.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import queue
import re
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from faktry import procs
from faktry.errors import (
    Canceled,
    InvalidMedia,
    OutputTooLarge,
    ProcessingFailed,
    ProcessingTimeout,
    ResourceLimitExceeded,
    UnsupportedFormat,
)

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

#: Demuxers ffmpeg/ffprobe may pick for an input. Anything else (hls, dash, concat, sdp, rtp,
#: lavfi, ...) fails with "Format not on whitelist".
SAFE_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,ogg,wav,mp3,aac,flac,"
    "image2,png_pipe,jpeg_pipe,webp_pipe,gif"
)

#: Preset name -> description. The keys are the enum of the transcode job's JSON Schema.
PRESETS: dict[str, str] = {
    "mp4_360p": "MP4, H.264 + AAC, 360 lines",
    "mp4_480p": "MP4, H.264 + AAC, 480 lines",
    "mp4_720p": "MP4, H.264 + AAC, 720 lines",
    "mp4_1080p": "MP4, H.264 + AAC, 1080 lines",
    "webm_vp9": "WebM, VP9 + Opus, source height capped at 720 lines",
    "audio_mp3": "MP3 audio only",
    "audio_aac": "AAC audio only, in an M4A file",
    "audio_opus": "Opus audio only, in an Ogg file",
    "hls": "HLS ladder (360p and 720p renditions) with a master playlist",
}

#: The largest width or height a JPEG can have (ffmpeg's MJPEG encoder refuses more).
JPEG_MAX_DIMENSION = 65_500


def picture_fits(width: int, height: int) -> bool:
    """Whether ffmpeg accepts a picture of this size at all (libavutil's av_image_check_size:
    (width + 128) * (height + 128) below INT_MAX / 8, about 268 million pixels) and, as a JPEG,
    no side above `JPEG_MAX_DIMENSION`."""
    return max(width, height) <= JPEG_MAX_DIMENSION and (width + 128) * (height + 128) < (2**31 - 1) // 8


THUMBNAIL_FORMATS: dict[str, tuple[str, list[str]]] = {
    # format -> (file extension, encoder arguments)
    "jpeg": ("jpg", ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"]),
    "png": ("png", ["-c:v", "png"]),
    "webp": ("webp", ["-c:v", "libwebp", "-quality", "85"]),
}

# Substrings of ffmpeg's stderr that mean "the input is bad", as opposed to a fault of ours.
_BAD_INPUT_HINTS = (
    "invalid data found",
    "partial file",
    "moov atom not found",
    "corrupt input packet",
    "error while decoding",
    "invalid nal unit",
    "truncated",
    "end of file",
    "could not find codec parameters",
)
# Substrings that mean the process ran out of memory: ffmpeg's ENOMEM ("Cannot allocate
# memory"), encoders' own messages, and the loader failing to map a library under RLIMIT_AS.
_OUT_OF_MEMORY_HINTS = (
    "cannot allocate memory",
    "memory allocation error",
    "malloc of size",
    "out of memory",
    "failed to map segment",
    "std::bad_alloc",
)
# Encoders that refuse the output's size (JPEG above 65500 pixels a side, WebP above 16383).
_TOO_LARGE_HINTS = ("does not support resolutions above", "picture size is too large")
_INVALID_PICTURE_SIZE = re.compile(r"picture size \d+x\d+ is invalid")
_NOT_WHITELISTED = "format not on whitelist"
_STDERR_KEEP = 64 * 1024


@dataclass(frozen=True)
class MediaInfo:
    """Facts about a media file. Video facts describe the first real video stream (cover art and
    other attached pictures are listed in `streams` but never count as video)."""

    format_name: str
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    streams: list[dict[str, Any]] = field(default_factory=list)
    bit_rate: int | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MediaInfo | None:
        """The facts `to_dict` gave (a file's stored ``media``), or None when `data` does not
        hold them: empty (never probed, such as an HLS segment) or of another shape."""
        if not data or not isinstance(data.get("format_name"), str):
            return None
        if not _FIELDS.issuperset(data) or not isinstance(data.get("streams", []), list):
            return None
        return cls(**data)


_FIELDS = frozenset(f.name for f in fields(MediaInfo))


def input_args(path: str | os.PathLike[str]) -> list[str]:
    """The arguments that open `path` under the safe input policy, ending with ``-i file:...``.

    Input options such as ``-ss`` go before them. The path is made absolute; a ``%`` is refused
    because the image2 demuxer would read it as a pattern naming *other* files.
    """
    absolute = os.path.abspath(os.fspath(path))
    if "%" in absolute:
        raise ValueError("media paths must not contain '%'")
    return ["-protocol_whitelist", "file", "-format_whitelist", SAFE_FORMATS, "-i", "file:" + absolute]


def _check_inputs_are_safe(args: list[str]) -> None:
    """Refuse a command with an input not built by `input_args` (a bug, never user input)."""
    since_last_input: list[str] = []
    for i, arg in enumerate(args):
        if arg == "-i":
            target = args[i + 1] if i + 1 < len(args) else ""
            if not target.startswith("file:/") or "-format_whitelist" not in since_last_input:
                raise ValueError("every ffmpeg input must come from input_args()")
            since_last_input = []
        else:
            since_last_input.append(arg)


# -- processes ---------------------------------------------------------------------------------


def _address_space(memory_limit: int) -> tuple[int, int] | None:
    """The (soft, hard) RLIMIT_AS for a child, never above what this process may grant."""
    if memory_limit <= 0:
        return None
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        memory_limit = min(memory_limit, hard)
    return (memory_limit, memory_limit)


def _child_setup(memory_limit: int) -> Callable[[], None]:
    """The function that runs in the child before exec. Everything it needs is resolved here,
    in the parent: between fork and exec it only makes system calls."""
    limits = _address_space(memory_limit)
    die_with_parent = procs.die_with_parent
    setrlimit, rlimit_as = resource.setrlimit, resource.RLIMIT_AS

    def setup() -> None:
        # Its own process group, so cancel can kill ffmpeg and anything it started; SIGKILL
        # from the kernel when the thread that started it goes away, so no ffmpeg outlives a
        # worker killed with SIGKILL; then the memory limit, which exec keeps.
        os.setsid()
        die_with_parent()
        if limits is not None:
            setrlimit(rlimit_as, limits)

    return setup


def _spawn(
    cmd: list[str], *, cwd: str | os.PathLike[str] | None, memory_limit: int
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            preexec_fn=_child_setup(memory_limit),
        )
    except OSError as err:
        if err.errno == errno.ENOMEM:  # exec could not even map the program under the limit
            raise ResourceLimitExceeded(f"{cmd[0]} could not start within the memory a job may use") from None
        raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group led by `proc` and reap the leader, so nothing is left behind."""
    if proc.returncode is None:
        # A leader that exited but is not reaped yet still holds its pid and group id, so
        # this cannot hit an unrelated process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _stderr_tail(stderr: str) -> str:
    return stderr[-2000:]


def _classify_failure(stderr: str, returncode: int, tool: str) -> Exception:
    """Turn a failed run into a faktry error without quoting stderr (see module docstring)."""
    log.debug("%s exited with %s: %s", tool, returncode, _stderr_tail(stderr))
    lowered = stderr.lower()
    if returncode == -signal.SIGKILL or any(hint in lowered for hint in _OUT_OF_MEMORY_HINTS):
        # Our own kills (cancel, timeout) never get here; a SIGKILL from elsewhere is the
        # kernel's OOM killer.
        return ResourceLimitExceeded(f"{tool} ran out of the memory a job may use")
    if any(hint in lowered for hint in _TOO_LARGE_HINTS) or _INVALID_PICTURE_SIZE.search(lowered):
        return OutputTooLarge("the output would be larger than its format allows")
    if _NOT_WHITELISTED in lowered:
        return UnsupportedFormat("media format is not accepted")
    if returncode > 0 and any(hint in lowered for hint in _BAD_INPUT_HINTS):
        return InvalidMedia("media could not be decoded")
    return ProcessingFailed(f"{tool} failed")


def probe(
    path: str | os.PathLike[str],
    *,
    timeout: float = 30.0,
    cwd: str | os.PathLike[str] | None = None,
    memory_limit: int = 0,
) -> MediaInfo:
    """Describe a media file with ffprobe under the safe input policy, in the folder `cwd`
    (default: this process's), with at most `memory_limit` bytes of address space (0: no limit).

    Raises `UnsupportedFormat` when no whitelisted demuxer accepts the content (playlists,
    manifests, text, unknown formats), `InvalidMedia` when a demuxer accepts it but it cannot be
    read (truncated, no audio or video stream), `ProcessingTimeout` after `timeout` seconds,
    `ResourceLimitExceeded` when ffprobe runs out of memory.
    """
    cmd = [FFPROBE, "-hide_banner", "-v", "error", "-show_format", "-show_streams", "-of", "json"]
    cmd += input_args(path)
    proc = _spawn(cmd, cwd=cwd, memory_limit=memory_limit)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise ProcessingTimeout("probing the media timed out") from None
    finally:
        _kill_group(proc)
    stderr = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        lowered = stderr.lower()
        # ffprobe names the demuxer ("[mov,mp4,... @ 0x..]") when one accepted the bytes; a bare
        # "Invalid data found" means none did: the content is of no format we know.
        if _NOT_WHITELISTED not in lowered and "invalid data found" in lowered and " @ 0x" not in stderr:
            log.debug("ffprobe found no demuxer: %s", _stderr_tail(stderr))
            raise UnsupportedFormat("media format is not recognized")
        raise _classify_failure(stderr, proc.returncode, "ffprobe")
    try:
        data = json.loads(out)
    except ValueError:
        raise ProcessingFailed("ffprobe returned unreadable output") from None
    return _media_info(data)


def _number(value: Any, kind: Callable[[Any], Any]) -> Any:
    """ffprobe reports numbers as strings and "N/A"; return None for anything unparsable."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    return number


def _media_info(data: dict[str, Any]) -> MediaInfo:
    fmt = data.get("format") or {}
    raw_streams = data.get("streams") or []
    streams: list[dict[str, Any]] = []
    video: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    for raw in raw_streams:
        stream = {
            "index": _number(raw.get("index"), int),
            "codec_type": raw.get("codec_type"),
            "codec_name": raw.get("codec_name"),
            "width": _number(raw.get("width"), int),
            "height": _number(raw.get("height"), int),
            "duration": _number(raw.get("duration"), float),
            "sample_rate": _number(raw.get("sample_rate"), int),
            "channels": _number(raw.get("channels"), int),
        }
        streams.append(stream)
        attached_pic = bool((raw.get("disposition") or {}).get("attached_pic"))
        if stream["codec_type"] == "video" and video is None and not attached_pic:
            video = stream
        elif stream["codec_type"] == "audio" and audio is None:
            audio = stream
    if video is None and audio is None:
        raise InvalidMedia("input has no audio or video stream")
    duration = _number(fmt.get("duration"), float)
    if duration is None:
        durations = [s["duration"] for s in streams if s["duration"] is not None]
        duration = max(durations) if durations else None
    return MediaInfo(
        format_name=str(fmt.get("format_name") or "unknown"),
        duration=duration,
        width=video["width"] if video else None,
        height=video["height"] if video else None,
        video_codec=video["codec_name"] if video else None,
        audio_codec=audio["codec_name"] if audio else None,
        streams=streams,
        bit_rate=_number(fmt.get("bit_rate"), int),
    )


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    # Kept small: a crafted input can make ffmpeg print a lot.
    size = 0
    for chunk in iter(lambda: stream.read(4096), b""):
        sink.append(chunk)
        size += len(chunk)
        while size > _STDERR_KEEP and len(sink) > 1:
            size -= len(sink.pop(0))


def _read_progress(stream: IO[bytes], out: queue.Queue[tuple[float | None, bool] | None]) -> None:
    """Forward ffmpeg's ``-progress`` blocks as (seconds, ended) tuples, then None at EOF."""
    seconds: float | None = None
    try:
        for raw in stream:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key in ("out_time_us", "out_time_ms"):  # both are microseconds
                micros = _number(value, int)
                if micros is not None:
                    seconds = micros / 1_000_000
            elif key == "progress":
                out.put((seconds, value == "end"))
    finally:
        out.put(None)


def run(
    args: list[str],
    *,
    duration: float | None,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    check_interval: float = 0.25,
    cwd: str | os.PathLike[str] | None = None,
    memory_limit: int = 0,
    log_level: str = "error",
) -> str:
    """Run ``ffmpeg <args>`` to completion, reporting progress and honouring cancellation;
    return the end of what ffmpeg logged (at most 64 KiB).

    `args` are everything after the global options; every input must come from `input_args`
    (checked). `on_progress` gets a fraction in 0..1 that never decreases, computed against
    `duration` (the expected output duration; None reports only the final 1.0), and is called on
    the caller's thread. `should_cancel` is polled every `check_interval` seconds.

    ffmpeg runs in the folder `cwd` (default: this process's; give the job's output folder) with
    at most `memory_limit` bytes of address space (0: no limit). `log_level` ``info`` is for
    filters that report what they measured in the log (loudnorm); the log is for parsing
    numbers, never for a message (see the module docstring).

    On cancel (`Canceled`) or after `timeout` seconds (`ProcessingTimeout`) the whole process
    group is killed and reaped before the error is raised. A non-zero exit raises
    `ResourceLimitExceeded` (out of memory, or killed by the kernel), `OutputTooLarge` (the
    encoder refused the output's size), `UnsupportedFormat` (input demuxer not whitelisted),
    `InvalidMedia` (bad input), or `ProcessingFailed` (anything else, retried by workers).
    """
    _check_inputs_are_safe(args)
    if log_level not in ("error", "info"):
        raise ValueError(f"unknown log level {log_level!r}")
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", log_level, "-xerror"]
    cmd += ["-progress", "pipe:1", "-y", *args]
    deadline = time.monotonic() + timeout
    proc = _spawn(cmd, cwd=cwd, memory_limit=memory_limit)
    assert proc.stdout is not None and proc.stderr is not None
    stderr_chunks: list[bytes] = []
    progress: queue.Queue[tuple[float | None, bool] | None] = queue.Queue()
    readers = [
        threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True),
        threading.Thread(target=_read_progress, args=(proc.stdout, progress), daemon=True),
    ]
    for reader in readers:
        reader.start()
    reported = 0.0
    try:
        stdout_open = True
        while True:
            remaining = deadline - time.monotonic()
            if should_cancel is not None and should_cancel():
                _kill_group(proc)
                raise Canceled("the job was canceled")
            if remaining <= 0:
                _kill_group(proc)
                raise ProcessingTimeout("processing timed out")
            if not stdout_open:
                try:
                    proc.wait(timeout=min(check_interval, remaining))
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:
                item = progress.get(timeout=min(check_interval, remaining))
            except queue.Empty:
                continue
            if item is None:
                stdout_open = False
                continue
            seconds, ended = item
            fraction = 1.0 if ended else _fraction(seconds, duration)
            if on_progress is not None and fraction is not None and fraction > reported:
                reported = fraction
                on_progress(fraction)
    finally:
        # Also covers exceptions raised by the callbacks: never leave ffmpeg running.
        _kill_group(proc)
        for reader in readers:
            reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise _classify_failure(stderr, proc.returncode, "ffmpeg")
    if on_progress is not None and reported < 1.0:
        on_progress(1.0)
    return stderr


def _fraction(seconds: float | None, duration: float | None) -> float | None:
    if seconds is None or not duration or duration <= 0:
        return None
    return min(max(seconds / duration, 0.0), 1.0)


# -- job operations ----------------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _need_video(info: MediaInfo) -> None:
    if not info.has_video:
        raise InvalidMedia("input has no video stream")


def _need_audio(info: MediaInfo) -> None:
    if not info.has_audio:
        raise InvalidMedia("input has no audio stream")


def _output(out_dir: Path, name: str) -> str:
    # Outputs get the file: prefix too, so a name can never be read as a protocol or option.
    return "file:" + os.path.abspath(out_dir / name)


def _hls_output(out_dir: Path, name: str) -> str:
    # No file: prefix here: hlsenc creates the folders of %v from the name as a plain path
    # (so "file:" would be a folder in the working directory). An absolute path starts with
    # "/", which is never read as a protocol or an option either.
    return os.path.abspath(out_dir / name)


def _produced(out_dir: Path, names: list[str]) -> list[str]:
    """Return `names` if they all exist and are non-empty; ffmpeg can exit 0 having written
    nothing (a seek past the end, an HLS segment it could not open)."""
    for name in names:
        target = out_dir / name
        if not target.is_file() or target.stat().st_size == 0:
            raise InvalidMedia("no output could be produced from this input")
    return names


_STRIP = ["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"]


def _mp4_output(out_dir: Path, name: str, *, has_audio: bool, crf: int) -> list[str]:
    """The options of one H.264 MP4 output at ``out_dir/name`` (its picture mapped by the
    caller): the first input's audio as AAC when it has some, faststart, metadata stripped."""
    audio = ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k"] if has_audio else []
    codec = ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-movflags", "+faststart"]
    return [*audio, *codec, *_STRIP, _output(out_dir, name)]


def transcode(
    src: Path,
    out_dir: Path,
    preset: str,
    *,
    info: MediaInfo,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Transcode `src` with one of `PRESETS` into `out_dir`; return the written paths relative
    to `out_dir`, the main file first (``master.m3u8`` for HLS).

    Video presets need a video stream, audio presets an audio stream (`InvalidMedia` otherwise);
    a video without audio gives a video without audio. Metadata and chapters are not copied.
    ffmpeg runs in `out_dir` with at most `memory_limit` bytes of address space (see `run`).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    run_kw: dict[str, Any] = {
        "duration": info.duration,
        "timeout": timeout,
        "on_progress": on_progress,
        "should_cancel": should_cancel,
        "cwd": out_dir,
        "memory_limit": memory_limit,
    }
    if preset == "hls":
        return _hls(src, out_dir, info=info, run_kw=run_kw)
    source = input_args(src)
    if preset.startswith("audio_"):
        _need_audio(info)
        name, codec = {
            "audio_mp3": ("audio.mp3", ["-c:a", "libmp3lame", "-q:a", "4"]),
            "audio_aac": ("audio.m4a", ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]),
            "audio_opus": ("audio.ogg", ["-c:a", "libopus", "-b:a", "96k"]),
        }[preset]
        run([*source, "-map", "0:a:0", "-vn", *codec, *_STRIP, _output(out_dir, name)], **run_kw)
        return _produced(out_dir, [name])

    _need_video(info)
    # 0:V excludes cover art, which an audio file may carry as a "video" stream.
    maps = ["-map", "0:V:0"] + (["-map", "0:a:0"] if info.has_audio else [])
    if preset == "webm_vp9":
        height = _even(min(info.height or 720, 720))
        name = "video.webm"
        codec = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"]
        codec += ["-crf", "34", "-b:v", "0", "-c:a", "libopus", "-b:a", "96k"]
    else:
        height = int(preset.removeprefix("mp4_").removesuffix("p"))
        name = "video.mp4"
        codec = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
        codec += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]
    # scale=-2:H keeps the aspect ratio with an even width, which yuv420p needs.
    video_filter = ["-vf", f"scale=-2:{height},format=yuv420p"]
    run([*source, *maps, *video_filter, *codec, *_STRIP, _output(out_dir, name)], **run_kw)
    return _produced(out_dir, [name])


# Rendition name -> (height cap, maxrate). The maxrate also gives the master playlist a
# meaningful BANDWIDTH for each rendition, which players use to switch.
_HLS_LADDER = (("360p", 360, "800k"), ("720p", 720, "2800k"))


def _hls(src: Path, out_dir: Path, *, info: MediaInfo, run_kw: dict[str, Any]) -> list[str]:
    _need_video(info)
    top = _even(min(info.height or 720, 720))
    # Always at least two renditions, so players can switch: the source height (capped at
    # 720) and a lower one (360, or half the source when the source is 360 or less).
    low = min(360, _even(top / 2)) if top <= 360 else 360
    renditions = [(f"{low}p", low, _HLS_LADDER[0][2]), (f"{top}p", top, _HLS_LADDER[1][2])]
    for name, _, _ in renditions:
        (out_dir / name).mkdir(parents=True, exist_ok=True)

    count = len(renditions)
    labels = "".join(f"[s{i}]" for i in range(count))
    graph = [f"[0:V:0]split={count}{labels}"]
    graph += [f"[s{i}]scale=-2:{h},format=yuv420p[v{i}]" for i, (_, h, _) in enumerate(renditions)]
    args = [*input_args(src), "-filter_complex", ";".join(graph)]
    stream_map = []
    for i, (name, _, maxrate) in enumerate(renditions):
        args += ["-map", f"[v{i}]"] + (["-map", "0:a:0"] if info.has_audio else [])
        args += [f"-maxrate:v:{i}", maxrate, f"-bufsize:v:{i}", f"{int(maxrate[:-1]) * 2}k"]
        stream_map.append(f"v:{i},a:{i},name:{name}" if info.has_audio else f"v:{i},name:{name}")
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
    # Keyframes on a fixed clock so segments of all renditions line up for switching.
    args += ["-force_key_frames", "expr:gte(t,n_forced*2)"]
    if info.has_audio:
        args += ["-c:a", "aac", "-b:a", "128k"]
    args += [*_STRIP, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]
    args += ["-hls_flags", "independent_segments", "-master_pl_name", "master.m3u8"]
    args += ["-hls_segment_filename", _hls_output(out_dir, "%v/seg_%05d.ts")]
    args += ["-var_stream_map", " ".join(stream_map), _hls_output(out_dir, "%v/index.m3u8")]
    run(args, **run_kw)

    outputs = ["master.m3u8"]
    for name, _, _ in renditions:
        outputs.append(f"{name}/index.m3u8")
        outputs += sorted(f"{name}/{seg.name}" for seg in (out_dir / name).glob("seg_*.ts"))
    if len(outputs) == 1 + count:
        raise InvalidMedia("no output could be produced from this input")
    return _produced(out_dir, outputs)


def thumbnail(
    src: Path,
    out_dir: Path,
    *,
    info: MediaInfo,
    at_seconds: float | None = None,
    at_fraction: float | None = None,
    width: int | None = None,
    format: str = "jpeg",
    timeout: float,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Write one frame as ``thumbnail.<ext>`` and return ``[name]``.

    The time is `at_seconds`, else `at_fraction` of the duration, else 10% of the duration;
    it is clamped inside the media. `width` scales keeping the aspect ratio (even height).
    ffmpeg runs in `out_dir` with at most `memory_limit` bytes of address space (see `run`).
    """
    if format not in THUMBNAIL_FORMATS:
        raise ValueError(f"unknown thumbnail format {format!r}")
    if width is not None and width < 1:
        raise ValueError("width must be positive")
    _need_video(info)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext, codec = THUMBNAIL_FORMATS[format]
    name = f"thumbnail.{ext}"
    duration = info.duration or 0.0
    if at_seconds is None:
        at_seconds = duration * (0.1 if at_fraction is None else at_fraction)
    # Seeking to the very end finds no frame; stay a little before it.
    at = max(0.0, min(at_seconds, duration - 0.1)) if duration > 0 else 0.0
    filters = ["-vf", f"scale={width}:-2"] if width else []
    args = ["-ss", f"{at:.3f}", *input_args(src), "-map", "0:V:0", "-frames:v", "1", *filters]
    args += [*codec, *_STRIP, "-f", "image2", "-update", "1", _output(out_dir, name)]
    run(
        args,
        duration=None,
        timeout=timeout,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, [name])


def sprite(
    src: Path,
    out_dir: Path,
    *,
    info: MediaInfo,
    frames: int,
    columns: int,
    width: int,
    timeout: float,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Write `frames` frames evenly spaced over the duration as one JPEG grid ``sprite.jpg``
    `columns` wide, each tile `width` pixels wide; return ``["sprite.jpg"]``.

    The image is ``columns * width`` wide and ``ceil(frames / columns)`` tiles high; empty
    cells of the last row are black. Needs a known duration (`InvalidMedia` otherwise). A
    sheet that ffmpeg cannot make (see `picture_fits`) is refused before ffmpeg runs
    (`OutputTooLarge`). ffmpeg runs in `out_dir` with at most `memory_limit` bytes of address
    space (see `run`).
    """
    if frames < 1 or columns < 1 or width < 1:
        raise ValueError("frames, columns and width must be positive")
    _need_video(info)
    if not info.duration or info.duration <= 0:
        raise InvalidMedia("input duration is unknown")
    rows = math.ceil(frames / columns)
    sheet = sprite_size(frames=frames, columns=columns, width=width, source=(info.width, info.height))
    if not picture_fits(*sheet):
        raise OutputTooLarge(
            f"the sprite sheet would be {sheet[0]}x{sheet[1]} pixels, more than a JPEG can be: "
            f"at most {JPEG_MAX_DIMENSION} a side and about 268 million pixels"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = frames / info.duration
    # fps picks one frame every duration/frames seconds starting at 0; trim stops at `frames`
    # in case rounding yields one more; tile flushes a partial grid at the end of the input.
    chain = f"fps={rate:.6f},trim=end_frame={frames},scale={width}:-2,tile={columns}x{rows}"
    args = [*input_args(src), "-map", "0:V:0", "-vf", chain, "-frames:v", "1"]
    args += ["-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p", *_STRIP]
    args += ["-f", "image2", "-update", "1", _output(out_dir, "sprite.jpg")]
    run(
        args,
        duration=info.duration,
        timeout=timeout,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, ["sprite.jpg"])


def sprite_size(
    *, frames: int, columns: int, width: int, source: tuple[int | None, int | None] = (None, None)
) -> tuple[int, int]:
    """The (width, height) in pixels of `sprite`'s sheet for a `source` of (width, height);
    with the source's size unknown the height is unknown too, and given as 0."""
    rows = math.ceil(frames / columns)
    source_width, source_height = source
    tile_height = 0
    if source_width and source_height:
        tile_height = _even(width * source_height / source_width)  # what scale=W:-2 gives
    return columns * width, rows * tile_height


def fit_frame(fit: str, width: int, height: int) -> str:
    """The filters that make a picture exactly `width` x `height`: scaled to fill the frame and
    cropped (`fit` ``crop``), or scaled to fit and padded with black (``pad``)."""
    if fit == "crop":
        return f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height}"
    if fit == "pad":
        return (
            f"scale={width}:{height}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black"
        )
    raise ValueError(f"unknown fit {fit!r}")


def captions(
    src: Path,
    out_dir: Path,
    *,
    script: str,
    info: MediaInfo,
    width: int,
    height: int,
    fit: str,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Burn the ASS script ``script`` (a file name in `out_dir`, written by the caller) into a
    `width` x `height` H.264 MP4 ``video.mp4`` made from `src`; return ``["video.mp4"]``.

    A video is scaled to fill the frame and cropped (`fit` ``crop``) or scaled to fit and padded
    with black (``pad``); its audio is kept. An audio file becomes its audio over a dark frame
    for its whole duration (`InvalidMedia` when that is unknown). ffmpeg runs in `out_dir`, so
    the script is named relative to it and never goes through filter-graph quoting; libass
    reads it directly (it is not a demuxer input, and it loads no other file).
    """
    if fit not in ("crop", "pad"):
        raise ValueError(f"unknown fit {fit!r}")
    if not re.fullmatch(r"[a-z0-9_]+\.ass", script):
        raise ValueError("the script must be a plain .ass file name in out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [*input_args(src)]
    if info.has_video:
        frame = fit_frame(fit, width, height)
        graph = f"[0:V:0]{frame},setsar=1,ass={script},format=yuv420p[v]"
    else:
        _need_audio(info)
        if not info.duration or info.duration <= 0:
            raise InvalidMedia("input duration is unknown")
        graph = (
            f"color=c=0x1d1d28:s={width}x{height}:r=25:d={info.duration:.3f},ass={script},format=yuv420p[v]"
        )
    args += ["-filter_complex", graph, "-map", "[v]", "-shortest"]
    args += _mp4_output(out_dir, "video.mp4", has_audio=info.has_audio, crf=23)
    run(
        args,
        duration=info.duration,
        timeout=timeout,
        on_progress=on_progress,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, ["video.mp4"])


# -- loudness (audio.normalize) ------------------------------------------------------------------


@dataclass(frozen=True)
class Loudness:
    """EBU R128 facts of a file's first audio stream, as ffmpeg's loudnorm measures them:
    integrated loudness (LUFS), true peak (dBTP), loudness range (LU), and the gating
    threshold and offset a second, applying pass needs."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float
    offset: float

    def to_dict(self) -> dict[str, float]:
        return {"integrated_lufs": self.integrated, "true_peak_dbtp": self.true_peak, "lra_lu": self.lra}


_LOUDNORM_JSON = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}")
#: The quietest integrated loudness loudnorm can lift: below it the audio is silence.
SILENCE_LUFS = -70.0


def _loudnorm_report(log_text: str) -> Loudness:
    found = _LOUDNORM_JSON.findall(log_text)
    try:
        data = json.loads(found[-1])
        values = [
            float(data[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
        ]
    except (IndexError, KeyError, TypeError, ValueError):
        raise ProcessingFailed("ffmpeg did not report the loudness") from None
    return Loudness(*values)


def _loudnorm(target: float, true_peak: float, lra: float) -> str:
    return f"loudnorm=I={target:.2f}:TP={true_peak:.2f}:LRA={lra:.2f}"


def measure_loudness(
    src: Path,
    *,
    duration: float | None,
    timeout: float,
    cwd: Path,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> Loudness:
    """Measure the first audio stream of `src` (loudnorm's analysis pass; nothing is written)."""
    args = [*input_args(src), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    args += ["-af", _loudnorm(-24.0, -2.0, 7.0) + ":print_format=json", "-f", "null", "-"]
    log_text = run(
        args,
        duration=duration,
        timeout=timeout,
        on_progress=on_progress,
        should_cancel=should_cancel,
        cwd=cwd,
        memory_limit=memory_limit,
        log_level="info",
    )
    return _loudnorm_report(log_text)


#: Video codecs an MP4 can carry as they are; any other video is copied into Matroska.
_MP4_VIDEO = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})


def normalize_loudness(
    src: Path,
    out_dir: Path,
    *,
    info: MediaInfo,
    measured: Loudness,
    target: float,
    true_peak: float,
    keep_video: bool,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Apply loudnorm with the `measured` values of a first pass (so the gain is one linear
    change wherever the true peak allows, not a compressor), aiming at `target` LUFS
    integrated and at most `true_peak` dBTP. The loudness range is kept (the target range is
    the measured one, at least 11 LU), so a normalization never squashes dynamics.

    Writes ``audio.m4a`` (AAC), or with `keep_video` the first video stream copied as it is
    with the normalized audio: ``video.mp4``, or ``video.mkv`` for a video codec an MP4 cannot
    carry. Returns the written name.
    """
    _need_audio(info)
    if measured.integrated < SILENCE_LUFS:
        raise InvalidMedia("the audio is silent: there is no loudness to normalize", code="silent_audio")
    if keep_video:
        _need_video(info)
    out_dir.mkdir(parents=True, exist_ok=True)
    lra = min(20.0, max(11.0, measured.lra))
    audio = next((s for s in info.streams if s.get("codec_type") == "audio"), {})
    rate = audio.get("sample_rate") or 48000
    # Some sources carry no channel layout, which the AAC encoder needs: name it by count.
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(audio.get("channels") or 2, "stereo")
    chain = (
        f"{_loudnorm(target, true_peak, lra)}:measured_I={measured.integrated:.2f}"
        f":measured_TP={measured.true_peak:.2f}:measured_LRA={measured.lra:.2f}"
        f":measured_thresh={measured.threshold:.2f}:offset={measured.offset:.2f}:linear=true,"
        f"aresample={min(int(rate), 96000)},aformat=channel_layouts={layout}"
    )
    args = [*input_args(src)]
    if keep_video:
        name = "video.mp4" if info.video_codec in _MP4_VIDEO else "video.mkv"
        args += ["-map", "0:V:0", "-c:v", "copy"]
    else:
        name = "audio.m4a"
    args += ["-map", "0:a:0", "-af", chain, "-c:a", "aac", "-b:a", "192k"]
    if name.endswith((".mp4", ".m4a")):
        args += ["-movflags", "+faststart"]
    args += [*_STRIP, _output(out_dir, name)]
    run(
        args,
        duration=info.duration,
        timeout=timeout,
        on_progress=on_progress,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, [name])


# -- watermark -----------------------------------------------------------------------------------

#: Corner -> overlay position, with M the margin in pixels.
_CORNERS = {
    "top_left": ("M", "M"),
    "top_right": ("main_w-overlay_w-M", "M"),
    "bottom_left": ("M", "main_h-overlay_h-M"),
    "bottom_right": ("main_w-overlay_w-M", "main_h-overlay_h-M"),
}
CORNERS = tuple(_CORNERS)


def logo_overlay(
    picture: str, logo: str, *, frame_width: int, corner: str, scale: float, margin: int, opacity: float
) -> str:
    """The filter graph that overlays the image stream `logo` on the video stream `picture`
    (both stream specifiers or labels, without brackets) at `corner`, `scale` of `frame_width`
    wide (its aspect kept), `margin` pixels from both edges, at `opacity` (0..1, times the
    logo's own alpha). It ends with the overlay, unlabelled, for the caller to continue."""
    if corner not in _CORNERS:
        raise ValueError(f"unknown corner {corner!r}")
    x, y = (part.replace("M", str(margin)) for part in _CORNERS[corner])
    return (
        f"[{logo}]scale={_even(frame_width * scale)}:-2,format=rgba,colorchannelmixer=aa={opacity:.3f}[logo];"
        f"[{picture}][logo]overlay=x={x}:y={y}:eof_action=repeat:format=auto"
    )


def watermark(
    src: Path,
    logo: Path,
    out_dir: Path,
    *,
    info: MediaInfo,
    corner: str,
    scale: float,
    margin: float,
    opacity: float,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Overlay the image `logo` on `src` at `corner`, `scale` of the video's width wide (its
    aspect kept), `margin` of the width from both edges, at `opacity` (0..1, times the logo's
    own alpha). Writes ``video.mp4`` (H.264, the audio as AAC) and returns ``["video.mp4"]``.
    The logo is read under the same safe input policy as the video (it is an image demuxer
    input, never a filter argument)."""
    if corner not in _CORNERS:
        raise ValueError(f"unknown corner {corner!r}")
    _need_video(info)
    if not info.width or not info.height:
        raise InvalidMedia("the video's size is unknown")
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = logo_overlay(
        "0:V:0",
        "1:v:0",
        frame_width=info.width,
        corner=corner,
        scale=scale,
        margin=max(0, round(info.width * margin)),
        opacity=opacity,
    )
    graph += ",format=yuv420p[v]"
    args = [*input_args(src), *input_args(logo), "-filter_complex", graph, "-map", "[v]"]
    args += _mp4_output(out_dir, "video.mp4", has_audio=info.has_audio, crf=20)
    run(
        args,
        duration=info.duration,
        timeout=timeout,
        on_progress=on_progress,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, ["video.mp4"])


# -- reframe -------------------------------------------------------------------------------------

#: Aspect name -> (width, height) ratio.
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
#: Width of the grey frames the activity estimate reads.
ACTIVITY_WIDTH = 160


def activity_frames(
    src: Path,
    out_dir: Path,
    *,
    info: MediaInfo,
    samples: int,
    timeout: float,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> tuple[int, int, list[bytes]]:
    """`samples` frames spread over `src`, as 8-bit grey pictures `ACTIVITY_WIDTH` wide (the
    source's aspect kept): ``(width, height, [frame bytes])``. What the picture does is read
    from these (`pipelines.media.images.activity`)."""
    _need_video(info)
    if not info.width or not info.height or not info.duration:
        raise InvalidMedia("the video's size or duration is unknown")
    width, height = ACTIVITY_WIDTH, _even(ACTIVITY_WIDTH * info.height / info.width)
    name = "activity.gray"
    rate = max(samples, 2) / info.duration
    args = [*input_args(src), "-map", "0:V:0", "-vf", f"fps={rate:.6f},scale={width}:{height},format=gray"]
    args += ["-frames:v", str(max(samples, 2)), "-f", "rawvideo", "-pix_fmt", "gray", *_STRIP]
    args += [_output(out_dir, name)]
    run(
        args,
        duration=None,
        timeout=timeout,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    raw = (out_dir / _produced(out_dir, [name])[0]).read_bytes()
    (out_dir / name).unlink()
    size = width * height
    return width, height, [raw[i : i + size] for i in range(0, len(raw) - size + 1, size)]


def crop_box(width: int, height: int, aspect: str) -> tuple[int, int]:
    """The largest even-sided (width, height) of `aspect` inside a `width` x `height` picture."""
    num, den = ASPECTS[aspect]
    if width * den > height * num:  # wider than the aspect: full height
        return _even(height * num / den), _even(height)
    return _even(width), _even(width * den / num)


def reframe(
    src: Path,
    out_dir: Path,
    *,
    info: MediaInfo,
    crops: list[tuple[str, tuple[int, int, int, int]]],
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> list[str]:
    """Crop `src` to each ``(folder, (x, y, w, h))`` of `crops` in one decode, writing
    ``<folder>/video.mp4`` (H.264, the audio as AAC) for each; return those names in order."""
    _need_video(info)
    count = len(crops)
    labels = "".join(f"[s{i}]" for i in range(count))
    graph = [f"[0:V:0]split={count}{labels}" if count > 1 else "[0:V:0]null[s0]"]
    graph += [
        f"[s{i}]crop={w}:{h}:{x}:{y},setsar=1,format=yuv420p[v{i}]"
        for i, (_, (x, y, w, h)) in enumerate(crops)
    ]
    args = [*input_args(src), "-filter_complex", ";".join(graph)]
    names = []
    for i, (folder, _) in enumerate(crops):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        names.append(f"{folder}/video.mp4")
        args += ["-map", f"[v{i}]", *_mp4_output(out_dir, names[-1], has_audio=info.has_audio, crf=21)]
    run(
        args,
        duration=info.duration,
        timeout=timeout,
        on_progress=on_progress,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, names)


# -- concat --------------------------------------------------------------------------------------

#: xfade transitions `video.concat` offers (a few of ffmpeg's, all cheap).
TRANSITIONS = ("fade", "dissolve", "wipeleft", "wiperight", "slideleft", "slideright", "fadeblack")


def clip_seconds(info: MediaInfo) -> float:
    """How long a clip's picture lasts: its video stream's duration when ffprobe gave it (the
    container's can be longer, by the audio), else the container's."""
    video = next(
        (s for s in info.streams if s.get("codec_type") == "video" and s.get("duration")),
        None,
    )
    seconds = [float(x) for x in (video and video["duration"], info.duration) if x]
    if not seconds:
        raise InvalidMedia("a clip's duration is unknown")
    return min(seconds)


def concat(
    clips: list[tuple[Path, MediaInfo]],
    out_dir: Path,
    *,
    width: int,
    height: int,
    fps: int,
    fit: str,
    crossfade: float,
    transition: str,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    memory_limit: int = 0,
) -> tuple[list[str], float]:
    """Join `clips` in order into one `width` x `height` H.264 + AAC MP4 at `fps` frames a
    second: each clip scaled to fit and padded (`fit` ``pad``) or to fill and cropped
    (``crop``); a clip without audio contributes silence. With `crossfade` seconds each
    boundary is an xfade `transition` and an acrossfade of that length, so the result lasts
    the clips' sum less one crossfade per boundary. Returns ``(["video.mp4"], seconds)``.

    A clip no longer than the crossfade cannot be faded (`InvalidMedia`, ``clip_too_short``)."""
    if fit not in ("crop", "pad") or transition not in TRANSITIONS or len(clips) < 2:
        raise ValueError("bad concat arguments")
    out_dir.mkdir(parents=True, exist_ok=True)
    durations = []
    args: list[str] = []
    graph: list[str] = []
    for i, (path, info) in enumerate(clips):
        _need_video(info)
        seconds = clip_seconds(info)
        if crossfade and seconds <= crossfade + 0.1:
            raise InvalidMedia(
                f"clip {i} lasts {seconds:.2f} s, not longer than the {crossfade:g} s crossfade",
                code="clip_too_short",
            )
        durations.append(seconds)
        args += input_args(path)
        frame = fit_frame(fit, width, height)
        graph.append(
            f"[{i}:V:0]{frame},setsar=1,fps={fps},format=yuv420p,"
            f"trim=duration={seconds:.3f},setpts=PTS-STARTPTS[v{i}]"
        )
        audio = f"[{i}:a:0]aresample=48000,apad" if info.has_audio else "anullsrc=r=48000:cl=stereo"
        graph.append(
            f"{audio},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"atrim=duration={seconds:.3f},asetpts=PTS-STARTPTS[a{i}]"
        )
    if not crossfade:
        joined = "".join(f"[v{i}][a{i}]" for i in range(len(clips)))
        graph.append(f"{joined}concat=n={len(clips)}:v=1:a=1[v][a]")
        total = sum(durations)
    else:
        video, audio, total = "[v0]", "[a0]", durations[0]
        for i in range(1, len(clips)):
            last = i == len(clips) - 1
            vout, aout = ("[v]", "[a]") if last else (f"[x{i}]", f"[y{i}]")
            graph.append(
                f"{video}[v{i}]xfade=transition={transition}:duration={crossfade:.3f}"
                f":offset={total - crossfade:.3f}{vout}"
            )
            graph.append(f"{audio}[a{i}]acrossfade=d={crossfade:.3f}{aout}")
            video, audio, total = vout, aout, total + durations[i] - crossfade
    args += ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "21", "-r", str(fps)]
    args += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", *_STRIP, _output(out_dir, "video.mp4")]
    run(
        args,
        duration=total,
        timeout=timeout,
        on_progress=on_progress,
        should_cancel=should_cancel,
        cwd=out_dir,
        memory_limit=memory_limit,
    )
    return _produced(out_dir, ["video.mp4"]), total
