"""kill -9 between commit and send: the event's message committed with it, so the sweep
delivers it although the process that wrote it never sent anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.webhooks.conftest import drain

ROOT = Path(__file__).resolve().parents[2]

#: Writes one job event in a transaction and dies by SIGKILL the moment it has committed,
#: before the after-commit send (the kick) can do anything.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from faktry.db import make_engine, make_sessionmaker
    from pipelines import lifecycle
    from pipelines.webhooks import outbox

    url, job_id, tenant_id = sys.argv[1:4]
    sessions = make_sessionmaker(make_engine(url))
    outbox.install(sessions, lambda ids: os.kill(os.getpid(), signal.SIGKILL))
    with lifecycle.unit_of_work(sessions) as uow:
        lifecycle.event(uow.session, job_id, tenant_id, "progress", "running", 1, progress=0.5)
    print("survived")
    """
)


@pytest.mark.slow
@pytest.mark.chaos
def test_a_process_killed_between_commit_and_send_still_gets_its_event_delivered(
    client, tenant, receiver, sessions, policy, settings, clip_small
):
    from tests.web.helpers import upload

    hook = client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["job.progress"]},
        headers=tenant.headers,
    ).json
    video = upload(client, tenant, clip_small).json["id"]
    job = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": video}}, headers=tenant.headers
    ).json
    done = subprocess.run(
        [sys.executable, "-c", WRITER, settings.resolved_database_url, job["id"], tenant.id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "survived" not in done.stdout
    assert receiver.got == []  # it died before sending

    assert drain(sessions, policy) == ["delivered"]
    sent = json.loads(receiver.got[0].body)
    assert sent["type"] == "job.progress" and sent["data"]["job_id"] == job["id"]
    log = client.get(f"/v1/webhook-endpoints/{hook['id']}/messages", headers=tenant.headers).json["data"]
    assert [m["status"] for m in log] == ["delivered"]
