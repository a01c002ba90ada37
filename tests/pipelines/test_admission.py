"""Fair admission between tenants: weighted round-robin over per-tenant backlogs, a shallow
Dramatiq queue, caps honoured, idling earns no credit, keys of one tenant share its share,
and the queue position it reports is the order it admits in."""

from __future__ import annotations

import pytest
import redis

from pipelines.admission import Admission, AdmittingSender
from quotas.ratelimit import RunningSlots
from tests import services as svc
from tests.web.helpers import upload, wait_for_job

Q = "local.small"


@pytest.fixture
def client_(redis_namespace):
    c = redis.Redis.from_url(svc.REDIS_URL)
    yield c
    c.close()


def admission(client_, redis_namespace, depth=1000):
    return Admission(client_, redis_namespace, depth=depth, running_namespace=redis_namespace)


def offer(adm, tenant, n, *, weight=1, cap=0, start=0):
    for i in range(start, start + n):
        adm.offer(Q, tenant, f"{tenant}-{i}", weight=weight, cap=cap)


def order(adm, n):
    return [a.tenant_id for a in adm.admit(Q, most=n)]


def test_a_new_tenant_is_not_stuck_behind_another_tenants_backlog(client_, redis_namespace):
    adm = admission(client_, redis_namespace)
    offer(adm, "A", 2000)
    offer(adm, "B", 20)
    first = order(adm, 40)
    assert first.count("B") == 20  # every B job within the first 40, not after 2000
    assert max(i for i, t in enumerate(first) if t == "B") < 41


def test_tier_weights_set_the_shares(client_, redis_namespace):
    adm = admission(client_, redis_namespace)
    offer(adm, "studio", 100, weight=10)
    offer(adm, "creator", 100, weight=3)
    offer(adm, "free", 100, weight=1)
    got = order(adm, 140)
    assert (
        abs(got.count("studio") - 100) <= 2
        and abs(got.count("creator") - 30) <= 2
        and abs(got.count("free") - 10) <= 2
    )


def test_the_queue_stays_shallow_and_refills_as_workers_start_jobs(client_, redis_namespace):
    adm = admission(client_, redis_namespace, depth=4)
    offer(adm, "A", 10)
    assert len(adm.admit(Q)) == 4
    assert adm.admit(Q) == []
    adm.started(Q)
    adm.started(Q)
    assert len(adm.admit(Q)) == 2
    assert adm.waiting(Q) == 4


def test_a_tenant_at_its_running_cap_is_passed_over_until_a_job_finishes(client_, redis_namespace):
    adm = admission(client_, redis_namespace)
    slots = RunningSlots(client_, redis_namespace)
    assert slots.acquire("A", "A-running", limit=1, ttl_seconds=60)
    offer(adm, "A", 5, cap=1)
    offer(adm, "B", 5, cap=1)
    assert order(adm, 10) == ["B"] * 5  # A waits, B's work is not held back by it
    slots.release("A", "A-running")
    assert order(adm, 10) == ["A"] * 5


def test_idling_earns_no_credit(client_, redis_namespace):
    adm = admission(client_, redis_namespace)
    offer(adm, "A", 50)
    order(adm, 50)  # A had the platform to itself
    offer(adm, "A", 50, start=50)
    offer(adm, "B", 50)
    got = order(adm, 20)
    assert 9 <= got.count("B") <= 11  # B joins at the current virtual time: even shares from now


def test_the_reported_position_is_the_order_of_admission(client_, redis_namespace):
    adm = admission(client_, redis_namespace)
    offer(adm, "A", 30, weight=3)
    offer(adm, "B", 10, weight=1)
    offer(adm, "C", 10, weight=1)
    predicted = {
        f"{t}-{i}": adm.position(Q, t, f"{t}-{i}")
        for t, n in (("A", 30), ("B", 10), ("C", 10))
        for i in range(n)
    }
    actual = {a.job_id: i for i, a in enumerate(adm.admit(Q, most=50))}
    off = [abs(predicted[j] - actual[j]) for j in actual]
    assert max(off) <= 2, sorted(zip(off, actual, strict=True))[-5:]
    assert sum(off) / len(off) < 1


