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
    # Minutes of the 9:16 video made (its input's, when quoted); subtitle files alone, flat.
    "video.captions": {"per_minute": 1000, "minimum": 200, "unburned": 100},
    # Minutes of the input (three passes over its audio; a video's picture is copied).
    "audio.normalize": {"per_minute": 300, "minimum": 100},
    "video.watermark": {"per_minute": 1000, "minimum": 200},
    # Minutes of each aspect made: the rate times the number of aspects.
    "video.reframe": {"per_minute": 1000, "minimum": 200, "times": "aspects"},
    # Minutes of the joined video (the clips' sum, when quoted).
    "video.concat": {"per_minute": 1000, "minimum": 200},
    # Minutes of the timeline as written (its stated seconds, pipelines/timeline.py); a narration
    # that holds a scene longer makes a longer video, never a larger charge.
    "video.render": {"per_minute": 1500, "minimum": 300},
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

    def estimate(
        self,
        job_type: str,
        params: dict[str, Any],
        input_media: dict[str, Any],
        *,
        rule: dict[str, Any] | None = None,
        text: str = "",
    ) -> int:
        """The price held at submit. ``rule`` is a generation model's own price (the catalog's);
        ``text`` is what a speech model will read (priced per thousand characters)."""
        return self._price(rule or self._rule(job_type), params, input_media.get("duration"), text)

    def actual(
        self,
        job_type: str,
        params: dict[str, Any],
        input_media: dict[str, Any],
        outputs: list[dict[str, Any]],
        *,
        rule: dict[str, Any] | None = None,
        text: str = "",
    ) -> int:
        """The charge for what was produced: output minutes or seconds where they are known,
        never more than the estimate."""
        estimate = self.estimate(job_type, params, input_media, rule=rule, text=text)
        use = rule or self._rule(job_type)
        durations = [float(o["duration"]) for o in outputs if o.get("duration")]
        if "per_second" in use and durations:
            return min(
                estimate, max(int(use.get("minimum", 0)), math.ceil(use["per_second"] * max(durations)))
            )
        if "per_minute" in use:
            seconds = max(durations) if durations else input_media.get("duration")
            return min(self._price(use, params, seconds, text), estimate)
        return estimate

    def _rule(self, job_type: str) -> dict[str, Any]:
        rule = self.table.get(job_type)
        if rule is None:
            raise KeyError(f"no price for job type {job_type!r}")
        return rule

    @staticmethod
    def _price(rule: dict[str, Any], params: dict[str, Any], seconds: Any, text: str = "") -> int:
        minimum = int(rule.get("minimum", 0))
        if "unburned" in rule and params.get("burn") is False:  # captions as files only
            return int(rule["unburned"])
        if "per_minute" in rule:  # output minutes of a transcode, by preset
            per_minute = rule["per_minute"]
            rate = (
                per_minute.get(params.get("preset"), max(per_minute.values()))
                if isinstance(per_minute, dict)
                else per_minute
            )
            # A job writing one output per item of a param (`times`) is charged for each.
            times = len(params.get(rule["times"]) or [None]) if "times" in rule else 1
            return times * max(minimum, math.ceil(rate * max(float(seconds or 0.0), 0.0) / 60))
        if "per_input_minute" in rule:  # transcription: minutes of the input
            return max(minimum, math.ceil(rule["per_input_minute"] * max(float(seconds or 0.0), 0.0) / 60))
        if "per_second" in rule:  # generated video: the seconds asked for
            raw = params.get(rule.get("seconds_param", "duration"), rule.get("default_seconds", 5))
            digits = "".join(ch for ch in str(raw) if ch.isdigit() or ch == ".")
            return max(minimum, math.ceil(rule["per_second"] * float(digits or 0)))
        if "per_1k_chars" in rule:  # speech: the text to read
            return max(minimum, math.ceil(rule["per_1k_chars"] * len(text) / 1000))
        if params.get("sprite") and "sprite" in rule:
            return int(rule["sprite"])
        return max(minimum, int(rule.get("flat", 0)))
