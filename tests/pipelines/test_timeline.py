"""The timeline document on its own: its published schema, every refusal naming its JSON path,
the length a quote prices, and the plan a render follows once the files' lengths are known."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from faktry.errors import InvalidMedia, ValidationError
from pipelines import timeline
from pipelines.timeline import Source

ROOT = Path(__file__).resolve().parents[2]

#: A still, its narration, a video, its narration, music, a logo.
KINDS = ["image", "audio", "video", "audio", "audio", "image"]
SOURCES = [
    Source("image"),
    Source("audio", audio_seconds=2.0),
    Source("video", picture_seconds=6.0, audio_seconds=6.0),
    Source("audio", audio_seconds=1.0),
    Source("audio", audio_seconds=5.0),
    Source("image"),
]


def example() -> dict[str, Any]:
    return {
        "version": 1,
        "format": {"width": 360, "height": 640, "fps": 30},
        "video": [
            {
                "id": "s1",
                "file": 0,
                "duration": 2,
                "hold_for": "n1",
                "transition": {"type": "fade", "duration": 0.5},
            },
            {"id": "s2", "file": 2, "in": 1.0, "out": 4.0, "fit": "pad"},
        ],
        "audio": [
            {
                "id": "n1",
                "file": 1,
                "role": "narration",
                "at": {"clip": "s1", "offset": 0.25},
                "text": "One two.",
            },
            {
                "id": "n2",
                "file": 3,
                "role": "narration",
                "at": {"clip": "s2", "offset": 0.5},
                "text": "Three.",
            },
            {"id": "m", "file": 4, "role": "music", "volume": 0.5},
        ],
        "text": [{"text": "Title", "start": 0, "end": 1.5}],
        "watermark": {"file": 5},
    }


def refusal(doc: dict[str, Any], kinds: Sequence[str | None] = KINDS) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        timeline.validate(doc)
        timeline.check(doc, kinds=kinds)
    return caught.value


def test_the_published_schema_is_the_one_the_code_checks_with():
    published = (ROOT / "docs" / "timeline.schema.json").read_text()
    expected = json.dumps(timeline.document(), indent=2) + "\n"
    assert published == expected, "run: python -m pipelines.timeline > docs/timeline.schema.json"


def test_the_example_of_the_docs_is_a_valid_timeline():
    text = (ROOT / "docs" / "timeline.md").read_text()
    body = json.loads(text.split("```json\nPOST /v1/jobs\n", 1)[1].split("```", 1)[0])
    timeline.validate(body["params"]["timeline"])
    kinds = ["image", "audio", "video", "audio", "audio", "image"]
    assert len(body["input"]["file_ids"]) == len(kinds)
    timeline.check(body["params"]["timeline"], kinds=kinds)


def test_a_good_timeline_passes_and_is_left_as_written():
    doc = example()
    assert timeline.validate(copy.deepcopy(doc)) == doc
    timeline.check(doc, kinds=KINDS)
    timeline.check(doc, kinds=[None] * len(KINDS))  # kinds unknown: only the count is checked


def _set(doc: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    *parents, last = where.split("/")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize(
    ("where", "value", "field", "code"),
    [
        ("video/1/file", 9, "params.timeline.video[1].file", "file_out_of_range"),
        ("audio/2/file", 6, "params.timeline.audio[2].file", "file_out_of_range"),
        ("watermark/file", 6, "params.timeline.watermark.file", "file_out_of_range"),
        ("video/1/out", 1.0, "params.timeline.video[1].out", "invalid_range"),
        ("video/1/out", 0.5, "params.timeline.video[1].out", "invalid_range"),
        ("video/0/speed", 2, "params.timeline.video[0].speed", "unknown_field"),
        ("audio/0/at/speed", 2, "params.timeline.audio[0].at.speed", "unknown_field"),
        ("surprise", {}, "params.timeline.surprise", "unknown_field"),
        ("video/0/hold_for", "n9", "params.timeline.video[0].hold_for", "unknown_clip"),
        ("video/0/hold_for", "s2", "params.timeline.video[0].hold_for", "unknown_clip"),
        ("audio/1/at", {"clip": "nope"}, "params.timeline.audio[1].at.clip", "unknown_clip"),
        (
            "video/0/transition",
            {"type": "fade", "duration": 2},
            "params.timeline.video[0].transition.duration",
            "transition_too_long",
        ),
        ("video/1/out", 1.4, "params.timeline.video[0].transition.duration", "transition_too_long"),
        (
            "video/0/transition",
            {"type": "swirl"},
            "params.timeline.video[0].transition.type",
            "invalid_request",
        ),
        (
            "video/0/transition",
            {"type": "fade", "duration": 3},
            "params.timeline.video[0].transition.duration",
            "invalid_request",
        ),
        ("video/1/file", 1, "params.timeline.video[1].file", "unsupported_input"),
        ("audio/0/file", 0, "params.timeline.audio[0].file", "unsupported_input"),
        ("watermark/file", 2, "params.timeline.watermark.file", "unsupported_input"),
        ("video/1/id", "s1", "params.timeline.video[1].id", "duplicate_id"),
        ("audio/2/id", "s2", "params.timeline.audio[2].id", "duplicate_id"),
        ("audio/2/text", "la la", "params.timeline.audio[2].text", "not_for_role"),
        ("audio/0/duck", False, "params.timeline.audio[0].duck", "not_for_role"),
        ("text/0/end", 0, "params.timeline.text[0].end", "invalid_request"),
        ("text/0/start", 2, "params.timeline.text[0].end", "invalid_range"),
        ("format/width", 361, "params.timeline.format.width", "invalid_request"),
        ("format/fps", 61, "params.timeline.format.fps", "invalid_request"),
        ("audio/0/at", "soon", "params.timeline.audio[0].at", "invalid_request"),
        ("audio/0/volume", 3, "params.timeline.audio[0].volume", "invalid_request"),
        ("loudness", {"target_lufs": -3}, "params.timeline.loudness.target_lufs", "invalid_request"),
        ("style", {"color": "red"}, "params.timeline.style.color", "invalid_request"),
        ("version", 2, "params.timeline.version", "invalid_request"),
    ],
)
def test_each_refusal_names_the_json_path_of_what_is_wrong(where, value, field, code):
    err = refusal(_set(example(), where, value))
    assert (err.field, err.code) == (field, code), err.message


def test_a_still_needs_a_duration_and_takes_no_trim():
    doc = example()
    del doc["video"][0]["duration"]
    err = refusal(doc)
    assert (err.field, err.code) == ("params.timeline.video[0].duration", "duration_required")
    doc = _set(example(), "video/0/in", 1)
    err = refusal(doc)
    assert (err.field, err.code) == ("params.timeline.video[0].in", "trim_needs_video")


def test_missing_required_fields_are_named():
    doc = example()
    del doc["video"][1]["file"]
    err = refusal(doc)
    assert (err.field, err.code) == ("params.timeline.video[1].file", "invalid_request")
    doc = example()
    del doc["format"]
    assert refusal(doc).field == "params.timeline.format"
    assert refusal({**example(), "video": []}).field == "params.timeline.video"


def test_a_clip_cannot_hold_for_audio_placed_by_a_later_clip():
    doc = example()
    doc["video"][0]["hold_for"] = "n2"  # n2 starts with s2, which starts when s1 ends
    err = refusal(doc)
    assert (err.field, err.code) == ("params.timeline.video[0].hold_for", "circular_hold")


def test_a_transition_is_checked_against_a_video_whose_length_is_written_only_once_known():
    doc = example()
    del doc["video"][1]["out"]  # s2 now lasts as long as its file, from 1 s
    doc["video"][0]["transition"]["duration"] = 1.9
    timeline.validate(doc)
    timeline.check(doc, kinds=KINDS)
    short = list(SOURCES)
    short[2] = Source("video", picture_seconds=2.5, audio_seconds=2.5)  # 1.5 s from in
    with pytest.raises(InvalidMedia) as caught:
        timeline.resolve(doc, short)
    assert caught.value.code == "clip_too_short"
    short[2] = Source("video", picture_seconds=0.5, audio_seconds=0.5)  # in is past the end
    with pytest.raises(InvalidMedia) as caught:
        timeline.resolve(doc, short)
    assert caught.value.code == "clip_too_short"


def test_the_stated_length_is_the_clips_as_written_less_the_transitions():
    doc = example()
    assert timeline.stated_seconds(doc) == 2 + 3 - 0.5
    doc["video"][1] = {"id": "s2", "file": 2, "in": 1.0}  # its length is its file's
    assert timeline.stated_seconds(doc) == 2 - 0.5
    assert timeline.stated_seconds(doc, [None, None, 6.0]) == 2 + 5 - 0.5
    doc["video"][1]["duration"] = 8  # a held last frame counts
    assert timeline.stated_seconds(doc, [None, None, 6.0]) == 2 + 8 - 0.5
    doc["video"][0]["transition"] = {"type": "cut", "duration": 1}  # a cut has no length
    assert timeline.stated_seconds(doc) == 10


def test_hold_for_lengthens_a_clip_to_its_narration_and_everything_after_moves():
    doc = example()
    plan = timeline.resolve(doc, SOURCES)
    s1, s2 = plan.video
    # 0.25 s offset + 2 s of narration + 0.3 s tail + the 0.5 s fade out: 3.05 s, 92 frames.
    assert (s1.start, s1.frames) == (0, 92)
    assert s1.seconds > 2
    assert s2.start == pytest.approx((92 - 15) / 30)
    assert s2.frames == 90 and (s2.source_in, s2.source_seconds) == (1.0, 3.0)
    assert plan.frames == 92 - 15 + 90 and plan.duration == pytest.approx(167 / 30)
    n1, n2, music = plan.audio
    assert (n1.start, n1.seconds) == (0.25, 2.0)
    assert n2.start == pytest.approx(s2.start + 0.5) and n2.seconds == 1.0
    assert music.loop and music.start == 0 and music.seconds == pytest.approx(plan.duration, abs=1e-5)
    assert music.source_seconds == 5.0 and music.whole

    doc["video"][0]["duration"] = 4  # already longer than the narration: unchanged
    assert timeline.resolve(doc, SOURCES).video[0].frames == 120


def test_a_video_clip_longer_than_its_part_of_the_file_holds_its_last_frame():
    doc = example()
    doc["video"][1]["duration"] = 5
    s2 = timeline.resolve(doc, SOURCES).video[1]
    assert (s2.seconds, s2.source_seconds) == (5.0, 3.0)
    doc["video"][1]["duration"] = 2
    s2 = timeline.resolve(doc, SOURCES).video[1]
    assert (s2.seconds, s2.source_seconds) == (2.0, 2.0)


def test_audio_past_the_end_is_cut_and_music_without_loop_plays_once():
    doc = example()
    doc["audio"][2].update(loop=False, at=1.0)
    plan = timeline.resolve(doc, SOURCES)
    assert plan.audio[2].seconds == pytest.approx(plan.duration - 1.0)  # 5 s would run past the end
    doc["audio"][2].update(**{"in": 4.0})
    assert timeline.resolve(doc, SOURCES).audio[2].seconds == pytest.approx(1.0)


def test_captions_cut_each_narration_on_words_and_share_its_span_by_length():
    doc = example()
    doc["audio"][0]["text"] = "The quick brown fox jumps over the lazy dog and keeps on running far away."
    doc["captions"] = {"max_chars": 20}
    plan = timeline.resolve(doc, SOURCES)
    chunks = timeline.split_text(doc["audio"][0]["text"], 20)
    assert chunks == ["The quick brown fox", "jumps over the lazy", "dog and keeps on", "running far away."]
    assert [c.text for c in plan.cues] == [*chunks, "Three."]
    first = plan.cues[:4]
    assert first[0].start == 0.25 and first[-1].end == pytest.approx(2.25, abs=0.001)
    lengths = [c.end - c.start for c in first]
    assert lengths[0] / lengths[2] == pytest.approx((len(chunks[0]) + 1) / (len(chunks[2]) + 1), rel=0.01)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(plan.cues, plan.cues[1:], strict=False))

    doc["captions"] = {"from": "none"}
    plan = timeline.resolve(doc, SOURCES)
    assert plan.cues == [] and not plan.srt
    assert timeline.split_text("a " + "x" * 30 + " b", 10) == ["a", "x" * 30, "b"]


def test_resolution_refuses_files_of_the_wrong_kind_like_a_submit():
    doc = example()
    sources = list(SOURCES)
    sources[0] = Source("audio", audio_seconds=3)
    with pytest.raises(ValidationError) as caught:
        timeline.resolve(doc, sources)
    assert caught.value.field == "params.timeline.video[0].file"
    sources = list(SOURCES)
    sources[1] = Source("video", picture_seconds=2.0)  # a video without sound as narration
    with pytest.raises(InvalidMedia) as err:
        timeline.resolve(doc, sources)
    assert err.value.code == "no_audio"
