"""The runner's pure parts: the loopback rule, durations, and reading locust's JSON stats."""

from __future__ import annotations

import pytest

from loadtests import common, report
from loadtests.run import parse_duration


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.9.9.9", "http://[::1]:80/", "http://localhost:1"]
)
def test_loopback_hosts_are_accepted(url):
    assert common.check_loopback(url) == url


@pytest.mark.parametrize(
    "url",
    ["http://192.0.2.1:8000", "http://10.0.0.1", "http://[2001:db8::1]/", "ftp://127.0.0.1", "", "127.0.0.1"],
)
def test_other_hosts_are_refused(url):
    with pytest.raises(common.HostRefused):
        common.check_loopback(url)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("90", 90), ("5m", 300), ("1h30m", 5400), ("2m5s", 125)]
)
def test_durations_read_like_locust_s(text, seconds):
    assert parse_duration(text) == seconds


def _entry(method, name, times, failures=0):
    return {
        "method": method,
        "name": name,
        "num_requests": sum(times.values()),
        "num_failures": failures,
        "response_times": {str(k): v for k, v in times.items()},
        "start_time": 100.0,
        "last_request_timestamp": 110.0,
    }


def test_the_summary_merges_http_entries_and_keeps_custom_stats_apart():
    stats = report.summarize(
        [
            _entry("POST", "/v1/jobs [image.resize]", {10: 90, 100: 10}, failures=1),
            _entry("GET", "/v1/jobs/[id]", {5: 100}),
            _entry("HANDLED", "429 rate_limited", {3: 7}),
            _entry("JOB", "image.resize succeeded", {2000: 4}),
        ]
    )
    assert stats["requests"] == 200 and stats["failures"] == 1
    assert (stats["p50_ms"], stats["p95_ms"], stats["p99_ms"], stats["max_ms"]) == (5, 10, 100, 100)
    assert stats["rps"] == 20.0
    assert stats["handled"] == {"429 rate_limited": 7}
    assert stats["turnaround"] == [
        {
            "job": "image.resize succeeded",
            "count": 4,
            "p50_ms": 2000,
            "p95_ms": 2000,
            "p99_ms": 2000,
            "max_ms": 2000,
        }
    ]
