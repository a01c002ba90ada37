"""What a tenant sees of its money and limits: account, transactions (JSON and CSV), 429s,
and the concurrent-job cap, which makes jobs wait without spending their retries."""

from __future__ import annotations

import csv
import io
import time

from sqlalchemy import update

from faktry.tenancy import Tenant
from tests import services as svc
from tests.web.helpers import upload, wait_for_job


def set_tier(settings, tenant, tier):
    with svc.db_session(settings.resolved_database_url) as s:
        s.execute(update(Tenant).where(Tenant.id == tenant.id).values(tier=tier))


def probe(client, tenant, file_id):
    return client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    )


def test_the_account_shows_balance_holds_lots_and_limits(client, make_tenant, clip_small):
    tenant = make_tenant(credits=5)
    file_id = upload(client, tenant, clip_small).json["id"]
    probe(client, tenant, file_id)
    body = client.get("/v1/account", headers=tenant.headers).json
    credits = body["credits"]
    assert credits["unit"] == "millicredits"
    assert (credits["available"], credits["held"], credits["debt"]) == (4900, 100, 0)
    [lot] = credits["lots"]
    assert lot["amount"] == 5000 and lot["remaining"] == 4900 and lot["held"] == 100
    assert lot["expires_at"] > lot["created_at"]
    assert body["limits"]["tier"] == "free" and body["limits"]["max_concurrent_jobs"] == 1


def test_transactions_page_with_a_cursor_and_export_as_csv(client, make_tenant, clip_small):
    tenant = make_tenant(credits=5)
    file_id = upload(client, tenant, clip_small).json["id"]
    for _ in range(3):
        probe(client, tenant, file_id)
    seen, cursor = [], None
    while True:
        r = client.get(
            "/v1/account/transactions?limit=2" + (f"&cursor={cursor}" if cursor else ""),
            headers=tenant.headers,
        )
        assert r.status_code == 200
        seen += r.json["data"]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    assert sorted(e["kind"] for e in seen) == ["grant", "hold", "hold", "hold"]
    assert sum(e["available"] for e in seen) == 5000 - 300
    exported = client.get("/v1/account/transactions?format=csv", headers=tenant.headers)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in seen)
    assert sum(int(r["available"]) for r in rows) == 4700


def test_another_tenant_never_sees_these_transactions(client, make_tenant):
    alice = make_tenant(credits=1)
    make_tenant(credits=2)  # another tenant with its own grant
    kinds = client.get("/v1/account/transactions", headers=alice.headers).json["data"]
    assert [e["available"] for e in kinds] == [1000]
    csv_text = client.get("/v1/account/transactions?format=csv", headers=alice.headers).get_data(as_text=True)
    assert "2000" not in csv_text


def test_submits_beyond_the_tier_rate_get_429_with_retry_after(
    client, make_tenant, clip_small, make_tier, settings
):
    tenant = make_tenant(credits=10)
    set_tier(settings, tenant, make_tier(submits_per_minute=3))
    file_id = upload(client, tenant, clip_small).json["id"]
    codes = [probe(client, tenant, file_id).status_code for _ in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    r = probe(client, tenant, file_id)
    assert r.json["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    other = make_tenant(credits=10)
    other_file = upload(client, other, clip_small).json["id"]
    assert probe(client, other, other_file).status_code == 202  # limits are per tenant


def test_jobs_over_the_concurrency_cap_wait_without_spending_retries(
    client, make_tenant, long_clip, worker, runtime, settings
):
    tenant = make_tenant(credits=100)  # free tier: one job at a time
    file_id = upload(client, tenant, long_clip).json["id"]
    body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_360p"}}
    ids = [client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"] for _ in range(3)]
    slots = runtime.context.slots
    peak = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [client.get(f"/v1/jobs/{i}", headers=tenant.headers).json for i in ids]
        running = sum(s["status"] == "running" for s in states)
        peak = max(peak, running, slots.count(tenant.id))
        if all(s["status"] in ("succeeded", "failed", "canceled") for s in states):
            break
        time.sleep(0.05)
    done = [wait_for_job(client, tenant, i) for i in ids]
    assert [d["status"] for d in done] == ["succeeded"] * 3
    assert [d["attempts"] for d in done] == [1, 1, 1]
    assert peak == 1
