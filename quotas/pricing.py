"""The price list: what a job costs, in millicredits, from its type and parameters.

Prices are data: the defaults below can be replaced with ``FAKTRY_PRICES`` (JSON of the same
shape). A job's price is estimated from its input when it is submitted and held; what it is
charged afterwards is computed from what it produced, and is never more than the estimate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PRICES: dict[str, dict[str, Any]] = {
    "media.probe": {"flat": 100},
    "video.transcode": {
        "per_minute": {
            "mp4_360p": 500,
            "mp4_480p": 750,
            "mp4_720p": 1000,
            "mp4_1080p": 1500,
            "webm_vp9": 1500,
            "audio_mp3": 200,
            "audio_aac": 200,
            "audio_opus": 200,
            "hls": 2500,
        },
        "minimum": 200,
    },
    "video.thumbnail": {"flat": 200, "sprite": 500},
    "image.resize": {"flat": 100},
}


@dataclass(frozen=True)
class PriceList:
    table: dict[str, dict[str, Any]] = field(default_factory=lambda: DEFAULT_PRICES)

    @classmethod
    def from_json(cls, text: str) -> PriceList:
        if not text.strip():
            return cls()
        table = json.loads(text)
        if not isinstance(table, dict):
            raise ValueError("FAKTRY_PRICES must be a JSON object of job type to price rule")
        return cls({**DEFAULT_PRICES, **table})

    def knows(self, job_type: str) -> bool:
        return job_type in self.table

    def estimate(self, job_type: str, params: dict[str, Any], input_media: dict[str, Any]) -> int:
        return self._price(job_type, params, input_media.get("duration"))

    def actual(
        self,
        job_type: str,
        params: dict[str, Any],
        input_media: dict[str, Any],
        outputs: list[dict[str, Any]],
    ) -> int:
        """The charge for what was produced: output minutes where they are known."""
        durations = [float(o["duration"]) for o in outputs if o.get("duration")]
        seconds = max(durations) if durations else input_media.get("duration")
        return min(self._price(job_type, params, seconds), self.estimate(job_type, params, input_media))

    def _price(self, job_type: str, params: dict[str, Any], seconds: Any) -> int:
        rule = self.table.get(job_type)
        if rule is None:
            raise KeyError(f"no price for job type {job_type!r}")
        if "per_minute" in rule:
            per_minute = rule["per_minute"]
            rate = (
                per_minute.get(params.get("preset"), max(per_minute.values()))
                if isinstance(per_minute, dict)
                else per_minute
            )
            minutes = max(float(seconds or 0.0), 0.0) / 60
            return max(int(rule.get("minimum", 0)), math.ceil(rate * minutes))
        if params.get("sprite") and "sprite" in rule:
            return int(rule["sprite"])
        return int(rule.get("flat", 0))
