"""Read locust's ``--json-file`` output into the figures the summary prints.

The JSON holds one entry per (method, name) with its response-time histogram
(``{rounded ms: count}``) and no aggregate row: totals and percentiles are merged here.
Entries whose method is ``HANDLED`` or ``JOB`` are the locustfile's custom stats (expected
refusals, job turnaround) and stay out of the HTTP figures.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

CUSTOM_METHODS = ("HANDLED", "JOB")


def percentile(histogram: Counter[float], fraction: float) -> float:
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(total * fraction))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def _histogram(entries: list[dict[str, Any]]) -> Counter[float]:
    merged: Counter[float] = Counter()
    for entry in entries:
        for ms, count in (entry.get("response_times") or {}).items():
            merged[float(ms)] += int(count)
    return merged


def _span(entries: list[dict[str, Any]]) -> float:
    starts = [e["start_time"] for e in entries if e.get("start_time")]
    ends = [e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")]
    return max(ends) - min(starts) if starts and ends else 0.0


def _figures(entries: list[dict[str, Any]]) -> dict[str, Any]:
    hist = _histogram(entries)
    return {
        "requests": sum(e["num_requests"] for e in entries),
        "failures": sum(e["num_failures"] for e in entries),
        "p50_ms": percentile(hist, 0.50),
        "p95_ms": percentile(hist, 0.95),
        "p99_ms": percentile(hist, 0.99),
        "max_ms": max(hist) if hist else 0.0,
    }


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    http = [e for e in entries if e["method"] not in CUSTOM_METHODS]
    span = _span(http)
    totals = _figures(http)
    totals["rps"] = round(totals["requests"] / span, 1) if span > 0 else 0.0
    endpoints = sorted(
        ({"method": e["method"], "name": e["name"], **_figures([e])} for e in http),
        key=lambda row: (row["name"], row["method"]),
    )
    handled = {e["name"]: e["num_requests"] for e in entries if e["method"] == "HANDLED"}
    turnaround = []
    for e in sorted((e for e in entries if e["method"] == "JOB"), key=lambda e: e["name"]):
        figures = _figures([e])
        timing = {k: v for k, v in figures.items() if k.endswith("_ms")}
        turnaround.append({"job": e["name"], "count": e["num_requests"], **timing})
    return {**totals, "endpoints": endpoints, "handled": handled, "turnaround": turnaround}


def ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:.0f} ms"
