"""Rendering a timeline's plan (`pipelines.timeline.Plan`) into one H.264 + AAC MP4 with ffmpeg.

The phases, each one ffmpeg process under the safe input policy of `pipelines.media.ffmpeg`:

1. each video clip becomes a segment of exactly its frames at the output's size and rate: a
   still scaled once, then zoompan for its slow zoom and pan (or held still); a video trimmed,
   fitted, and its last frame held when the clip outlasts it;
2. the sound is mixed: each audio clip trimmed, looped if it loops, set to its volume and
   delayed to its start; music under narration is ducked by a sidechain compressor keyed by
   the narration; the mix lasts exactly the video;
3. the mix is measured and loudness-normalized in two passes (`ffmpeg.measure_loudness`,
   `ffmpeg.normalize_loudness`) and measured again, which the result reports;
4. the segments are joined, with an xfade at each boundary that has a transition (a concat at
   each cut), the captions and titles are burned in (ASS scripts, `pipelines.media.subtitles`),
   the watermark overlaid, and the normalized sound copied in: one faststart MP4.

Every file it writes is under the folders it is given: segments, scripts and the mix in a work
folder it removes when it ends, however it ends; the MP4 in the output folder, removed too
when the render fails or is canceled, so nothing partial is left behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from faktry.errors import Canceled
from pipelines.media import ffmpeg, subtitles
from pipelines.media.ffmpeg import Loudness, fit_frame, input_args
from pipelines.timeline import PAN_ZOOM, AudioSpan, Overlay, Plan, VideoSpan

#: Segments are scratch: encoded fast and nearly losslessly, encoded once more at the end.
_SEGMENT_CODEC = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "14", "-pix_fmt", "yuv420p"]
_FINAL_CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "21", "-pix_fmt", "yuv420p"]
#: The mix's sample rate.
_RATE = 48000
#: A still is scaled this much larger than the frame before zoompan, so its motion is smooth.
_STILL_MARGIN = 1.5
#: The most the normalized audio may peak, in dBTP.
TRUE_PEAK = -1.0
#: How far from the target a normalized mix may land before a gain corrects it, in LU, and
#: how many corrections are tried.
_CLOSE_ENOUGH = 0.5
_CORRECTIONS = 3
#: Titles are drawn this much larger than captions.
_TITLE_SCALE = 1.25
_POSITIONS = {"top": "top", "center": "middle", "bottom": "bottom"}


@dataclass(frozen=True)
class Rendered:
    """The MP4's name in the output folder, and the loudness of its sound as measured (None
    for a silent video: there is nothing to measure)."""

    name: str
    loudness: Loudness | None


@dataclass(frozen=True)
class _Runner:
    timeout: float
    should_cancel: Callable[[], bool]
    memory_limit: int
    cwd: Path

    def run(self, args: list[str], *, seconds: float, progress: Callable[[float], None]) -> str:
        if self.should_cancel():
            raise Canceled("the job was canceled")
        return ffmpeg.run(
            args,
            duration=seconds,
            timeout=self.timeout,
            on_progress=progress,
            should_cancel=self.should_cancel,
            cwd=self.cwd,
            memory_limit=self.memory_limit,
        )


class _Progress:
    """Reports each phase's fraction as its share of the whole render."""

    def __init__(self, report: Callable[[float], None], weights: Sequence[float]) -> None:
        self._report = report
        total = sum(weights) or 1.0
        self._starts, at = [], 0.0
        for weight in weights:
            self._starts.append((at / total, weight / total))
            at += weight

    def phase(self, index: int) -> Callable[[float], None]:
        start, share = self._starts[index]
        return lambda fraction: self._report(min(1.0, start + share * fraction))


def render(
    plan: Plan,
    files: Sequence[Path],
    out_dir: Path,
    work: Path,
    *,
    timeout: float,
    on_progress: Callable[[float], None],
    should_cancel: Callable[[], bool],
    memory_limit: int = 0,
) -> Rendered:
    """Render `plan` from `files` (by index) into ``out_dir/video.mp4``, with scratch in `work`.

    Each ffmpeg process may take `timeout` seconds and `memory_limit` bytes of address space.
    Raises what `ffmpeg.run` raises (`Canceled` on cancel, `InvalidMedia` for a file that cannot
    be decoded, ...), with the output folder left without a video."""
    work.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = _Runner(timeout, should_cancel, memory_limit, work)
    duration = plan.duration
    weights = [span.seconds for span in plan.video] + [duration * 0.3, duration * 1.2]
    progress = _Progress(on_progress, weights)
    try:
        segments = []
        for span in plan.video:
            segments.append(_segment(plan, span, files[span.file], work, runner, progress.phase(span.index)))
        audio, loudness = _sound(plan, files, work, runner, progress.phase(len(plan.video)))
        _join(plan, segments, audio, files, out_dir, work, runner, progress.phase(len(plan.video) + 1))
        return Rendered(ffmpeg._produced(out_dir, ["video.mp4"])[0], loudness)
    except BaseException:
        (out_dir / "video.mp4").unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- 1. segments ----------------------------------------------------------------------------------


