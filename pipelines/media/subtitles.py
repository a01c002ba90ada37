"""Subtitles: the WebVTT faktry writes for a transcript, and the ASS script that burns them in.

A transcript's text is cut into short cues. A provider that gives timed segments times the cues;
otherwise the cues share the media's duration in proportion to their length, which keeps
captions in step with steady speech (a podcast) and never runs past the end.

Cue text may come from anyone's audio (the offline transcriber reads a tag of the file), so it
is written as plain text: WebVTT's ``<``, ``>`` and ``&`` are escaped, and for ASS the
characters that start override tags (``{``, ``}``, ``\\``) are dropped, so a transcript can
style nothing and load nothing.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Characters a cue holds at most (one line on a phone held upright, two at most).
CUE_CHARS = 42
#: Words a second when the duration is unknown.
WORDS_PER_SECOND = 2.5
#: The most cues read from one file, and the most bytes: a transcript of hours fits.
MAX_CUES = 20_000
MAX_BYTES = 4 * 1024 * 1024

_TIMING = re.compile(
    r"^\s*(?P<start>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*(?P<end>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})"
)
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def split_text(text: str, max_chars: int = CUE_CHARS) -> list[str]:
    """`text` cut into cues of at most `max_chars` characters on word boundaries (a longer word
    is a cue of its own)."""
    chunks: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > max_chars:
            chunks.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        chunks.append(line)
    return chunks


def spread(chunks: Sequence[str], start: float, end: float) -> list[Cue]:
    """Cues of `chunks` sharing ``start..end`` in proportion to their characters (and the
    pause after each)."""
    if not chunks or end <= start:
        return []
    weights = [len(chunk) + 1 for chunk in chunks]
    scale = (end - start) / sum(weights)
    cues, at = [], start
    for chunk, weight in zip(chunks, weights, strict=True):
        stop = min(end, at + weight * scale)
        cues.append(Cue(round(at, 3), round(stop, 3), chunk))
        at = stop
    return cues


def timed(text: str, duration: float | None, segments: Any = None) -> list[Cue]:
    """The cues of a transcript: from ``segments`` (``[{"start", "end", "text"}]``, as some
    providers return) when they are usable, else ``text`` cut into cues of at most `CUE_CHARS`
    characters spread over ``duration`` by length."""
    from_segments = _from_segments(segments)
    if from_segments:
        return from_segments
    chunks = split_text(text)
    total = float(duration) if duration and duration > 0 else len(text.split()) / WORDS_PER_SECOND
    return spread(chunks, 0.0, total)


def _from_segments(segments: Any) -> list[Cue]:
    if not isinstance(segments, list):
        return []
    cues = []
    for seg in segments[:MAX_CUES]:
        if not isinstance(seg, dict):
            return []
        start, end, words = seg.get("start"), seg.get("end"), str(seg.get("text") or "").strip()
        if not isinstance(start, int | float) or not isinstance(end, int | float) or not 0 <= start < end:
            return []
        if words:
            cues.append(Cue(float(start), float(end), " ".join(words.split())))
    return cues


def _vtt_stamp(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def to_vtt(cues: list[Cue]) -> str:
    """A WebVTT file of the cues (plain text, escaped)."""
    blocks = ["WEBVTT", ""]
    for i, cue in enumerate(cues, 1):
        text = html.escape(cue.text.replace("-->", "->"), quote=False)
        blocks += [str(i), f"{_vtt_stamp(cue.start)} --> {_vtt_stamp(cue.end)}", text, ""]
    return "\n".join(blocks)


def _srt_stamp(seconds: float) -> str:
    return _vtt_stamp(seconds).replace(".", ",")


def to_srt(cues: list[Cue]) -> str:
    """An SubRip file of the cues. SRT has no escaping: a ``-->`` in the text is broken up and
    angle brackets are dropped, so no player reads the text as timing or markup."""
    blocks = []
    for i, cue in enumerate(cues, 1):
        text = re.sub(r"[<>]", "", cue.text.replace("-->", "->"))
        blocks += [str(i), f"{_srt_stamp(cue.start)} --> {_srt_stamp(cue.end)}", text, ""]
    return "\n".join(blocks)


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    value = 0.0
    for part in parts:
        value = value * 60 + float(part)
    return value


def parse(text: str) -> list[Cue]:
    """The cues of a WebVTT or SRT file: each timing line, and the text lines under it up to a
    blank line (tags removed, entities decoded). Cues with no text or no time are left out."""
    cues: list[Cue] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines) and len(cues) < MAX_CUES:
        match = _TIMING.match(lines[i])
        i += 1
        if match is None:
            continue
        body = []
        while i < len(lines) and lines[i].strip():
            body.append(html.unescape(_TAG.sub("", lines[i])).strip())
            i += 1
        start, end = _seconds(match["start"]), _seconds(match["end"])
        words = " ".join(" ".join(body).split())
        if words and end > start:
            cues.append(Cue(start, end, words))
    return cues


def _ass_stamp(seconds: float) -> str:
    centis = max(0, math.floor(seconds * 100))
    hours, rest = divmod(centis, 360_000)
    minutes, rest = divmod(rest, 6000)
    return f"{hours}:{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def _ass_text(text: str) -> str:
    return re.sub(r"[{}\\\n\r]", "", text)


_ALIGNMENT = {"bottom": 2, "middle": 5, "top": 8}


#: A font family name as the ASS style line can carry it (no comma: the line is comma-separated).
FONT_FAMILY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")
#: Colours are ``#RRGGBB``.
COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def ass_color(color: str) -> str:
    """``#RRGGBB`` as ASS writes it: ``&HAABBGGRR``, opaque."""
    if not COLOR.fullmatch(color):
        raise ValueError(f"not a #RRGGBB colour: {color!r}")
    return f"&H00{color[5:7]}{color[3:5]}{color[1:3]}".upper()


def to_ass(
    cues: list[Cue],
    *,
    width: int,
    height: int,
    font_size: int,
    position: str = "bottom",
    font_family: str = "DejaVu Sans",
    text_color: str = "#FFFFFF",
    outline_color: str = "#000000",
) -> str:
    """An ASS script that draws the cues centred, in `text_color` with an `outline_color`
    outline, in `font_family` (libass finds it with fontconfig on the worker, falling back to
    a font it has), in a frame of ``width`` x ``height`` pixels (sizes are in the output's
    pixels)."""
    if not FONT_FAMILY.fullmatch(font_family):
        raise ValueError(f"not a font family name: {font_family!r}")
    primary, outline_c = ass_color(text_color), ass_color(outline_color)
    margin = max(8, height // 10) if position != "middle" else 0
    outline = max(1, font_size // 12)
    header = [
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        f"Style: Caption,{font_family},{font_size},{primary},{primary},{outline_c},&H80000000,"
        f"-1,0,0,0,100,100,0,0,1,{outline},0,{_ALIGNMENT.get(position, 2)},{width // 12},{width // 12},"
        f"{margin},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    events = [
        f"Dialogue: 0,{_ass_stamp(c.start)},{_ass_stamp(c.end)},Caption,,0,0,0,,{_ass_text(c.text)}"
        for c in cues
    ]
    return "\n".join([*header, *events, ""])
