from __future__ import annotations

import json
from pathlib import Path

import pytest

from faktry.errors import InvalidMedia, UnsupportedFormat
from pipelines.media.ffmpeg import SAFE_FORMATS, input_args, probe, transcode
from tests.mediafixtures import MakeMedia


def test_probe_reports_the_facts_of_a_video_with_audio(clip_720p: Path) -> None:
    info = probe(clip_720p)

    assert "mp4" in info.format_name
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert (info.width, info.height) == (1280, 720)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert [s["codec_type"] for s in info.streams] == ["video", "audio"]
    assert info.streams[1]["sample_rate"] == 44100
    assert info.streams[1]["channels"] == 1
    assert info.bit_rate and info.bit_rate > 0


def test_probe_of_a_silent_video_has_no_audio_codec(silent_clip: Path) -> None:
    info = probe(silent_clip)

    assert info.video_codec == "h264"
    assert info.audio_codec is None
    assert not info.has_audio


def test_probe_of_a_wav_has_no_video_facts(wav: Path) -> None:
    info = probe(wav)

    assert info.format_name == "wav"
    assert info.audio_codec == "pcm_s16le"
    assert (info.video_codec, info.width, info.height) == (None, None, None)


def test_media_info_round_trips_through_json(clip_720p: Path) -> None:
    info = probe(clip_720p)

    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-at-end", "faststart"])
def test_an_mp4_cut_in_half_is_invalid_media_at_probe_or_transcode(
    make_media: MakeMedia, clip_720p: Path, tmp_path: Path, faststart: bool
) -> None:
    flags = ["-movflags", "+faststart"] if faststart else []
    whole = make_media(f"whole-{faststart}.mp4", "-i", str(clip_720p), "-c", "copy", *flags)
    half = tmp_path / "half.mp4"
    data = whole.read_bytes()
    half.write_bytes(data[: len(data) // 2])

    with pytest.raises(InvalidMedia):
        info = probe(half)
        transcode(half, tmp_path / "out", "mp4_360p", info=info, timeout=30)


def test_text_that_no_demuxer_accepts_is_an_unsupported_format(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_text("just some words, not media at all\n" * 20)

    with pytest.raises(UnsupportedFormat) as caught:
        probe(path)

    assert str(tmp_path) not in str(caught.value)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"")

    with pytest.raises((UnsupportedFormat, InvalidMedia)):
        probe(path)


def test_input_args_make_an_absolute_file_url_under_the_whitelists(tmp_path: Path) -> None:
    args = input_args(tmp_path / "a.mp4")

    assert args == [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        SAFE_FORMATS,
        "-i",
        f"file:{tmp_path}/a.mp4",
    ]


def test_input_args_refuse_a_path_the_image2_demuxer_would_read_as_a_pattern(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        input_args(tmp_path / "frame%03d.png")
