"""The `video.render` step: a timeline document (pipelines/timeline.py, docs/timeline.md) made
into one MP4, and its captions as an SRT file when the timeline asks for them.

The timeline is resolved against the files it is given (their kinds, and lengths as probed at
upload), then rendered (`pipelines.media.render`). The result says where each clip landed, the
captions' cues and the loudness reached, so a caller can show them without reading the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines import timeline as timelines
from pipelines.media import ffmpeg, subtitles
from pipelines.media import render as rendering
from pipelines.steps.base import Described, Output, StepContext, StepResult
from pipelines.steps.media import info_of

#: Cues the result lists at most (the SRT has them all).
RESULT_CUES = 200


def _source(ctx: StepContext, path: Path, media: dict[str, Any], kind: str) -> timelines.Source:
    if kind == "image":
        return timelines.Source("image")
    info = info_of(ctx, path, media, kind)
    sound = next((s for s in info.streams if s.get("codec_type") == "audio"), {})
    lengths = [float(x) for x in (sound.get("duration"), info.duration) if x]
    audio_seconds = min(lengths) if info.has_audio and lengths else None
    picture = ffmpeg.clip_seconds(info) if info.has_video else None
    return timelines.Source(kind, picture_seconds=picture, audio_seconds=audio_seconds)


def render(ctx: StepContext) -> StepResult:
    timeline = ctx.params["timeline"]
    items = ctx.lists.get("file_ids", [])
    kinds = ctx.list_kinds.get("file_ids", [])
    sources = [_source(ctx, path, media, kind) for (path, media), kind in zip(items, kinds, strict=True)]
    plan = timelines.resolve(timeline, sources)
    root = ctx.out_dir / "video"
    rendered = rendering.render(
        plan,
        [path for path, _ in items],
        root,
        ctx.out_dir / "render",
        timeout=ctx.timeout,
        on_progress=ctx.on_progress,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    outputs = [Output(name="video", root=root, paths=[rendered.name])]
    if plan.srt:
        folder = ctx.out_dir / "captions"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "captions.srt").write_text(subtitles.to_srt(plan.cues), "utf-8")
        known = {"captions.srt": Described("application/x-subrip", "subtitles", {})}
        outputs.append(Output(name="captions", root=folder, paths=["captions.srt"], known=known))
    loudness = rendered.loudness
    result = {
        "duration": round(plan.duration, 3),
        "clips": [
            {"id": span.id, "start": round(span.start, 3), "end": round(span.start + span.seconds, 3)}
            for span in plan.video
        ],
        "captions": [
            {"start": cue.start, "end": cue.end, "text": cue.text} for cue in plan.cues[:RESULT_CUES]
        ],
        "loudness": {
            "target_lufs": plan.target_lufs,
            "integrated": round(loudness.integrated, 2) if loudness else None,
            "true_peak": round(loudness.true_peak, 2) if loudness else None,
        },
    }
    return StepResult(outputs=outputs, result=result)
