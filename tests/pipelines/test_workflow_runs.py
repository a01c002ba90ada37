"""Workflow runs (pipelines/workflows/runs.py, web/api/workflow_runs.py): one hold for the
whole quote, each step an ordinary job created once, advanced when a job ends, failed steps
retried under a new hold, cancel releasing every hold, and the money exact throughout.

Most tests drive the jobs themselves, as a worker would (`runner.run`), so that each state of
a run can be looked at; the first runs a real worker."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from faktry import clock
from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job
from pipelines.reconcile import reconcile
from pipelines.workflows.models import WorkflowEvent, WorkflowRun, WorkflowStep
from quotas import ledger
from quotas.models import Hold
from storage.models import File
from tests.web.helpers import upload

RESIZE = {"width": 64, "height": 48}
RESIZE_PRICE = 100  # quotas/pricing.py: image.resize is 100 millicredits flat


def five_nodes() -> dict[str, Any]:
    """Five nodes, two of them fanning out over ten items: a generated image resized and
    probed, and a list of frames resized, then each of those resized again."""
    return {
        "inputs": {"frames": {"kind": "image", "list": True}},
        "nodes": {
            "shot": {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": "a red chair"}},
            "small": {"type": "image.resize", "params": RESIZE, "input": {"file_id": {"node": "shot", "output": 0}}},
            "probe": {"type": "media.probe", "input": {"file_id": {"node": "small", "output": 0}}},
            "sizes": {
                "type": "image.resize", "params": RESIZE, "input": {"file_id": {"input": "frames"}}, "map": "file_id",
            },
            "thumbs": {
                "type": "image.resize", "params": {"width": 16, "height": 12},
                "input": {"file_id": {"node": "sizes"}}, "map": "file_id",
            },
        },
    }  # fmt: skip


def resize_over(list_input: str = "frames") -> dict[str, Any]:
    """A mapped resize and, over its outputs, a second mapped resize."""
    return {
        "inputs": {list_input: {"kind": "image", "list": True}},
        "nodes": {
            "sizes": {
                "type": "image.resize", "params": RESIZE, "input": {"file_id": {"input": list_input}}, "map": "file_id",
            },
            "thumbs": {
                "type": "image.resize", "params": {"width": 16, "height": 12},
                "input": {"file_id": {"node": "sizes"}}, "map": "file_id",
            },
        },
    }  # fmt: skip


@pytest.fixture
def frames(tmp_path: Path) -> list[Path]:
    made = []
    for i in range(10):
        path = tmp_path / f"frame{i}.png"
        Image.new("RGB", (120, 90), (20 * i, 100, 200)).save(path)
        made.append(path)
    return made


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def uploaded(client, tenant, paths) -> list[str]:
    return [upload(client, tenant, p).json["id"] for p in paths]


def start_run(client, tenant, graph, inputs, **extra) -> Any:
    return client.post(
        "/v1/workflow-runs", json={"graph": graph, "inputs": inputs, **extra}, headers=tenant.headers
    )


def money(ctx, tenant_id) -> tuple[int, int, list[Any]]:
    """(available, held, problems of the ledger check)."""
    with transaction(ctx.sessions) as s:
        funds = ledger.balance(s, tenant_id)
        return funds.available, funds.held, ledger.check(s)


def open_holds(ctx, tenant_id) -> list[str]:
    with transaction(ctx.sessions) as s:
        return list(s.scalars(select(Hold.job_id).where(Hold.tenant_id == tenant_id, Hold.status == "held")))


def queued_jobs(ctx, run_id) -> list[str]:
    with transaction(ctx.sessions) as s:
        return list(
            s.scalars(
                select(Job.id).where(Job.run_id == run_id, Job.status == "queued").order_by(Job.created_at)
            )
        )


def drive(ctx, run_id, *, fail: Any = None, limit: int = 200) -> None:
    """Run the run's queued jobs one by one as a worker would, until none is left."""
    for _ in range(limit):
        pending = queued_jobs(ctx, run_id)
        if not pending:
            return
        runner.run(ctx, pending[0])
    raise AssertionError("the run kept making jobs")


