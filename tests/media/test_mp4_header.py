"""An MP4 or M4A that a transcode wrote is described from its header, in this process, with
exactly the facts ffprobe reports of it; a file of any other shape is not described at all
(the runner then probes it as before)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pipelines.media import ffmpeg, mp4
from tests.mediafixtures import H264, MakeMedia, lavfi_video


def _sine(rate: int, seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}"]


#: Sources of several shapes: frame rates, sizes, sample rates, channel layouts, a start
#: offset, no audio, no video.
SOURCES = {
    "720p 25 fps, 44.1 kHz mono": [*lavfi_video("1280x720", 1.5), *_sine(44100, 1.5), *H264, "-c:a", "aac"],
    "NTSC rate, 48 kHz stereo": [
        "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30000/1001:duration=1.3",
        *_sine(48000, 1.3), "-ac", "2", *H264, "-c:a", "aac",
    ],
    "portrait 60 fps, 22.05 kHz, in Matroska": [
        *lavfi_video("360x640", 1.1, rate=60), *_sine(22050, 1.1), *H264, "-c:a", "aac",
    ],
    "no audio, 24 fps": [*lavfi_video("320x240", 1.7, rate=24), *H264],
    "5.1 at 32 kHz": [
        *lavfi_video("320x240", 1), *_sine(32000, 1),
        "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", *H264, "-c:a", "aac",
    ],
    "MPEG-TS starting at 1.4 s": [
        *lavfi_video("320x240", 1.2), *_sine(48000, 1.2), *H264, "-c:a", "aac", "-output_ts_offset", "1.4",
    ],
    "shorter than a frame of audio": [*lavfi_video("320x240", 0.08), *_sine(16000, 0.05), *H264, "-c:a", "aac"],
}  # fmt: skip
_SUFFIX = {"portrait 60 fps, 22.05 kHz, in Matroska": ".mkv", "MPEG-TS starting at 1.4 s": ".ts"}


@pytest.fixture(scope="module")
def sources(make_media: MakeMedia) -> dict[str, Path]:
    return {
        label: make_media(f"hdr-{i}{_SUFFIX.get(label, '.mp4')}", *args, "-shortest")
        for i, (label, args) in enumerate(SOURCES.items())
    }


#: (source, preset): every source to an MP4 and (with audio) to an M4A, and one to 720p.
CASES = [(label, "mp4_360p") for label in SOURCES]
CASES += [(label, "audio_aac") for label in SOURCES if label != "no audio, 24 fps"]
CASES += [("NTSC rate, 48 kHz stereo", "mp4_720p")]


@pytest.mark.parametrize(("label", "preset"), CASES)
def test_a_transcode_output_is_described_exactly_as_ffprobe_describes_it(
    sources: dict[str, Path], tmp_path: Path, label: str, preset: str
) -> None:
    src = sources[label]
    [name] = ffmpeg.transcode(src, tmp_path, preset, info=ffmpeg.probe(src), timeout=120)
    described = mp4.describe(tmp_path / name)
    assert described is not None
    assert described == ffmpeg.probe(tmp_path / name)


@pytest.fixture(scope="module")
def written(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MP4 a transcode wrote (video and audio), to be altered by the tests below."""
    src = sources["720p 25 fps, 44.1 kHz mono"]
    out = tmp_path_factory.mktemp("written")
    [name] = ffmpeg.transcode(src, out, "mp4_360p", info=ffmpeg.probe(src), timeout=120)
    return out / name


def _altered(written: Path, tmp_path: Path, old: bytes, new: bytes, *, after: bytes = b"moov") -> Path:
    """A copy of `written` with the first `old` past the box `after` made `new`."""
    data = written.read_bytes()
    at = data.index(old, data.index(after))
    target = tmp_path / "altered.mp4"
    target.write_bytes(data[:at] + new + data[at + len(old) :])
    return target


def test_an_altered_header_it_cannot_vouch_for_is_left_to_ffprobe(written: Path, tmp_path: Path) -> None:
    assert mp4.describe(written) is not None
    # Another codec, a track of a third kind, AAC with another object type: left to ffprobe.
    assert mp4.describe(_altered(written, tmp_path, b"avc1", b"hvc1", after=b"stsd")) is None
    assert mp4.describe(_altered(written, tmp_path, b"soun", b"text")) is None
    assert (
        mp4.describe(_altered(written, tmp_path, b"\x05\x80\x80\x80\x05\x12", b"\x05\x80\x80\x80\x05\x2a"))
        is None
    )


def test_a_fragmented_mp4_is_left_to_ffprobe(sources: dict[str, Path], tmp_path: Path) -> None:
    src = sources["720p 25 fps, 44.1 kHz mono"]
    ffmpeg.run(
        [
            *ffmpeg.input_args(src),
            "-c",
            "copy",
            "-movflags",
            "frag_keyframe+empty_moov",
            f"file:{tmp_path}/f.mp4",
        ],
        duration=None,
        timeout=60,
    )
    assert mp4.describe(tmp_path / "f.mp4") is None


def test_a_truncated_file_or_another_format_is_not_described(
    written: Path, tmp_path: Path, sources: dict[str, Path]
) -> None:
    data = written.read_bytes()
    for cut in (0, 7, 40, len(data) // 2):
        (tmp_path / "cut.mp4").write_bytes(data[:cut])
        assert mp4.describe(tmp_path / "cut.mp4") is None, cut
    (tmp_path / "noise.mp4").write_bytes(b"\x00\x00\x00\x10ftypisom" + bytes(range(256)) * 8)
    assert mp4.describe(tmp_path / "noise.mp4") is None
    assert mp4.describe(sources["portrait 60 fps, 22.05 kHz, in Matroska"]) is None
    assert mp4.describe(tmp_path / "missing.mp4") is None


def test_samples_said_to_lie_beyond_the_end_of_the_file_are_not_described(
    written: Path, tmp_path: Path
) -> None:
    """The moov at the front (faststart) and the samples cut off: the header alone is not
    trusted to describe data that is not there."""
    data = written.read_bytes()
    moov = data.index(b"moov") - 4
    (length,) = struct.unpack_from(">I", data, moov)
    kept = data[: moov + length + 16]
    (tmp_path / "header-only.mp4").write_bytes(kept)
    assert mp4.describe(tmp_path / "header-only.mp4") is None


def test_audio_above_the_sample_rates_a_sample_entry_holds_is_left_to_ffprobe(
    make_media: MakeMedia, tmp_path: Path
) -> None:
    src = make_media(
        "hdr-96k.mkv", *lavfi_video("320x240", 0.5), *_sine(96000, 0.5), *H264, "-c:a", "pcm_s16le"
    )
    [name] = ffmpeg.transcode(src, tmp_path, "audio_aac", info=ffmpeg.probe(src), timeout=120)
    assert mp4.describe(tmp_path / name) is None
