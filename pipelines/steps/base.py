"""What a job step receives and returns.

A step does the media work of one job type: it reads one local input file, writes its
outputs under ``ctx.out_dir`` and returns them, and writes nothing anywhere else (the tools it
runs work in ``ctx.out_dir`` too). It knows nothing of queues, databases or
storage; the runner moves files in and out and records the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepContext:
    input_path: Path
    input_kind: str
    #: The input's facts as probed at upload (`MediaInfo.to_dict`); empty when never probed.
    #: Steps use them instead of probing the input again.
    input_media: dict[str, Any]
    out_dir: Path
    params: dict[str, Any]
    timeout: float
    on_progress: Callable[[float], None]
    should_cancel: Callable[[], bool]
    probe_timeout: float = 30.0
    max_image_pixels: int = 50_000_000
    #: Address space each ffmpeg and ffprobe process may use, in bytes; 0 means no limit.
    memory_limit_bytes: int = 0
    #: Local paths of the job's other input files, by input field (``subtitles_file_id``);
    #: ``input_path`` is ``file_id``'s.
    inputs: dict[str, Path] = field(default_factory=dict)
    #: Input fields that name a list of files (``file_ids``): each file's local path and its
    #: facts as probed at upload, in order. ``input_path`` is the list's first file.
    lists: dict[str, list[tuple[Path, dict[str, Any]]]] = field(default_factory=dict)
    #: The kind of each file of `lists` (``image``, ``video``, ``audio``), in the same order.
    list_kinds: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Described:
    """What a file is, as the runner would find by sniffing and probing it: its content type,
    its kind and its media facts (`MediaInfo.to_dict`)."""

    content_type: str
    kind: str
    media: dict[str, Any]


@dataclass(frozen=True)
class Output:
    """One named output: a folder under ``out_dir`` and its files, the root file first."""

    name: str
    root: Path
    paths: list[str]
    #: Files of ``paths`` the step wrote itself and can describe exactly, without a probe
    #: (an image it encoded knows its format and size); the runner probes the others.
    known: dict[str, Described] = field(default_factory=dict)


@dataclass
class StepResult:
    outputs: list[Output] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
