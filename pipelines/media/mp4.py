"""The media facts of an MP4 (or M4A) that faktry's own ffmpeg just wrote, read from its
header in this process instead of by running ffprobe on it.

ffprobe costs a process start (tens of milliseconds, whatever the file) for facts the file's
``moov`` box states outright: the movie's duration, each track's kind, codec, size, sample
rate, channels and edited duration. `describe` reads them and derives each figure the way
ffprobe's demuxer does (`ffmpeg.probe` reports, field for field, the same `MediaInfo`):

- the format's duration is the movie header's, in microseconds rounded to nearest; its bit
  rate is the file's size over that duration;
- a track's duration is its single edit's, rescaled to the track's timescale, or its
  media's where that is shorter (as FFmpeg 5.1 and later);
- an AAC track's sample rate and channels come from its AudioSpecificConfig.

tests/media/test_mp4_header.py holds it to the installed ffprobe's answers, field for field.

It is deliberately narrow: one or two tracks, H.264 (``avc1``) video and AAC-LC audio, one
edit per track, not fragmented, every sample inside the file. Anything else answers None and
the caller probes the file with ffprobe as before. It is for outputs of a faktry step only:
an upload is always probed by ffprobe, which also checks that it demuxes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from pipelines.media.ffmpeg import MediaInfo

#: What ffprobe names the demuxer of every MP4, MOV and M4A.
FORMAT_NAME = "mov,mp4,m4a,3gp,3g2,mj2"
#: A larger ``moov`` is not read here (a long film's sample tables): ffprobe describes it.
MAX_MOOV_BYTES = 32 << 20
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8}
_AAC_LC = 2
_MPEG4_AUDIO = 0x40
#: An AudioSpecificConfig's sync extension (0x2b7) naming SBR (object type 5); the flag follows.
_NO_SBR = ((0x2B7 << 5) | 5).to_bytes(2, "big")


class _Unexpected(Exception):
    """The file is not of the narrow shape `describe` reads."""


def describe(path: str | os.PathLike[str]) -> MediaInfo | None:
    """The facts ffprobe would report of the MP4 at `path`, or None when it is not of the
    shape this module reads (the caller then probes it)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            moov = _find_moov(f, size)
            return _describe(moov, size)
    except (_Unexpected, struct.error, OSError, ValueError, IndexError):
        return None


