"""The heartbeat: one thread per process beats for every running job (renewing its lease,
saving progress, noticing cancels); a job starts no thread of its own, and no beat of a job
runs once its attempt's block has ended."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select, update

from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job
from tests.web.helpers import upload


def _submit(client, tenant, png_image) -> str:
    file_id = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    return r.json["id"]


def _lease(ctx, job_id):
    with transaction(ctx.sessions) as s:
        return s.scalar(select(Job.lease_expires_at).where(Job.id == job_id))


def _wait(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_run_starts_no_thread_of_its_own(client, tenant, png_image, runtime, monkeypatch):
    ctx = runtime.context
    runner.run(ctx, _submit(client, tenant, png_image))  # the process's beating thread exists now
    started: list[str] = []
    real_start = threading.Thread.start

    def counted_start(self):  # type: ignore[no-untyped-def]
        started.append(self.name)
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", counted_start)
    job_id = _submit(client, tenant, png_image)
    runner.run(ctx, job_id)
    assert started == []
    with transaction(ctx.sessions) as s:
        assert s.scalar(select(Job.status).where(Job.id == job_id)) == "succeeded"


def test_one_thread_beats_for_every_running_job_and_stops_with_each(
    client, tenant, png_image, runtime, settings, monkeypatch
):
    ctx = runtime.context
    assert settings.job_heartbeat_seconds <= 0.5
    claims = [runner.claim(ctx, _submit(client, tenant, png_image)) for _ in range(2)]
    assert all(c is not None for c in claims)
    beats: dict[str, int] = {c.job_id: 0 for c in claims}
    threads: set[str] = set()
    real_beat = runner.Heartbeat.beat

    def counted_beat(self):  # type: ignore[no-untyped-def]
        beats[self.claim.job_id] += 1
        threads.add(threading.current_thread().name)
        return real_beat(self)

    monkeypatch.setattr(runner.Heartbeat, "beat", counted_beat)
    first, second = (runner.Heartbeat(ctx, c) for c in claims)
    leases = {c.job_id: _lease(ctx, c.job_id) for c in claims}
    with first:
        with second:
            # Both leases are renewed, by one thread that is neither this one nor per job.
            assert _wait(lambda: all(_lease(ctx, c.job_id) > leases[c.job_id] for c in claims))
            assert _wait(lambda: min(beats.values()) >= 2)
        after_second = beats[claims[1].job_id]
        assert _wait(lambda: beats[claims[0].job_id] >= 4)
        # The second's block has ended: it was not beaten again while the first went on.
        assert beats[claims[1].job_id] == after_second
    after_first = beats[claims[0].job_id]
    time.sleep(settings.job_heartbeat_seconds * 3)
    assert beats[claims[0].job_id] == after_first
    assert threads == {"heartbeats"}


def test_a_cancel_request_reaches_the_running_job_through_its_heartbeat(client, tenant, png_image, runtime):
    ctx = runtime.context
    claim = runner.claim(ctx, _submit(client, tenant, png_image))
    assert claim is not None
    with runner.Heartbeat(ctx, claim) as hb:
        assert not hb.should_cancel()
        with transaction(ctx.sessions) as s:
            s.execute(update(Job).where(Job.id == claim.job_id).values(cancel_requested=True))
        assert _wait(hb.should_cancel)


def test_a_failing_beat_is_logged_and_the_next_one_still_runs(
    client, tenant, png_image, runtime, monkeypatch, caplog
):
    ctx = runtime.context
    claim = runner.claim(ctx, _submit(client, tenant, png_image))
    assert claim is not None
    calls = []
    real_beat = runner.Heartbeat.beat

    def flaky(self):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real_beat(self)

    monkeypatch.setattr(runner.Heartbeat, "beat", flaky)
    before = _lease(ctx, claim.job_id)
    with runner.Heartbeat(ctx, claim):
        assert _wait(lambda: _lease(ctx, claim.job_id) > before)
    assert len(calls) >= 2
    assert "heartbeat failed" in caplog.text


def test_the_block_ends_only_once_a_beat_in_progress_has_finished(
    client, tenant, png_image, runtime, monkeypatch
):
    ctx = runtime.context
    claim = runner.claim(ctx, _submit(client, tenant, png_image))
    assert claim is not None
    in_beat, release = threading.Event(), threading.Event()
    beats: list[str] = []

    def slow_beat(self):  # type: ignore[no-untyped-def]
        beats.append("start")
        in_beat.set()
        release.wait(5)
        beats.append("end")

    monkeypatch.setattr(runner.Heartbeat, "beat", slow_beat)
    hb = runner.Heartbeat(ctx, claim)
    hb.__enter__()
    assert in_beat.wait(5)
    ended = threading.Event()
    exiting = threading.Thread(target=lambda: (hb.__exit__(None, None, None), ended.set()))
    exiting.start()
    assert not ended.wait(0.3)  # waits for the beat in progress
    release.set()
    assert ended.wait(5)
    exiting.join()
    assert beats == ["start", "end"]
    time.sleep(ctx.settings.job_heartbeat_seconds * 3)
    assert beats == ["start", "end"]  # none after the block


class _Beat:
    """Stands for a running job's heartbeat: counts its beats."""

    def __init__(self) -> None:
        self.beats = 0

    def _scheduled(self) -> None:
        self.beats += 1


def test_a_job_starting_while_the_thread_waits_for_an_earlier_time_does_not_wake_it():
    beats = runner._Beats()
    ended, started = _Beat(), _Beat()
    beats.add(ended, 30.0)  # type: ignore[arg-type]
    assert _wait(lambda: beats._wakes_at < float("inf"))  # the thread waits for `ended`'s beat
    beats.remove(ended)  # type: ignore[arg-type]
    beats.add(started, 30.0)  # type: ignore[arg-type]  # due later than what the thread waits for
    time.sleep(0.2)
    assert beats.wakes == 0
    # A beat due sooner than the thread's wait does wake it, and runs.
    soon = _Beat()
    beats.add(soon, 0.05)  # type: ignore[arg-type]
    assert _wait(lambda: soon.beats >= 1)
    assert beats.wakes >= 1 and started.beats == 0
    beats.remove(soon)  # type: ignore[arg-type]
    beats.remove(started)  # type: ignore[arg-type]
