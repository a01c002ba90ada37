from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from faktry.errors import UnsupportedFormat
from pipelines.media.detect import Sniffed, inspect, sniff
from tests.mediafixtures import MakeMedia, lavfi_tone, lavfi_video

VIDEO = lavfi_video("64x48", 0.5)
TONE = lavfi_tone(0.5)

# name -> (ffmpeg arguments before the output, expected sniff)
GENERATED = {
    "mp4": (
        [*VIDEO, *TONE, "-c:v", "libx264", "-c:a", "aac", "-f", "mp4"],
        Sniffed("video", "video/mp4", "mp4"),
    ),
    "mov": ([*VIDEO, "-c:v", "mpeg4", "-f", "mov"], Sniffed("video", "video/quicktime", "mov")),
    "m4a": ([*TONE, "-c:a", "aac", "-f", "ipod"], Sniffed("audio", "audio/mp4", "m4a")),
    "webm": (
        [*VIDEO, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-f", "webm"],
        Sniffed("video", "video/webm", "webm"),
    ),
    "mkv": ([*VIDEO, "-c:v", "mpeg4", "-f", "matroska"], Sniffed("video", "video/x-matroska", "mkv")),
    "avi": ([*VIDEO, "-c:v", "mpeg4", "-f", "avi"], Sniffed("video", "video/x-msvideo", "avi")),
    "wav": ([*TONE, "-f", "wav"], Sniffed("audio", "audio/wav", "wav")),
    "mp3-id3": ([*TONE, "-c:a", "libmp3lame", "-f", "mp3"], Sniffed("audio", "audio/mpeg", "mp3")),
    "mp3-bare": (
        [*TONE, "-c:a", "libmp3lame", "-id3v2_version", "0", "-f", "mp3"],
        Sniffed("audio", "audio/mpeg", "mp3"),
    ),
    "ogg": ([*TONE, "-c:a", "libopus", "-f", "ogg"], Sniffed("audio", "audio/ogg", "ogg")),
    "flac": ([*TONE, "-f", "flac"], Sniffed("audio", "audio/flac", "flac")),
    "aac": ([*TONE, "-c:a", "aac", "-f", "adts"], Sniffed("audio", "audio/aac", "aac")),
    "webm-audio": ([*TONE, "-c:a", "libopus", "-f", "webm"], Sniffed("video", "video/webm", "webm")),
    "mp4-audio": ([*TONE, "-c:a", "aac", "-f", "mp4"], Sniffed("video", "video/mp4", "mp4")),
}


@pytest.fixture(scope="module")
def samples(make_media: MakeMedia) -> dict[str, Path]:
    # Named "upload-<n>" with no extension: only the bytes can tell.
    return {name: make_media(f"upload-{i}", *args) for i, (name, (args, _)) in enumerate(GENERATED.items())}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_sniff_tells_the_format_from_the_bytes_alone(samples: dict[str, Path], name: str) -> None:
    assert sniff(samples[name]) == GENERATED[name][1]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_sniff_recognises_images_whatever_they_are_called(tmp_path: Path, fmt: str, expected: str) -> None:
    path = tmp_path / "holiday.mp4"
    Image.new("RGB", (8, 8)).save(path, fmt)

    assert sniff(path).content_type == expected
    assert sniff(path).kind == "image"


@pytest.mark.parametrize(
    "content",
    [
        b"#EXTM3U\n#EXTINF:1,\n/etc/passwd\n",
        b"ffconcat version 1.0\nfile other.mp4\n",
        b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n',
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n",
        b"plain text that is not media\n",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        b"BM\x00\x00",
        b"",
    ],
    ids=["hls", "ffconcat", "dash", "sdp", "text", "heic", "bmp", "empty"],
)
def test_sniff_refuses_anything_else(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(content)

    with pytest.raises(UnsupportedFormat):
        sniff(path)


@pytest.mark.parametrize(
    ("name", "kind", "content_type", "ext"),
    [
        ("mp4", "video", "video/mp4", "mp4"),
        ("mp4-audio", "audio", "audio/mp4", "m4a"),
        ("m4a", "audio", "audio/mp4", "m4a"),
        ("webm", "video", "video/webm", "webm"),
        ("webm-audio", "audio", "audio/webm", "webm"),
        ("ogg", "audio", "audio/ogg", "ogg"),
        ("mp3-bare", "audio", "audio/mpeg", "mp3"),
        ("wav", "audio", "audio/wav", "wav"),
    ],
)
def test_inspect_decides_video_or_audio_from_the_streams_found(
    samples: dict[str, Path], name: str, kind: str, content_type: str, ext: str
) -> None:
    sniffed, info = inspect(samples[name], timeout=30)

    assert (sniffed.kind, sniffed.content_type, sniffed.ext) == (kind, content_type, ext)
    assert info.has_video == (kind == "video")


def test_inspect_confirms_an_image_with_pillow(png_image: Path) -> None:
    sniffed, info = inspect(png_image, timeout=30)

    assert sniffed == Sniffed("image", "image/png", "png")
    assert (info.width, info.height) == (400, 300)


def test_inspect_refuses_bytes_whose_probe_contradicts_the_magic(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    """An empty ID3 tag glued in front of an AVI: sniffed as MP3, probed as AVI."""
    polyglot = tmp_path / "upload"
    with polyglot.open("wb") as out:
        out.write(b"ID3\x04\x00\x00\x00\x00\x00\x00")
        with samples["avi"].open("rb") as avi:
            shutil.copyfileobj(avi, out)

    assert sniff(polyglot).content_type == "audio/mpeg"
    with pytest.raises(UnsupportedFormat, match="does not match"):
        inspect(polyglot, timeout=30)
