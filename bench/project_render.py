"""A video project's render as one workflow run, beside the same steps run alone one after
another, through the whole platform on the offline models.

The project is the one tests/pipelines/test_project_render.py checks: three 9:16 scenes
(a generated still, a library still, a generated clip), narration per scene, generated music
and a brand's logo and caption colours. On a real ``faktry web`` and a worker of 2 processes
x 2 threads, on a fresh SQLite database:
- run: ``POST /v1/projects/{id}/render``, timed until the run has succeeded;
- alone: each node of the same graph (``GET /v1/projects/{id}/timeline``) submitted as a job
  by itself, waited for, then the next; the render last, on the files the others made.
  The sum of these times is what the steps cost alone, with nothing overlapped.
Sides alternate, ``--rounds`` times each; the medians are compared.

    python -m bench.project_render            # 3 rounds
    python -m bench.project_render --quick    # 1 round (smoke)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import redis_url, sqlite_platform, upload
from tests.pipelines.test_project_render import SCRIPTS, _logo, _still, project_body

POLL = 0.02


def _wait_status(url: str, headers: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = dict(requests.get(url, headers=headers, timeout=30).json())
        if body["status"] not in ("queued", "running", "pending"):
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} still {body['status']} after {timeout:.0f} s")
        time.sleep(POLL)


def _project(base: str, headers: dict[str, str], tmp: Path) -> str:
    logo = upload(base, headers, _logo(tmp))
    still = upload(base, headers, _still(tmp))
    brand = requests.post(
        f"{base}/v1/brands",
        json={"name": f"Northwind {time.monotonic_ns()}", "logo_file_id": logo,
              "colors": {"primary": "#ffdd00", "secondary": "#101010"}},
        headers=headers, timeout=30,
    )  # fmt: skip
    brand.raise_for_status()
    made = requests.post(
        f"{base}/v1/projects", json=project_body(brand.json()["id"], still), headers=headers, timeout=30
    )
    made.raise_for_status()
    return str(made.json()["id"])


def as_a_run(base: str, headers: dict[str, str], project_id: str) -> float:
    start = time.perf_counter()
    r = requests.post(
        f"{base}/v1/projects/{project_id}/render", json={"reuse": False}, headers=headers, timeout=60
    )
    if r.status_code != 202:
        raise RuntimeError(f"render refused: {r.status_code} {r.text[:500]}")
    run = _wait_status(f"{base}/v1/workflow-runs/{r.json()['id']}", headers)
    elapsed = time.perf_counter() - start
    if run["status"] != "succeeded":
        raise RuntimeError(f"the render run {run['status']}: {str(run)[:1000]}")
    return elapsed


def _file_ids(value: Any, outputs: dict[str, list[str]]) -> Any:
    """A node's input with each reference to another node's output replaced by its file id."""
    if isinstance(value, dict) and "node" in value:
        return outputs[value["node"]][value.get("output", 0)]
    if isinstance(value, list):
        return [_file_ids(v, outputs) for v in value]
    return value


def steps_alone(base: str, headers: dict[str, str], project_id: str) -> tuple[float, dict[str, float]]:
    plan = requests.get(f"{base}/v1/projects/{project_id}/timeline", headers=headers, timeout=30).json()
    nodes: dict[str, Any] = plan["graph"]["nodes"]
    order = [name for name in nodes if name != "render"] + ["render"]
    outputs: dict[str, list[str]] = {}
    times: dict[str, float] = {}
    for name in order:
        node = nodes[name]
        body = {
            "type": node["type"],
            "params": node.get("params", {}),
            "input": {k: _file_ids(v, outputs) for k, v in node.get("input", {}).items()},
        }
        start = time.perf_counter()
        r = requests.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=60)
        if r.status_code != 202:
            raise RuntimeError(f"{name} refused: {r.status_code} {r.text[:500]}")
        job = _wait_status(f"{base}/v1/jobs/{r.json()['id']}", headers)
        times[name] = time.perf_counter() - start
        if job["status"] != "succeeded":
            raise RuntimeError(f"{name} {job['status']}: {str(job.get('error'))[:500]}")
        outputs[name] = [o["id"] for o in job["outputs"]]
    return sum(times.values()), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    runs: list[float] = []
    alone: list[float] = []
    parts: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        platform, headers = sqlite_platform(tmp, url, namespace, credits=100_000)
        try:
            platform.start_web()
            platform.start_worker(2, 2)
            platform.start("scheduler", "scheduler")
            platform.wait_healthy()
            project_id = _project(platform.base, headers, tmp)
            as_a_run(platform.base, headers, project_id)  # warm: fonts, ffmpeg, the models
            for _ in range(rounds):
                runs.append(as_a_run(platform.base, headers, project_id))
                total, each = steps_alone(platform.base, headers, project_id)
                alone.append(total)
                parts.append(each)
        finally:
            platform.stop()
    run_s, alone_s = statistics.median(runs), statistics.median(alone)
    print(
        f"A three-scene 9:16 project ({len(SCRIPTS)} narrated scenes, music, brand) on the offline models, "
        f"{rounds} round(s), medians:"
    )
    print(f"  render as one workflow run   {run_s:6.2f} s   (each: {', '.join(f'{t:.2f}' for t in runs)})")
    print(f"  its steps alone, one by one  {alone_s:6.2f} s   (each: {', '.join(f'{t:.2f}' for t in alone)})")
    last = parts[-1]
    print("  steps alone (last round): " + ", ".join(f"{name} {t:.2f} s" for name, t in last.items()))
    print(f"  ratio run/steps-alone: {run_s / alone_s:.2f}")


if __name__ == "__main__":
    main()
