"""What an upload is, decided from its bytes, never from its name or declared content type.

`sniff` accepts a short list of magic numbers and refuses everything else, notably the text
formats ffmpeg would happily follow to other files (HLS, ffconcat, DASH MPD, SDP). `inspect`
then confirms with a real probe and settles what a container alone cannot tell, such as
whether an MP4 is a video or just audio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from faktry.errors import InvalidMedia, UnsupportedFormat
from pipelines.media.ffmpeg import MediaInfo, probe
from pipelines.media.images import MAX_IMAGE_PIXELS, probe_image

Kind = Literal["image", "video", "audio"]

_HEAD = 4096

# ISO-BMFF brands of still-image formats (HEIF, AVIF, JPEG 2000, camera raw) that share the
# `ftyp` box with MP4 but that faktry does not accept.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_IMAGE_BRANDS |= {b"jp2 ", b"jpx ", b"crx "}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Old QuickTime files may start straight with one of these atoms instead of `ftyp`.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    content_type: str
    ext: str


def _mp3_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a defined version and layer, a usable bitrate
    and sample rate (enough to tell it apart from random bytes and from ADTS, whose layer is 0)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _adts_frame(head: bytes) -> bool:
    """An AAC ADTS header: 12 sync bits, layer 0, a defined sampling frequency index."""
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0xF < 13


def sniff(path: str | os.PathLike[str]) -> Sniffed:
    """Identify the media family from the first bytes. Raises `UnsupportedFormat` for anything
    not on the list: JPEG, PNG, GIF, WebP, MP4/MOV/M4A, Matroska/WebM, AVI, WAV, MP3, Ogg,
    FLAC, AAC (ADTS). Video-or-audio containers are reported as video; `inspect` refines."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", "jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", "png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "image/gif", "gif")
    if head.startswith(b"RIFF") and len(head) >= 12:
        riff = head[8:12]
        if riff == b"WEBP":
            return Sniffed("image", "image/webp", "webp")
        if riff == b"AVI ":
            return Sniffed("video", "video/x-msvideo", "avi")
        if riff == b"WAVE":
            return Sniffed("audio", "audio/wav", "wav")
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            raise UnsupportedFormat("this image format is not supported")
        if brand in _AUDIO_BRANDS:
            return Sniffed("audio", "audio/mp4", "m4a")
        if brand == b"qt  ":
            return Sniffed("video", "video/quicktime", "mov")
        return Sniffed("video", "video/mp4", "mp4")
    if head[4:8] in _QUICKTIME_ATOMS:
        return Sniffed("video", "video/quicktime", "mov")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # The EBML header's DocType says "webm" or "matroska" within the first few bytes.
        if b"webm" in head[:64]:
            return Sniffed("video", "video/webm", "webm")
        return Sniffed("video", "video/x-matroska", "mkv")
    if head.startswith(b"OggS"):
        return Sniffed("audio", "audio/ogg", "ogg")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "audio/flac", "flac")
    if head.startswith(b"ID3") or _mp3_frame(head):
        return Sniffed("audio", "audio/mpeg", "mp3")
    if _adts_frame(head):
        return Sniffed("audio", "audio/aac", "aac")
    raise UnsupportedFormat("content is not a supported media format")


# ffprobe format_name (first entry) -> what it means when sniffing could not tell.
_AUDIO_BY_DEMUXER = {
    "mp3": Sniffed("audio", "audio/mpeg", "mp3"),
    "aac": Sniffed("audio", "audio/aac", "aac"),
    "flac": Sniffed("audio", "audio/flac", "flac"),
}
# Sniffed extension -> demuxers ffprobe may legitimately pick for it. An ID3 tag can sit in
# front of MP3, AAC or FLAC data.
_EXPECTED_DEMUXERS = {
    "mp4": {"mov"},
    "mov": {"mov"},
    "m4a": {"mov"},
    "webm": {"matroska"},
    "mkv": {"matroska"},
    "avi": {"avi"},
    "wav": {"wav"},
    "ogg": {"ogg"},
    "flac": {"flac"},
    "mp3": {"mp3", "aac", "flac"},
    "aac": {"aac"},
}
_AS_AUDIO = {
    "video/mp4": ("audio/mp4", "m4a"),
    "video/quicktime": ("audio/mp4", "m4a"),
    "video/webm": ("audio/webm", "webm"),
    "video/x-matroska": ("audio/x-matroska", "mka"),
}
_AS_VIDEO = {
    "audio/mp4": ("video/mp4", "mp4"),
    "audio/ogg": ("video/ogg", "ogv"),
}


def inspect(
    path: str | os.PathLike[str],
    *,
    timeout: float,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    memory_limit: int = 0,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Sniffed, MediaInfo]:
    """Sniff, then probe (Pillow for images, ffprobe otherwise) and reconcile the two.

    The kind follows the streams actually found: an MP4, Matroska or Ogg with a video stream
    is video (``video/mp4``, ``video/webm``, ``video/ogg``...), one with only audio is audio
    (``audio/mp4``, ``audio/webm``...). A probe that disagrees with the magic bytes raises
    `UnsupportedFormat`; errors of `probe` and `probe_image` pass through. ffprobe runs in
    `cwd` with at most `memory_limit` bytes of address space, as `probe` says.
    """
    sniffed = sniff(path)
    if sniffed.kind == "image":
        info = probe_image(path, max_pixels=max_image_pixels)
        if info.format_name != sniffed.content_type.removeprefix("image/"):
            raise UnsupportedFormat("content does not match its format")
        return sniffed, info

    info = probe(path, timeout=timeout, cwd=cwd, memory_limit=memory_limit)
    return reconcile(sniffed, info), info


def reconcile(sniffed: Sniffed, info: MediaInfo) -> Sniffed:
    """What a sniffed audio or video file is, given its facts (`info`) as `probe` reports
    them: `inspect`'s answer, for a file whose facts are already known. Raises as `inspect`."""
    demuxer = info.format_name.split(",")[0]
    if demuxer not in _EXPECTED_DEMUXERS[sniffed.ext]:
        raise UnsupportedFormat("content does not match its format")
    if sniffed.ext == "mp3":
        sniffed = _AUDIO_BY_DEMUXER[demuxer]

    if info.has_video and sniffed.kind == "audio":
        if sniffed.content_type not in _AS_VIDEO:
            # Cover art is not counted as video, so this is an audio format carrying a movie.
            raise UnsupportedFormat("content does not match its format")
        content_type, ext = _AS_VIDEO[sniffed.content_type]
        sniffed = Sniffed("video", content_type, ext)
    elif not info.has_video:
        if not info.has_audio:
            raise InvalidMedia("input has no audio or video stream")
        if sniffed.kind == "video":
            # An AVI has no audio-only type; it keeps its own.
            content_type, ext = _AS_AUDIO.get(sniffed.content_type, (sniffed.content_type, sniffed.ext))
            sniffed = Sniffed("audio", content_type, ext)
    return sniffed