def _segment(
    plan: Plan, span: VideoSpan, src: Path, work: Path, runner: _Runner, progress: Callable[[float], None]
) -> Path:
    width, height, fps, frames = plan.width, plan.height, plan.fps, span.frames
    if span.kind == "image":
        big_w, big_h = ffmpeg._even(width * _STILL_MARGIN), ffmpeg._even(height * _STILL_MARGIN)
        if span.motion == "pan_zoom":
            # Zoom in by PAN_ZOOM over the clip while the window drifts a little to the right.
            zoom = f"1+{PAN_ZOOM}*on/{frames}"
            x, y = f"(iw-iw/zoom)*(0.35+0.3*on/{frames})", "(ih-ih/zoom)/2"
        else:
            zoom, x, y = "1", "0", "0"
        chain = (
            f"[0:v:0]{fit_frame(span.fit, big_w, big_h)},setsar=1,"
            f"zoompan=z='{zoom}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps}"
        )
        args = input_args(src)
    else:
        # The clip's part of the file (and a frame more, for rounding), fitted, at the output's
        # rate; its last frame held as long as the clip outlasts it, then cut to its frames.
        hold = span.seconds - span.source_seconds + 1.0
        args = [
            "-ss",
            f"{span.source_in:.3f}",
            "-t",
            f"{span.source_seconds + 2 / fps:.3f}",
            *input_args(src),
        ]
        chain = (
            f"[0:V:0]{fit_frame(span.fit, width, height)},setsar=1,fps={fps},"
            f"tpad=stop_mode=clone:stop_duration={hold:.3f},trim=end_frame={frames},setpts=PTS-STARTPTS"
        )
    name = f"segment_{span.index:03d}.mp4"
    args += ["-filter_complex", chain + ",format=yuv420p[v]", "-map", "[v]", "-frames:v", str(frames)]
    args += ["-r", str(fps), *_SEGMENT_CODEC, "-an", *ffmpeg._STRIP, ffmpeg._output(work, name)]
    runner.run(args, seconds=span.seconds, progress=progress)
    ffmpeg._produced(work, [name])
    return work / name


# -- 2 and 3. sound -------------------------------------------------------------------------------


def _sound(
    plan: Plan, files: Sequence[Path], work: Path, runner: _Runner, progress: Callable[[float], None]
) -> tuple[Path, Loudness | None]:
    """The video's sound as AAC (``audio/audio.m4a`` in `work`), normalized to the plan's target,
    and its loudness as measured afterwards."""
    duration = plan.duration
    steps = [0.4, 0.2, 0.25, 0.15]  # mix, measure, normalize, measure again
    parts = _Progress(progress, steps)
    mix = _mix(plan, files, work, runner, parts.phase(0))
    measured = _measure(mix, duration, runner, parts.phase(1))
    folder = work / "audio"
    folder.mkdir(exist_ok=True)
    if measured.integrated < ffmpeg.SILENCE_LUFS:
        # Silence stays silence: nothing to normalize, nothing to report.
        args = [*input_args(mix), "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", *ffmpeg._STRIP]
        runner.run([*args, ffmpeg._output(folder, "audio.m4a")], seconds=duration, progress=parts.phase(2))
        return folder / ffmpeg._produced(folder, ["audio.m4a"])[0], None
    info = ffmpeg.probe(mix, timeout=runner.timeout, cwd=work, memory_limit=runner.memory_limit)
    [name] = ffmpeg.normalize_loudness(
        mix,
        folder,
        info=info,
        measured=measured,
        target=plan.target_lufs,
        true_peak=TRUE_PEAK,
        keep_video=False,
        timeout=runner.timeout,
        on_progress=parts.phase(2),
        should_cancel=runner.should_cancel,
        memory_limit=runner.memory_limit,
    )
    audio = folder / name
    after = _measure(audio, duration, runner, parts.phase(3))
    for attempt in range(_CORRECTIONS):
        if abs(after.integrated - plan.target_lufs) <= _CLOSE_ENOUGH:
            break
        # loudnorm could not apply one linear gain (a peak was in the way) and its dynamic mode
        # missed on this short a mix: bring it to the target with a gain and a peak limiter.
        gain = plan.target_lufs - after.integrated
        limit = 10 ** (TRUE_PEAK / 20)
        chain = f"volume={gain:.2f}dB,alimiter=limit={limit:.4f}:attack=1:release=50:level=false"
        corrected = f"corrected_{attempt}.m4a"
        args = [*input_args(audio), "-map", "0:a:0", "-af", chain, "-c:a", "aac", "-b:a", "192k"]
        runner.run(
            [*args, *ffmpeg._STRIP, ffmpeg._output(folder, corrected)], seconds=duration, progress=_quiet
        )
        audio = folder / ffmpeg._produced(folder, [corrected])[0]
        after = _measure(audio, duration, runner, _quiet)
    return audio, after


