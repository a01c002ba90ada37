"""Single submits that arrive together are written in one transaction (`web.submits`,
`pipelines.groupcommit`), each with the answer it would have had on its own: refused items
answer their own error and hold nothing, an Idempotency-Key sent twice at once makes one job,
the jobs that were made are held exactly and sent, and other tenants are untouched."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines.models import Job
from quotas import ledger
from quotas.models import Hold
from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def gathering_app(settings, runtime):
    """An app whose first submit of a group waits a second for the others: every request
    below reaches it well within that, so they make one group whatever the machine's load."""
    from web import create_app
    from workers.broker import BrokerSender

    app = create_app(settings.replace(submit_gather_ms=1000), sender=BrokerSender(runtime.broker))
    app.testing = True
    yield app
    app.extensions["faktry"].sessions.kw["bind"].dispose()


def _at_once(app: Any, calls: list[tuple[dict[str, Any], dict[str, str]]]) -> list[Any]:
    """POST /v1/jobs once per (body, headers), each from its own thread, all released at once."""
    answers: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def post(i: int) -> None:
        client = app.test_client()
        body, headers = calls[i]
        start.wait()
        answers[i] = client.post("/v1/jobs", json=body, headers=headers)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_submits_that_arrive_together_share_a_transaction_and_keep_their_own_answers(
    gathering_app, client, make_tenant, settings, png_image, worker
):
    rich, broke, other = make_tenant(credits=100), make_tenant(credits=0), make_tenant(credits=100)
    # The broke tenant's file is uploaded while it has credits for nothing: uploads are free.
    bodies = {}
    for who in (rich, broke, other):
        file_id = upload(client, who, png_image).json["id"]
        bodies[who.id] = {
            "type": "image.resize",
            "input": {"file_id": file_id},
            "params": {"width": 8, "height": 8},
        }
    bad = {**bodies[rich.id], "params": {"width": -1, "height": 8}}
    keyed = {**rich.headers, "Idempotency-Key": "one-job-please"}
    calls = [
        (bodies[rich.id], rich.headers),
        (bodies[broke.id], broke.headers),
        (bodies[rich.id], keyed),
        (bad, rich.headers),
        (bodies[other.id], other.headers),
        (bodies[rich.id], keyed),
        (bodies[rich.id], rich.headers),
    ]
    answers = _at_once(gathering_app, calls)
    codes = [a.status_code for a in answers]
    assert codes == [202, 402, 202, 422, 202, 202, 202], [a.json for a in answers]
    assert answers[1].json["error"]["code"] == "insufficient_credits"
    assert answers[3].json["error"]["field"].startswith("params.width")
    # The key sent twice at once made one job, answered to both.
    assert answers[2].json["id"] == answers[5].json["id"]
    stats = gathering_app.extensions["faktry.submits"].stats
    assert stats.transactions < stats.writes
    made = {answers[i].json["id"] for i in (0, 2, 4, 6)}
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            assert ledger.check(s) == []
            holds = dict(s.execute(select(Hold.job_id, Hold.amount)).all())
            prices = dict(s.execute(select(Job.id, Job.cost_estimated)).all())
            assert set(holds) == made == set(prices)
            assert holds == prices
            assert s.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == broke.id)) == 0
    finally:
        engine.dispose()
    # Every job that was made was sent: the worker runs each to the end.
    for i, who in ((0, rich), (2, rich), (4, other), (6, rich)):
        assert wait_for_job(client, who, answers[i].json["id"])["status"] == "succeeded"


def test_a_lone_submit_writes_alone_in_its_own_transaction(client, tenant, png_image, app):
    """With nothing else being written, a submit is one transaction of its own, as before
    groups (tests/pipelines/test_job_path_cost.py counts it): no group is formed or waited for."""
    file_id = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    for _ in range(3):
        assert client.post("/v1/jobs", json=body, headers=tenant.headers).status_code == 202
    group = app.extensions["faktry.submits"]
    assert (group.stats.transactions, group.stats.writes) == (0, 0)
    assert group.claim_alone()  # every lone submit gave its turn back
    group.release_alone()


@pytest.mark.parametrize(
    ("name", "value"), [("submit_group_max", 0), ("submit_gather_ms", -1), ("submit_gather_ms", 1001)]
)
def test_group_settings_are_checked(settings, name, value):
    with pytest.raises(ValueError, match="FAKTRY_SUBMIT_G"):
        settings.replace(**{name: value})


def test_a_request_that_wrote_alone_gives_its_turn_back_even_when_its_session_fails_to_close(
    client, tenant, png_image, app, monkeypatch
):
    from sqlalchemy.orm import Session

    file_id = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    close = Session.close
    broken = {"on": True}

    def failing_close(self):
        close(self)
        if broken["on"]:
            broken["on"] = False
            raise OSError("the connection went away")

    monkeypatch.setattr(Session, "close", failing_close)
    with contextlib.suppress(OSError):
        client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert not broken["on"]  # the request's close did fail
    group = app.extensions["faktry.submits"]
    assert group.claim_alone()  # its turn to write alone was given back all the same
    group.release_alone()
