"""Uploads crafted to make ffmpeg read another local file (RECIPES §8 attack matrix).

Each upload is named ``.mp4`` and sits beside a "secret" video that stands for another
tenant's file. Every layer must refuse it, and the secret must show up nowhere: not in an
error, not in an output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from faktry.errors import FaktryError, InvalidMedia, UnsupportedFormat
from pipelines.media.detect import sniff
from pipelines.media.ffmpeg import MediaInfo, probe, thumbnail, transcode
from tests.mediafixtures import MakeMedia, lavfi_video

MARKER = "TOPSECRET-6d1f"

# What the worker would have believed about the upload had it skipped the probe.
PRETEND = MediaInfo(format_name="mov,mp4", duration=1.0, width=320, height=240, video_codec="h264")


@pytest.fixture(scope="module")
def secrets(make_media: MakeMedia, media_dir: Path) -> Path:
    folder = media_dir / "hostile"
    folder.mkdir()
    meta = ["-metadata", f"title={MARKER}", "-metadata", f"service_name={MARKER}"]
    make_media("hostile/secret.ts", *lavfi_video("160x120", 1), "-c:v", "mpeg2video", *meta)
    make_media("hostile/secret.mp4", *lavfi_video("160x120", 1), "-c:v", "mpeg4", *meta)
    for secret in folder.iterdir():
        assert MARKER.encode() in secret.read_bytes()
    return folder


def _hls(segment: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n"


CRAFTED = {
    "hls-absolute-path": lambda d: _hls(str(d / "secret.ts")),
    "hls-file-url": lambda d: _hls(f"file://{d / 'secret.ts'}"),
    "hls-relative-path": lambda d: _hls("secret.ts"),
    "ffconcat-neighbour": lambda d: "ffconcat version 1.0\nfile secret.mp4\n",
    "dash-local-baseurl": lambda d: (
        '<?xml version="1.0"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S"'
        ' profiles="urn:mpeg:dash:profile:isoff-on-demand:2011"><Period><AdaptationSet mimeType="video/mp4">'
        '<Representation id="1" bandwidth="100000" width="160" height="120" codecs="mp4v">'
        f"<BaseURL>{d / 'secret.mp4'}</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
    ),
}


@pytest.fixture(params=sorted(CRAFTED))
def upload(request: pytest.FixtureRequest, secrets: Path) -> Path:
    path = secrets / f"upload-{request.param}.mp4"
    path.write_text(CRAFTED[request.param](secrets))
    return path


def _assert_nothing_leaks(error: FaktryError, out_dir: Path, secrets: Path) -> None:
    shown = str(error) + json.dumps(error.to_dict())
    assert MARKER not in shown
    assert str(secrets) not in shown
    for output in out_dir.rglob("*") if out_dir.exists() else []:
        if output.is_file():
            assert MARKER.encode() not in output.read_bytes()


def test_the_crafted_upload_really_reads_the_secret_without_the_policy(upload: Path) -> None:
    """The control: plain ffprobe follows the upload to the secret (a 160x120 video), otherwise
    the tests below would prove nothing."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", f"file:{upload}"],
        capture_output=True,
        timeout=30,
        check=True,
    )

    assert [(s["width"], s["height"]) for s in json.loads(result.stdout)["streams"]] == [(160, 120)]


def test_sniff_refuses_the_crafted_upload(upload: Path) -> None:
    with pytest.raises(UnsupportedFormat):
        sniff(upload)


def test_probe_refuses_the_crafted_upload_without_leaking(
    upload: Path, secrets: Path, tmp_path: Path
) -> None:
    with pytest.raises((UnsupportedFormat, InvalidMedia)) as caught:
        probe(upload)

    _assert_nothing_leaks(caught.value, tmp_path, secrets)


def test_transcode_refuses_the_crafted_upload_without_leaking(
    upload: Path, secrets: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"

    with pytest.raises((UnsupportedFormat, InvalidMedia)) as caught:
        transcode(upload, out_dir, "mp4_360p", info=PRETEND, timeout=30)

    _assert_nothing_leaks(caught.value, out_dir, secrets)


def test_thumbnail_refuses_the_crafted_upload_without_leaking(
    upload: Path, secrets: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"

    with pytest.raises((UnsupportedFormat, InvalidMedia)) as caught:
        thumbnail(upload, out_dir, info=PRETEND, timeout=30)

    _assert_nothing_leaks(caught.value, out_dir, secrets)


def test_a_playlist_without_an_extension_is_named_as_not_whitelisted(secrets: Path) -> None:
    path = secrets / "upload-no-extension"
    path.write_text(CRAFTED["hls-absolute-path"](secrets))

    with pytest.raises(UnsupportedFormat, match="not accepted"):
        probe(path)