def _quiet(fraction: float) -> None:
    """Progress of a pass too short to report."""


def _measure(path: Path, duration: float, runner: _Runner, progress: Callable[[float], None]) -> Loudness:
    return ffmpeg.measure_loudness(
        path,
        duration=duration,
        timeout=runner.timeout,
        cwd=runner.cwd,
        on_progress=progress,
        should_cancel=runner.should_cancel,
        memory_limit=runner.memory_limit,
    )


def _mix(
    plan: Plan, files: Sequence[Path], work: Path, runner: _Runner, progress: Callable[[float], None]
) -> Path:
    """Every audio clip placed, at its volume, music ducked under narration: ``mix.wav``, 32-bit
    float (a loud sum never clips before it is normalized), exactly as long as the video."""
    total = plan.duration
    args: list[str] = []
    graph: list[str] = [f"anullsrc=r={_RATE}:cl=stereo,atrim=duration={total:.6f}[base]"]
    labels: dict[str, list[str]] = {"narration": [], "ducked": [], "rest": []}
    spans = [span for span in plan.audio if span.seconds > 0.01]
    for k, span in enumerate(spans):
        stream_loop = span.loop and span.whole and span.seconds > span.source_seconds
        if stream_loop:
            args += ["-stream_loop", "-1"]
        args += input_args(files[span.file])
        graph.append(f"[{k}:a:0]{_placed(span, total, stream_loop)}[a{k}]")
        labels[_layer(span)].append(f"a{k}")

    def together(names: list[str], label: str) -> str | None:
        if not names:
            return None
        inputs = "".join(f"[{n}]" for n in names)
        if len(names) == 1:
            graph.append(f"{inputs}anull[{label}]")
        else:
            graph.append(f"{inputs}amix=inputs={len(names)}:duration=longest:normalize=0[{label}]")
        return label

    narration = together(labels["narration"], "narration")
    music = together(labels["ducked"], "music")
    if narration and music:
        graph.append("[narration]asplit=2[voice][key]")
        graph.append(
            "[music][key]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=350:makeup=1[ducked]"
        )
        layers = ["voice", "ducked"]
    else:
        layers = [name for name in (narration, music) if name]
    layers += labels["rest"]
    inputs = "".join(f"[{n}]" for n in ["base", *layers])
    graph.append(
        f"{inputs}amix=inputs={1 + len(layers)}:duration=first:normalize=0,atrim=duration={total:.6f}[mix]"
    )
    name = "mix.wav"
    args += ["-filter_complex", ";".join(graph), "-map", "[mix]", "-c:a", "pcm_f32le", "-ar", str(_RATE)]
    args += [*ffmpeg._STRIP, "-vn", ffmpeg._output(work, name)]
    runner.run(args, seconds=total, progress=progress)
    ffmpeg._produced(work, [name])
    return work / name


def _layer(span: AudioSpan) -> str:
    """Which part of the mix a clip is in: narration, music ducked under it, or the rest."""
    if span.role == "narration":
        return "narration"
    return "ducked" if span.role == "music" and span.duck else "rest"