def the_run(ctx, run_id) -> WorkflowRun:
    with transaction(ctx.sessions) as s:
        return s.get(WorkflowRun, run_id)


def steps_of(ctx, run_id) -> list[WorkflowStep]:
    with transaction(ctx.sessions) as s:
        return list(
            s.scalars(
                select(WorkflowStep)
                .where(WorkflowStep.run_id == run_id)
                .order_by(WorkflowStep.node, WorkflowStep.item)
            )
        )


def wait_for_run(client, tenant, run_id, timeout=120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/workflow-runs/{run_id}", headers=tenant.headers).json
        if body["status"] != "running":
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still running after {timeout}s: {body}")
        time.sleep(0.1)


def test_five_nodes_with_a_fan_out_of_ten_run_each_node_once_with_the_money_exact(
    client, tenant, frames, runtime, worker
):
    ctx = runtime.context
    before, _, _ = money(ctx, tenant.id)
    r = start_run(client, tenant, five_nodes(), {"frames": uploaded(client, tenant, frames)})
    assert r.status_code == 202, r.json
    run_id = r.json["id"]
    assert r.json["status"] == "running" and r.json["cost"]["quoted"] > 0
    assert {n: v["items"] for n, v in r.json["nodes"].items()} == {
        "shot": 1, "small": 1, "probe": 1, "sizes": 10, "thumbs": 10,
    }  # fmt: skip

    done = wait_for_run(client, tenant, run_id)
    assert done["status"] == "succeeded", done
    for name, node in done["nodes"].items():
        assert node["status"] == "succeeded", (name, node)
        for step in node["steps"]:
            assert step["job_id"] and step["started_at"] and step["finished_at"]
            assert len(step["outputs"]) == (0 if name == "probe" else 1)
    # Each item ran as exactly one job, once.
    with transaction(ctx.sessions) as s:
        jobs = s.execute(
            select(Job.id, Job.attempts, Job.status, Job.cost_charged).where(Job.run_id == run_id)
        ).all()
    assert len(jobs) == 23 == len({j.id for j in jobs})
    assert all(j.attempts == 1 and j.status == "succeeded" for j in jobs)
    step_jobs = [s["job_id"] for n in done["nodes"].values() for s in n["steps"]]
    assert sorted(step_jobs) == sorted(j.id for j in jobs)
    # Fan-out: each thumb resized its own item of sizes, in order.
    sizes = [s["outputs"][0] for s in done["nodes"]["sizes"]["steps"]]
    with transaction(ctx.sessions) as s:
        thumb_inputs = [
            s.scalar(select(Job.input_file_id).where(Job.id == step["job_id"]))
            for step in done["nodes"]["thumbs"]["steps"]
        ]
    assert thumb_inputs == sizes
    # The money: charged what the jobs were charged, nothing held, the ledger exact.
    charged = sum(j.cost_charged for j in jobs)
    assert done["cost"]["charged"] == charged > 0
    available, held, problems = money(ctx, tenant.id)
    assert (available, held, problems) == (before - charged, 0, [])
    assert open_holds(ctx, tenant.id) == []
    events = client.get(f"/v1/workflow-runs/{run_id}/events", headers=tenant.headers).json["data"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "succeeded"
    assert kinds.count("step_queued") == 23 and kinds.count("step_succeeded") == 23
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_a_run_holds_its_quote_at_once_and_moves_each_price_to_its_job(client, tenant, frames, runtime):
    ctx = runtime.context
    before, _, _ = money(ctx, tenant.id)
    files = uploaded(client, tenant, frames[:3])
    r = start_run(client, tenant, resize_over(), {"frames": files})
    assert r.status_code == 202, r.json
    run_id = r.json["id"]
    quote = r.json["cost"]["quoted"]
    assert quote == 6 * RESIZE_PRICE  # 3 sizes + 3 thumbs
    # The three sizes are queued with holds of their own; the rest stays in the run's hold.
    assert len(queued_jobs(ctx, run_id)) == 3
    holds = open_holds(ctx, tenant.id)
    assert run_id in holds and len(holds) == 4
    available, held, problems = money(ctx, tenant.id)
    assert (available, held, problems) == (before - quote, quote, [])

    drive(ctx, run_id)
    run = the_run(ctx, run_id)
    assert run.status == "succeeded" and run.charged == quote
    assert money(ctx, tenant.id) == (before - quote, 0, [])
    assert open_holds(ctx, tenant.id) == []


def test_a_run_survives_a_lost_after_commit_advance(client, tenant, frames, runtime):
    """The job's end and its step are committed together; the call that advances the run is
    lost (the worker died right after the commit): the reconciler advances it."""
    ctx = runtime.context
    files = uploaded(client, tenant, frames[:2])
    run_id = start_run(client, tenant, resize_over(), {"frames": files}).json["id"]
    engine, ctx.workflows = ctx.workflows, None  # no after-commit advance
    try:
        for job_id in queued_jobs(ctx, run_id):
            runner.run(ctx, job_id)
    finally:
        ctx.workflows = engine
    assert [s.status for s in steps_of(ctx, run_id)] == ["succeeded", "succeeded", "waiting", "waiting"]
    assert queued_jobs(ctx, run_id) == []  # stuck, as after a crash

    sender = runtime.context.workflows.sender
    assert reconcile(ctx.sessions, sender, ctx.storage, ctx.settings).runs_advanced == []  # too fresh
    clock.advance(timedelta(seconds=ctx.settings.requeue_after_seconds + 1))
    assert reconcile(ctx.sessions, sender, ctx.storage, ctx.settings).runs_advanced == [run_id]
    assert len(queued_jobs(ctx, run_id)) == 2
    # A second pass (or a second scheduler) creates no second job for a step.
    clock.advance(timedelta(seconds=ctx.settings.requeue_after_seconds + 1))
    reconcile(ctx.sessions, sender, ctx.storage, ctx.settings)
    with transaction(ctx.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.run_id == run_id)) == 4
    drive(ctx, run_id)
    assert the_run(ctx, run_id).status == "succeeded"
    assert money(ctx, tenant.id)[1:] == (0, [])


def _corrupt(ctx, file_id: str) -> tuple[Path, bytes]:
    """Garble a stored file's bytes (a bad disk); returns its path and its bytes."""
    with transaction(ctx.sessions) as s:
        key = s.scalar(select(File.storage_key).where(File.id == file_id))
    path = Path(str(ctx.settings.resolved_storage_url).removeprefix("file:")) / key
    good = path.read_bytes()
    path.write_bytes(b"not an image at all" * 10)
    return path, good


def test_retry_from_a_failed_node_charges_only_the_rerun(client, tenant, frames, runtime):
    ctx = runtime.context
    before, _, _ = money(ctx, tenant.id)
    files = uploaded(client, tenant, frames[:3])
    path, good = _corrupt(ctx, files[1])
    run_id = start_run(client, tenant, resize_over(), {"frames": files}).json["id"]
    drive(ctx, run_id)
    run = the_run(ctx, run_id)
    assert run.status == "failed"
    by = {(s.node, s.item): s for s in steps_of(ctx, run_id)}
    assert by["sizes", 1].status == "failed" and by["sizes", 1].error_code
    assert by["sizes", 0].status == by["sizes", 2].status == "succeeded"
    assert all(by["thumbs", i].status == "skipped" for i in range(3))  # they depend on the failed node
    first_charge = run.charged
    assert first_charge == 2 * RESIZE_PRICE
    assert money(ctx, tenant.id) == (before - first_charge, 0, [])
    kept = {k: (s.job_id, s.outputs) for k, s in by.items() if s.status == "succeeded"}

    path.write_bytes(good)  # the disk is mended
    r = client.post(f"/v1/workflow-runs/{run_id}/retry", headers=tenant.headers)
    assert r.status_code == 202, r.json
    assert r.json["attempt"] == 2 and r.json["status"] == "running"
    assert r.json["cost"]["quoted"] == 4 * RESIZE_PRICE  # the failed size and the three thumbs
    drive(ctx, run_id)
    run = the_run(ctx, run_id)
    assert run.status == "succeeded"
    after = {(s.node, s.item): s for s in steps_of(ctx, run_id)}
    for k, (job_id, outputs) in kept.items():
        assert (after[k].job_id, after[k].outputs, after[k].attempt) == (job_id, outputs, 1)  # not run again
    assert after["sizes", 1].attempt == 2 and after["sizes", 1].status == "succeeded"
    with transaction(ctx.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.run_id == run_id)) == 3 + 1 + 3
    assert run.charged == first_charge + 4 * RESIZE_PRICE
    assert money(ctx, tenant.id) == (before - run.charged, 0, [])
    assert open_holds(ctx, tenant.id) == []
    # Only a failed run can be retried.
    again = client.post(f"/v1/workflow-runs/{run_id}/retry", headers=tenant.headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "workflow_run_not_failed"


def test_cancel_mid_run_releases_every_hold(client, tenant, frames, runtime):
    ctx = runtime.context
    before, _, _ = money(ctx, tenant.id)
    files = uploaded(client, tenant, frames[:3])
    run_id = start_run(client, tenant, resize_over(), {"frames": files}).json["id"]
    first, second, third = queued_jobs(ctx, run_id)
    runner.run(ctx, first)  # done: charged
    taken = runner.claim(ctx, second)  # running on a worker that then dies
    assert taken is not None

    r = client.post(f"/v1/workflow-runs/{run_id}/cancel", headers=tenant.headers)
    assert r.status_code == 200, r.json
    assert r.json["status"] == "canceled"
    with transaction(ctx.sessions) as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.run_id == run_id))}
    assert jobs[third].status == "canceled"  # queued: never starts
    assert jobs[second].status == "running" and jobs[second].cancel_requested  # its worker stops it
    statuses = {(s.node, s.item): s.status for s in steps_of(ctx, run_id)}
    assert statuses["sizes", 0] == "succeeded" and statuses["sizes", 2] == "canceled"
    assert all(statuses["thumbs", i] == "canceled" for i in range(3))
    assert open_holds(ctx, tenant.id) == [second]  # only the running job's own hold is left

    # Its worker is gone: the lease expires, the reconciler cancels it and releases its hold.
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + ctx.settings.requeue_after_seconds + 1))
    reconcile(ctx.sessions, ctx.workflows.sender, ctx.storage, ctx.settings)
    assert open_holds(ctx, tenant.id) == []
    assert {(s.node, s.item): s.status for s in steps_of(ctx, run_id)}["sizes", 1] == "canceled"
    charged = RESIZE_PRICE
    assert money(ctx, tenant.id) == (before - charged, 0, [])
    assert the_run(ctx, run_id).status == "canceled"
    # A canceled run stays canceled; it cannot be retried.
    assert (
        client.post(f"/v1/workflow-runs/{run_id}/cancel", headers=tenant.headers).json["status"] == "canceled"
    )
    assert client.post(f"/v1/workflow-runs/{run_id}/retry", headers=tenant.headers).status_code == 409