def test_jobs_run_end_to_end_through_admission_and_show_their_position(
    client, make_tenant, png_image, runtime, settings
):
    from workers.broker import make_sender

    app = client.application
    sender = make_sender(
        settings.replace(admission_depth=2), runtime.broker, svc.REDIS_URL, runtime.context.sessions
    )
    assert isinstance(sender, AdmittingSender)
    app.extensions["faktry"].sender = sender
    noisy, quiet = make_tenant("studio", credits=100), make_tenant("studio", credits=100)
    noisy_file = upload(client, noisy, png_image).json["id"]
    quiet_file = upload(client, quiet, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": noisy_file}, "params": {"width": 8, "height": 8}}
    noisy_ids = [client.post("/v1/jobs", json=body, headers=noisy.headers).json["id"] for _ in range(12)]
    body["input"]["file_id"] = quiet_file
    quiet_id = client.post("/v1/jobs", json=body, headers=quiet.headers).json["id"]
    position = client.get(f"/v1/jobs/{quiet_id}", headers=quiet.headers).json["queue_position"]
    assert position is not None and position <= 2  # next after at most one more noisy job
    last_noisy = client.get(f"/v1/jobs/{noisy_ids[-1]}", headers=noisy.headers).json["queue_position"]
    assert last_noisy > position
    # Workers drain it all; nothing is lost, and the queue's admission places come back.
    from dramatiq import Worker

    from workers.actors import jobs as actors

    runtime.broker.actors.pop("run_job", None)
    actors.declare(runtime.broker, runtime.context, sender)
    runtime.broker.emit_after("process_boot")
    w = Worker(runtime.broker, worker_threads=2, worker_timeout=20)
    w.start()
    try:
        done = [
            wait_for_job(client, t, j, timeout=60)
            for t, j in [(quiet, quiet_id)] + [(noisy, i) for i in noisy_ids]
        ]
    finally:
        w.stop()
    assert all(d["status"] == "succeeded" for d in done)
    assert sender.admission.waiting(Q) == 0
    assert int(sender.admission.client.get(f"{settings.redis_namespace}:admission:{Q}:inflight") or 0) == 0


def test_more_api_keys_gain_a_tenant_no_larger_share(client, make_tenant, png_image, runtime, settings):
    from faktry.db import transaction
    from faktry.tenancy import create_api_key
    from workers.broker import BrokerSender

    sent: list[str] = []

    class Record(BrokerSender):
        def send(self, queue, job_id, *, admitted=False):
            sent.append(job_id)

    admission_ = Admission(
        redis.Redis.from_url(svc.REDIS_URL),
        settings.redis_namespace,
        depth=0,
        running_namespace=settings.redis_namespace,
    )
    sender = AdmittingSender(Record(runtime.broker), admission_, runtime.context.sessions, [Q])
    client.application.extensions["faktry"].sender = sender
    many, one = make_tenant("studio", credits=100), make_tenant("studio", credits=100)
    with transaction(runtime.context.sessions) as s:
        extra = [
            create_api_key(s, tenant_id=many.id, user_id=many.user_id, bcrypt_rounds=4)[1] for _ in range(3)
        ]
    keys = [many.headers] + [{"Authorization": f"Bearer {k}"} for k in extra]
    files_ = {
        many.id: upload(client, many, png_image).json["id"],
        one.id: upload(client, one, png_image).json["id"],
    }
    owner = {}
    for i in range(12):
        for tenant, headers in ((many, keys[i % 4]), (one, one.headers)):
            body = {
                "type": "image.resize",
                "input": {"file_id": files_[tenant.id]},
                "params": {"width": 8, "height": 8},
            }
            owner[client.post("/v1/jobs", json=body, headers=headers).json["id"]] = tenant.id
    admission_.depth = 1000
    got = [owner[a.job_id] for a in admission_.admit(Q, most=12)]
    assert got.count(many.id) == got.count(one.id) == 6  # four keys, one share