def _placed(span: AudioSpan, total: float, stream_loop: bool) -> str:
    """The filters that turn one audio input into its place in the mix: stereo at the mix's
    rate, its part of the file (looped), its volume, delayed to its start, then silence to the
    end of the video."""
    filters = []
    if not stream_loop:
        filters.append(
            f"atrim=start={span.source_in:.6f}:duration={span.source_seconds:.6f},asetpts=PTS-STARTPTS"
        )
    filters.append(f"aresample={_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo")
    if span.loop and not stream_loop and span.seconds > span.source_seconds:
        filters.append(f"aloop=loop=-1:size={max(1, round(span.source_seconds * _RATE))}")
    delay = max(0, round(span.start * 1000))
    filters += [
        f"atrim=duration={span.seconds:.6f},asetpts=PTS-STARTPTS",
        f"volume={span.volume:.4f}",
        f"adelay=delays={delay}:all=1",
        f"apad=whole_dur={total:.6f}",
    ]
    return ",".join(filters)


# -- 4. the video ---------------------------------------------------------------------------------


def _scripts(plan: Plan, work: Path) -> list[str]:
    """The ASS scripts to burn, written in `work`: the captions (when burned), and the titles of
    each position."""
    size = plan.style.size or max(12, min(plan.width, plan.height) // 18)

    def write(name: str, cues: list[subtitles.Cue], font_size: int, position: str) -> str:
        script = subtitles.to_ass(
            cues,
            width=plan.width,
            height=plan.height,
            font_size=font_size,
            position=position,
            font_family=plan.style.font,
            text_color=plan.style.color,
            outline_color=plan.style.outline,
        )
        (work / name).write_text(script, "utf-8")
        return name

    scripts = []
    if plan.burn and plan.cues:
        scripts.append(write("captions.ass", plan.cues, size, "bottom"))
    by_position: dict[str, list[Overlay]] = {}
    for overlay in plan.overlays:
        by_position.setdefault(_POSITIONS[overlay.position], []).append(overlay)
    for position, overlays in sorted(by_position.items()):
        cues = [subtitles.Cue(o.start, o.end, o.text) for o in overlays]
        scripts.append(write(f"titles_{position}.ass", cues, round(size * _TITLE_SCALE), position))
    return scripts


def _join(
    plan: Plan,
    segments: list[Path],
    audio: Path,
    files: Sequence[Path],
    out_dir: Path,
    work: Path,
    runner: _Runner,
    progress: Callable[[float], None],
) -> None:
    fps = plan.fps
    args: list[str] = []
    graph: list[str] = []
    for i, segment in enumerate(segments):
        args += input_args(segment)
        # One clock for all: frame numbers at the output's rate, as xfade needs.
        graph.append(f"[{i}:v:0]settb=1/{fps},setpts=N[s{i}]")
    current, length = "s0", plan.video[0].frames
    for i, span in enumerate(plan.video[1:], 1):
        before = plan.video[i - 1]
        joined = f"j{i}"
        if before.transition_frames:
            offset = (length - before.transition_frames) / fps
            graph.append(
                f"[{current}][s{i}]xfade=transition={before.transition}:"
                f"duration={before.transition_frames / fps:.6f}:offset={offset:.6f}[{joined}]"
            )
        else:
            # concat answers on a microsecond clock: back to frame numbers for the next xfade.
            graph.append(f"[{current}][s{i}]concat=n=2:v=1:a=0,settb=1/{fps},setpts=N[{joined}]")
        current, length = joined, length + span.frames - before.transition_frames
    scripts = _scripts(plan, work)
    if scripts:
        burned = ",".join(f"ass={script}" for script in scripts)
        graph.append(f"[{current}]{burned}[burned]")
        current = "burned"
    audio_input = len(segments)
    args += input_args(audio)
    if plan.watermark is not None:
        mark = plan.watermark
        args += input_args(files[mark.file])
        overlay = ffmpeg.logo_overlay(
            current,
            f"{audio_input + 1}:v:0",
            frame_width=plan.width,
            corner=mark.corner,
            scale=mark.width,
            margin=mark.margin,
            opacity=mark.opacity,
        )
        graph.append(f"{overlay},format=yuv420p[v]")
    else:
        graph.append(f"[{current}]format=yuv420p[v]")
    args += ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", f"{audio_input}:a:0"]
    args += ["-r", str(fps), *_FINAL_CODEC, "-c:a", "copy"]
    args += ["-t", f"{plan.duration:.6f}", "-movflags", "+faststart", *ffmpeg._STRIP]
    args += [ffmpeg._output(out_dir, "video.mp4")]
    runner.run(args, seconds=plan.duration, progress=progress)