def test_bad_graphs_and_short_accounts_are_refused_with_nothing_held(client, make_tenant, frames, runtime):
    ctx = runtime.context
    tenant = make_tenant("studio", credits=1)
    files = uploaded(client, tenant, frames[:3])
    before = money(ctx, tenant.id)
    bad = resize_over()
    bad["nodes"]["thumbs"]["input"]["file_id"] = {"node": "nowhere"}
    bad["nodes"]["sizes"]["params"] = {"width": 0, "height": 10}
    r = start_run(client, tenant, bad, {"frames": files})
    assert r.status_code == 422 and r.json["error"]["code"] == "invalid_workflow"
    problems = {(p["node"], p["field"]) for p in r.json["error"]["problems"]}
    assert {("sizes", "params.width"), ("thumbs", "input.file_id")} <= problems
    # Inputs that are not the tenant's, or missing.
    r = start_run(client, tenant, resize_over(), {"frames": ["fil_000000000000000000000000"]})
    assert r.status_code == 422 and r.json["error"]["problems"][0]["code"] == "file_not_found"
    r = start_run(client, tenant, resize_over(), {})
    assert r.status_code == 422 and r.json["error"]["problems"][0]["code"] == "missing_input"
    r = client.post(
        "/v1/workflow-runs", json={"graph": resize_over(), "inputs": {}, "extra": 1}, headers=tenant.headers
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "unknown_field"
    # Ten images and their thumbs cost 2 credits; the tenant has 1.
    r = start_run(client, tenant, resize_over(), {"frames": uploaded(client, tenant, frames)})
    assert r.status_code == 402 and r.json["error"]["code"] == "insufficient_credits"
    assert money(ctx, tenant.id) == before
    with transaction(ctx.sessions) as s:
        for model in (WorkflowRun, WorkflowStep, WorkflowEvent, Job, Hold):
            assert (
                s.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant.id)) == 0
            ), model