def _find_moov(f: BinaryIO, size: int) -> bytes:
    at = 0
    while at + 8 <= size:
        f.seek(at)
        head = f.read(16)
        length, kind = struct.unpack(">I4s", head[:8])
        body = 8
        if length == 1:
            length, body = struct.unpack(">Q", head[8:16])[0], 16
        elif length == 0:
            length = size - at
        if length < body or at + length > size:
            raise _Unexpected("a box runs past the end of the file")
        if kind == b"moov":
            if length - body > MAX_MOOV_BYTES:
                raise _Unexpected("moov too large")
            f.seek(at + body)
            return f.read(length - body)
        if kind == b"moof":
            raise _Unexpected("fragmented")
        at += length
    raise _Unexpected("no moov")


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box laid end to end in ``data[start:end]``."""
    end = len(data) if end is None else end
    at = start
    while at < end:
        if at + 8 > end:
            raise _Unexpected("truncated box header")
        length, kind = struct.unpack_from(">I4s", data, at)
        body = 8
        if length == 1:
            (length,) = struct.unpack_from(">Q", data, at + 8)
            body = 16
        elif length == 0:
            length = end - at
        if length < body or at + length > end:
            raise _Unexpected("a box runs past its parent")
        yield kind, data[at + body : at + length]
        at += length


def _children(data: bytes, start: int = 0) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for kind, payload in _boxes(data, start):
        found.setdefault(kind, []).append(payload)
    return found


def _one(boxes: dict[bytes, list[bytes]], kind: bytes) -> bytes:
    found = boxes.get(kind, [])
    if len(found) != 1:
        raise _Unexpected(f"expected one {kind!r} box")
    return found[0]


def _timescale_duration(full_box: bytes) -> tuple[int, int]:
    """(timescale, duration) of an ``mvhd`` or ``mdhd`` box (versions 0 and 1)."""
    if full_box[0] == 1:
        timescale, duration = struct.unpack_from(">IQ", full_box, 4 + 16)
    elif full_box[0] == 0:
        timescale, duration = struct.unpack_from(">II", full_box, 4 + 8)
    else:
        raise _Unexpected("unknown header version")
    if timescale <= 0:
        raise _Unexpected("no timescale")
    return timescale, duration


def _rescale(value: int, num: int, den: int) -> int:
    """FFmpeg's av_rescale: value * num / den, rounded to nearest (halves away from zero)."""
    return (value * num + den // 2) // den


def _seconds(ticks: int, timescale: int) -> float:
    """A time as ffprobe prints it (``%f`` of ticks times 1/timescale) and reads back."""
    return float(f"{ticks * (1 / timescale):f}")


def _describe(moov: bytes, file_size: int) -> MediaInfo:
    top = _children(moov)
    if b"mvex" in top:
        raise _Unexpected("fragmented")
    movie_scale, movie_duration = _timescale_duration(_one(top, b"mvhd"))
    traks = top.get(b"trak", [])
    if not 1 <= len(traks) <= 2 or movie_duration <= 0:
        raise _Unexpected("not one or two tracks")
    streams = [_stream(index, trak, movie_scale, file_size) for index, trak in enumerate(traks)]
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    if len(video) > 1 or len(audio) > 1:
        raise _Unexpected("two tracks of one kind")
    duration_us = _rescale(movie_duration, 1_000_000, movie_scale)
    if duration_us <= 0:
        raise _Unexpected("no duration")
    bit_rate = int(file_size * 8.0 * 1_000_000 / duration_us)
    return MediaInfo(
        format_name=FORMAT_NAME,
        duration=_seconds(duration_us, 1_000_000),
        width=video[0]["width"] if video else None,
        height=video[0]["height"] if video else None,
        video_codec="h264" if video else None,
        audio_codec="aac" if audio else None,
        streams=streams,
        bit_rate=bit_rate if bit_rate > 0 else None,
    )


def _stream(index: int, trak: bytes, movie_scale: int, file_size: int) -> dict[str, Any]:
    boxes = _children(trak)
    mdia = _children(_one(boxes, b"mdia"))
    scale, media_duration = _timescale_duration(_one(mdia, b"mdhd"))
    handler = _one(mdia, b"hdlr")[8:12]
    stbl = _children(_one(_children(_one(mdia, b"minf")), b"stbl"))
    _check_samples(stbl, file_size)
    # The demuxer takes the shorter of the media header's duration and its samples' (stts).
    media_duration = min(media_duration, _samples_duration(_one(stbl, b"stts")))
    duration = _edited_duration(_children(_one(boxes, b"edts")), scale, movie_scale, media_duration)
    stsd = _one(stbl, b"stsd")
    if struct.unpack_from(">I", stsd, 4)[0] != 1:
        raise _Unexpected("not one sample description")
    [(entry, sample)] = list(_boxes(stsd, 8))
    width = height = rate = channels = None
    if handler == b"vide" and entry == b"avc1":
        # The encoder's size, which ffprobe also finds in the stream's parameter sets.
        width, height = struct.unpack_from(">HH", sample, 24)
        if b"avcC" not in _children(sample, 78) or not width or not height:
            raise _Unexpected("no H.264 configuration")
        kind, codec = "video", "h264"
    elif handler == b"soun" and entry == b"mp4a":
        if struct.unpack_from(">H", sample, 8)[0] != 0:
            raise _Unexpected("a QuickTime sound description")
        # The entry's channel count is a fixed 2 in MP4: the AAC configuration tells.
        rate, channels = _aac_config(_one(_children(sample, 28), b"esds"))
        if struct.unpack_from(">I", sample, 24)[0] >> 16 != rate:
            raise _Unexpected("the sample entry and the AAC configuration disagree")
        kind, codec = "audio", "aac"
    else:
        raise _Unexpected("a track of another kind or codec")
    return {
        "index": index,
        "codec_type": kind,
        "codec_name": codec,
        "width": width,
        "height": height,
        "duration": _seconds(duration, scale),
        "sample_rate": rate,
        "channels": channels,
    }


def _edited_duration(
    edts: dict[bytes, list[bytes]], scale: int, movie_scale: int, media_duration: int
) -> int:
    """The track's duration as the demuxer gives it: its one edit's, rescaled to the track's
    timescale, where the media lasts that long (`media_duration`), else the media's."""
    elst = _one(edts, b"elst")
    version, count = elst[0], struct.unpack_from(">I", elst, 4)[0]
    if count != 1:
        raise _Unexpected("not one edit")
    if version == 1:
        segment, media_time, rate = struct.unpack_from(">QqI", elst, 8)
    elif version == 0:
        segment, media_time, rate = struct.unpack_from(">IiI", elst, 8)
    else:
        raise _Unexpected("unknown edit list version")
    if media_time < 0 or rate != 0x10000:
        raise _Unexpected("an empty or non-linear edit")
    edit = _rescale(segment, scale, movie_scale)
    if edit <= 0:
        raise _Unexpected("an empty edit")
    return min(media_duration, edit)


def _samples_duration(stts: bytes) -> int:
    (count,) = struct.unpack_from(">I", stts, 4)
    runs = struct.unpack_from(f">{2 * count}I", stts, 8)
    total = sum(samples * delta for samples, delta in zip(runs[::2], runs[1::2], strict=True))
    if total <= 0:
        raise _Unexpected("samples without duration")
    return total


def _check_samples(stbl: dict[bytes, list[bytes]], file_size: int) -> None:
    """Every sample is inside the file: the header describes data that was written."""
    stsz = _one(stbl, b"stsz")
    fixed, count = struct.unpack_from(">II", stsz, 4)
    if count == 0:
        raise _Unexpected("a track with no samples")
    total = fixed * count if fixed else sum(struct.unpack_from(f">{count}I", stsz, 12))
    if b"co64" in stbl:
        offsets = _one(stbl, b"co64")
        chunks = struct.unpack_from(">I", offsets, 4)[0]
        last = max(struct.unpack_from(f">{chunks}Q", offsets, 8)) if chunks else -1
    else:
        offsets = _one(stbl, b"stco")
        chunks = struct.unpack_from(">I", offsets, 4)[0]
        last = max(struct.unpack_from(f">{chunks}I", offsets, 8)) if chunks else -1
    if not 0 <= last < file_size or total > file_size:
        raise _Unexpected("samples outside the file")


def _aac_config(esds: bytes) -> tuple[int, int]:
    """(sample rate, channels) of an ``esds`` box holding AAC-LC's AudioSpecificConfig."""
    at = 4  # version and flags
    tag, size, at = _descriptor(esds, at)
    if tag != 3:
        raise _Unexpected("no ES descriptor")
    flags = esds[at + 2]
    at += 3
    if flags & 0x80:
        at += 2
    if flags & 0x40:
        at += 1 + esds[at]
    if flags & 0x20:
        at += 2
    tag, size, at = _descriptor(esds, at)
    if tag != 4 or esds[at] != _MPEG4_AUDIO:
        raise _Unexpected("not MPEG-4 audio")
    tag, size, at = _descriptor(esds, at + 13)
    if tag != 5 or size not in (2, 5):
        raise _Unexpected("not a plain AudioSpecificConfig")
    (bits,) = struct.unpack_from(">H", esds, at)
    object_type, rate_index, channel_config = bits >> 11, (bits >> 7) & 0xF, (bits >> 3) & 0xF
    # FFmpeg's encoder follows it with the sync extension saying "no SBR" (0x2b7, object type
    # 5, flag 0): the rate stays the one above. Any other extension is left to ffprobe.
    if size == 5 and (esds[at + 2 : at + 4] != _NO_SBR or esds[at + 4] & 0x80):
        raise _Unexpected("an SBR or PS extension")
    if object_type != _AAC_LC or rate_index >= len(_AAC_RATES) or channel_config not in _AAC_CHANNELS:
        raise _Unexpected("not AAC-LC at a standard rate")
    return _AAC_RATES[rate_index], _AAC_CHANNELS[channel_config]


def _descriptor(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, size, offset of the body) of an MPEG-4 descriptor at `at`."""
    tag, size = data[at], 0
    at += 1
    for _ in range(4):
        byte = data[at]
        at += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    if at + size > len(data):
        raise _Unexpected("a descriptor runs past its box")
    return tag, size, at
