"""Ready-made workflows that show the engine (``GET /v1/workflow-templates``).

Each is an ordinary graph: save it as it is (``POST /v1/workflows`` with its ``graph``), or
change it first. Every template parses with `pipelines.workflows.graph.parse` on the smallest
tier (tests/pipelines/test_workflow_templates.py).
"""

from __future__ import annotations

import copy
from typing import Any

_SOURCE = {"input": "source"}

TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "web-ready-video",
        "name": "Web-ready video",
        "description": "Probe a video, then make a 1080p and a 480p MP4, an HLS ladder and a "
        "thumbnail sprite sheet, all from the source, side by side.",
        "graph": {
            "inputs": {"source": {"kind": "video"}},
            "nodes": {
                "probe": {"type": "media.probe", "input": {"file_id": _SOURCE}},
                "mp4_1080p": {
                    "type": "video.transcode",
                    "params": {"preset": "mp4_1080p"},
                    "input": {"file_id": _SOURCE},
                },
                "mp4_480p": {
                    "type": "video.transcode",
                    "params": {"preset": "mp4_480p"},
                    "input": {"file_id": _SOURCE},
                },
                "hls": {
                    "type": "video.transcode",
                    "params": {"preset": "hls"},
                    "input": {"file_id": _SOURCE},
                },
                "sprite": {
                    "type": "video.thumbnail",
                    "params": {"sprite": True, "frames": 20, "columns": 5, "width": 160},
                    "input": {"file_id": _SOURCE},
                },
            },
        },
    },
    {
        "id": "podcast-clip",
        "name": "Podcast clip",
        "description": "Transcribe an episode (audio or video), then burn the transcript's captions "
        "into a 9:16 video for phones.",
        "graph": {
            "inputs": {"source": {"kind": "any"}},
            "nodes": {
                "transcript": {
                    "type": "speech.transcribe",
                    "params": {"model": "whisper-1"},
                    "input": {"file_id": _SOURCE},
                },
                "clip": {
                    "type": "video.captions",
                    "params": {"height": 1280, "fit": "crop"},
                    "input": {"file_id": _SOURCE, "subtitles_file_id": {"node": "transcript", "output": 0}},
                },
            },
        },
    },
    {
        "id": "product-shots",
        "name": "Product shots",
        "description": "Generate a product image (on the offline model: change `model` and the "
        "prompt), then resize it for a shop: a square, a wide banner and a thumbnail.",
        "graph": {
            "inputs": {},
            "nodes": {
                "shot": {
                    "type": "image.generate",
                    "params": {"model": "local-image", "width": 1024, "height": 1024},
                    "input": {"prompt": "a red armchair on a white background, studio light"},
                },
                "square": {
                    "type": "image.resize",
                    "params": {"width": 1080, "height": 1080, "mode": "fill"},
                    "input": {"file_id": {"node": "shot", "output": 0}},
                },
                "banner": {
                    "type": "image.resize",
                    "params": {"width": 1200, "height": 628, "mode": "fill"},
                    "input": {"file_id": {"node": "shot", "output": 0}},
                },
                "thumbnail": {
                    "type": "image.resize",
                    "params": {"width": 320, "height": 320, "mode": "fit", "format": "webp"},
                    "input": {"file_id": {"node": "shot", "output": 0}},
                },
            },
        },
    },
]


def all_templates() -> list[dict[str, Any]]:
    """The templates, as copies a caller may change."""
    return copy.deepcopy(TEMPLATES)