def test_the_same_idempotency_key_starts_one_run(client, tenant, frames, runtime):
    files = uploaded(client, tenant, frames[:2])
    headers = {**tenant.headers, "Idempotency-Key": "run-once"}
    body = {"graph": resize_over(), "inputs": {"frames": files}}
    first = client.post("/v1/workflow-runs", json=body, headers=headers)
    again = client.post("/v1/workflow-runs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json["id"] == again.json["id"]
    other = client.post("/v1/workflow-runs", json={**body, "reuse": True}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"
    with transaction(runtime.context.sessions) as s:
        assert (
            s.scalar(select(func.count()).select_from(WorkflowRun).where(WorkflowRun.tenant_id == tenant.id))
            == 1
        )
        assert len(s.scalars(select(Hold.job_id).where(Hold.tenant_id == tenant.id)).all()) == 1 + 2


def test_reuse_takes_an_earlier_runs_outputs_at_no_cost(client, tenant, frames, runtime):
    ctx = runtime.context
    files = uploaded(client, tenant, frames[:2])
    first = start_run(client, tenant, resize_over(), {"frames": files}).json["id"]
    drive(ctx, first)
    before, _, _ = money(ctx, tenant.id)
    # The same bytes uploaded again are other files with the same checksum.
    again = uploaded(client, tenant, frames[:2])
    r = start_run(client, tenant, resize_over(), {"frames": again}, reuse=True)
    assert r.status_code == 202, r.json
    second = r.json["id"]
    assert queued_jobs(ctx, second) == []  # nothing to run: every step reused
    done = client.get(f"/v1/workflow-runs/{second}", headers=tenant.headers).json
    assert done["status"] == "succeeded" and done["cost"]["charged"] == 0
    earlier = {(s.node, s.item): s for s in steps_of(ctx, first)}
    for name, node in done["nodes"].items():
        for step in node["steps"]:
            assert step["status"] == "reused" and step["cost"] == 0 and step["job_id"] is None
            assert step["outputs"] == earlier[name, step["item"]].outputs
            assert step["reused_from"] == earlier[name, step["item"]].id
    assert money(ctx, tenant.id) == (before, 0, [])
    # Without reuse the same run does the work again.
    third = start_run(client, tenant, resize_over(), {"frames": again}).json["id"]
    assert len(queued_jobs(ctx, third)) == 2


def test_a_saved_workflows_runs_are_listed_newest_first(client, tenant, frames, runtime):
    files = uploaded(client, tenant, frames[:1])
    made = client.post(
        "/v1/workflows", json={"name": "resize", "graph": resize_over()}, headers=tenant.headers
    )
    assert made.status_code == 201, made.json
    workflow_id = made.json["id"]
    ids = []
    for _ in range(3):
        r = client.post(
            f"/v1/workflows/{workflow_id}/runs", json={"inputs": {"frames": files}}, headers=tenant.headers
        )
        assert r.status_code == 202, r.json
        assert r.json["workflow_id"] == workflow_id and r.json["version"] == 1
        ids.append(r.json["id"])
    page = client.get(f"/v1/workflows/{workflow_id}/runs?limit=2", headers=tenant.headers).json
    assert [r["id"] for r in page["data"]] == ids[::-1][:2]
    rest = client.get(
        f"/v1/workflows/{workflow_id}/runs?limit=2&cursor={page['next_cursor']}", headers=tenant.headers
    )
    assert [r["id"] for r in rest.json["data"]] == ids[:1] and rest.json["next_cursor"] is None
    missing = client.post(
        f"/v1/workflows/{workflow_id}/runs", json={"inputs": {}, "version": 9}, headers=tenant.headers
    )
    assert missing.status_code == 404


def joined_film(library_clip: str) -> dict[str, Any]:
    """Two generated clips, one from a photo, joined around a clip of the library."""
    made = {"type": "video.generate", "params": {"model": "local-video", "duration": 1}}
    return {
        "inputs": {"photo": {"kind": "image"}},
        "nodes": {
            "opening": {**made, "input": {"prompt": "a red chair", "file_id": {"input": "photo"}}},
            "closing": {**made, "input": {"prompt": "a blue door"}},
            "film": {
                "type": "video.concat",
                "params": {"width": 320, "height": 180, "fps": 24},
                "input": {
                    "file_ids": [
                        {"node": "opening", "output": 0},
                        library_clip,
                        {"node": "closing", "output": 0},
                    ]
                },
            },
        },
    }


def test_a_concat_joins_two_nodes_outputs_and_a_library_file_in_the_order_written(
    client, tenant, runtime, worker, clip_small, png_image
):
    ctx = runtime.context
    before, _, _ = money(ctx, tenant.id)
    library = upload(client, tenant, clip_small).json["id"]
    photo = upload(client, tenant, png_image).json["id"]
    r = start_run(client, tenant, joined_film(library), {"photo": photo})
    assert r.status_code == 202, r.json
    run_id = r.json["id"]
    # 1 s generated twice at 50 a second; the join of about 3 s at its 200 minimum.
    assert r.json["cost"]["quoted"] == 50 + 50 + 200
    assert r.json["nodes"]["film"]["steps"][0]["status"] == "waiting"  # until both clips exist

    done = wait_for_run(client, tenant, run_id)
    assert done["status"] == "succeeded", done
    opening, closing, film = (done["nodes"][n]["steps"][0] for n in ("opening", "closing", "film"))
    with transaction(ctx.sessions) as s:
        job = s.get(Job, film["job_id"])
        assert job is not None
        assert job.input == {"file_ids": [opening["outputs"][0], library, closing["outputs"][0]]}
        assert job.input_file_id == opening["outputs"][0]  # a list's first file is the job's input file
        assert job.result["clips"] == 3 and job.result["expected_seconds"] == pytest.approx(3.0, abs=0.2)
        joined = s.get(File, film["outputs"][0])
        assert (
            joined is not None
            and joined.kind == "video"
            and float(joined.media["duration"]) == pytest.approx(3.0, abs=0.3)
        )
    charged = done["cost"]["charged"]
    assert charged == 50 + 50 + 200
    assert money(ctx, tenant.id) == (before - charged, 0, [])
    events = client.get(f"/v1/workflow-runs/{run_id}/events", headers=tenant.headers).json["data"]
    queued = [e["node"] for e in events if e["kind"] == "step_queued"]
    assert sorted(queued[:2]) == ["closing", "opening"] and queued[2:] == ["film"]
    assert [e["kind"] for e in events][-1] == "succeeded"

    # The same work on the same bytes: the library clip uploaded again is another file with
    # the same checksum, and every step, the join included, reuses the first run's outputs.
    again = upload(client, tenant, clip_small).json["id"]
    r = start_run(client, tenant, joined_film(again), {"photo": photo}, reuse=True)
    assert r.status_code == 202, r.json
    assert r.json["status"] == "succeeded" and r.json["cost"]["charged"] == 0
    assert r.json["nodes"]["film"]["steps"][0]["outputs"] == film["outputs"]
    assert {n["status"] for n in r.json["nodes"].values()} == {"reused"}
    # Another order is other work.
    reordered = joined_film(again)
    reordered["nodes"]["film"]["input"]["file_ids"].reverse()
    r = start_run(client, tenant, reordered, {"photo": photo}, reuse=True)
    assert r.json["nodes"]["film"]["status"] != "reused"
    assert wait_for_run(client, tenant, r.json["id"])["status"] == "succeeded"
    assert money(ctx, tenant.id)[1:] == (0, [])
