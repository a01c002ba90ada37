"""The storage quota: uploads and outputs count, concurrent writers never end above it,
deleting frees it, and the usage check recomputes it from the files and from storage."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import update

from faktry.db import transaction
from faktry.tenancy import Tenant
from pipelines import runner
from pipelines.checks import storage_usage
from quotas.models import Account
from tests import services as svc
from tests.web.helpers import upload


def usage(client, tenant):
    return client.get("/v1/account", headers=tenant.headers).json["storage"]


def set_tier(settings, tenant, tier):
    with svc.db_session(settings.resolved_database_url) as s:
        s.execute(update(Tenant).where(Tenant.id == tenant.id).values(tier=tier))


def storage_problems(runtime, tenant):
    with transaction(runtime.context.sessions) as s:
        return storage_usage(s, runtime.context.storage, tenant_id=tenant.id)


def test_uploads_count_against_the_quota_and_deleting_frees_it(client, tenant, png_image, runtime):
    size = png_image.stat().st_size
    first = upload(client, tenant, png_image).json
    assert usage(client, tenant)["used_bytes"] == size
    upload(client, tenant, png_image)
    assert usage(client, tenant)["used_bytes"] == 2 * size
    assert client.delete(f"/v1/files/{first['id']}", headers=tenant.headers).status_code == 204
    assert usage(client, tenant) == {
        "used_bytes": size,
        "reserved_bytes": 0,
        "quota_bytes": usage(client, tenant)["quota_bytes"],
    }
    assert storage_problems(runtime, tenant) == []


def test_an_upload_over_the_quota_is_refused_and_keeps_nothing(
    client, tenant, png_image, make_tier, settings, runtime
):
    size = png_image.stat().st_size
    set_tier(settings, tenant, make_tier(storage_quota_bytes=size + size // 2))
    assert upload(client, tenant, png_image).status_code == 201
    r = upload(client, tenant, png_image)
    assert r.status_code == 413 and r.json["error"]["code"] == "storage_quota_exceeded"
    assert len(client.get("/v1/files", headers=tenant.headers).json["data"]) == 1
    assert usage(client, tenant)["used_bytes"] == size
    assert storage_problems(runtime, tenant) == []


def test_concurrent_uploads_near_the_quota_never_end_above_it(
    app, tenant, png_image, make_tier, settings, runtime
):
    size = png_image.stat().st_size
    fits = 3
    set_tier(settings, tenant, make_tier(storage_quota_bytes=fits * size + size // 2))
    # Ten at once from one tenant and one address: lift the caps on uploads under way
    # (tests/web/test_slow_clients.py shows those), so the quota alone decides.
    app.extensions["faktry"].uploads.caps.update(process=0, tenant=0, address=0)
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def go():
        own = app.test_client()
        barrier.wait()
        statuses.append(upload(own, tenant, png_image).status_code)

    threads = [threading.Thread(target=go) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] * fits + [413] * (10 - fits)
    client = app.test_client()
    assert usage(client, tenant)["used_bytes"] == fits * size <= usage(client, tenant)["quota_bytes"]
    assert storage_problems(runtime, tenant) == []


def test_a_job_whose_outputs_would_exceed_the_quota_fails_keeps_nothing_and_charges_nothing(
    client, tenant, clip_720p, make_tier, settings, runtime
):
    size = clip_720p.stat().st_size
    set_tier(settings, tenant, make_tier(storage_quota_bytes=size + 1000))
    file_id = upload(client, tenant, clip_720p).json["id"]
    before = client.get("/v1/account", headers=tenant.headers).json["credits"]["available"]
    job = client.post(
        "/v1/jobs",
        json={"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_720p"}},
        headers=tenant.headers,
    ).json
    runner.run(runtime.context, job["id"])
    done = client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json
    assert done["status"] == "failed" and done["error"]["code"] == "storage_quota_exceeded"
    assert done["outputs"] == [] and done["cost"]["charged"] == 0
    assert client.get("/v1/account", headers=tenant.headers).json["credits"]["available"] == before
    assert usage(client, tenant)["used_bytes"] == size and usage(client, tenant)["reserved_bytes"] == 0
    jobs_dir = Path(settings.resolved_storage_url.removeprefix("file:")) / "t" / tenant.id / "jobs"
    assert not jobs_dir.exists() or not [p for p in jobs_dir.rglob("*") if p.is_file()]
    assert storage_problems(runtime, tenant) == []


def test_job_outputs_count_against_the_quota(client, tenant, png_image, runtime):
    file_id = upload(client, tenant, png_image).json["id"]
    job = client.post(
        "/v1/jobs",
        json={"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 40, "height": 30}},
        headers=tenant.headers,
    ).json
    runner.run(runtime.context, job["id"])
    done = client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json
    assert usage(client, tenant)["used_bytes"] == png_image.stat().st_size + done["outputs"][0]["size"]
    assert storage_problems(runtime, tenant) == []


def test_a_downgrade_below_usage_blocks_uploads_and_deletes_nothing(
    client, tenant, png_image, make_tier, settings
):
    for _ in range(3):
        upload(client, tenant, png_image)
    set_tier(settings, tenant, make_tier(storage_quota_bytes=png_image.stat().st_size))
    r = upload(client, tenant, png_image)
    assert r.status_code == 413 and r.json["error"]["code"] == "storage_quota_exceeded"
    files = client.get("/v1/files", headers=tenant.headers).json["data"]
    assert len(files) == 3
    for f in files[:2]:
        client.delete(f"/v1/files/{f['id']}", headers=tenant.headers)
    client.delete(f"/v1/files/{files[2]['id']}", headers=tenant.headers)
    assert upload(client, tenant, png_image).status_code == 201


def test_the_usage_check_catches_a_wrong_figure_and_a_missing_object(
    client, tenant, png_image, runtime, settings
):
    file_id = upload(client, tenant, png_image).json["id"]
    assert storage_problems(runtime, tenant) == []
    with transaction(runtime.context.sessions) as s:
        s.execute(
            update(Account)
            .where(Account.tenant_id == tenant.id)
            .values(storage_used_bytes=Account.storage_used_bytes + 7)
        )
    assert any("storage used" in p.what for p in storage_problems(runtime, tenant))
    with transaction(runtime.context.sessions) as s:
        s.execute(
            update(Account)
            .where(Account.tenant_id == tenant.id)
            .values(storage_used_bytes=Account.storage_used_bytes - 7)
        )
    root = Path(settings.resolved_storage_url.removeprefix("file:"))
    [stored] = [p for p in root.rglob("*") if p.is_file() and file_id in str(p)]
    stored.unlink()
    assert any("missing" in p.what for p in storage_problems(runtime, tenant))


def test_an_upload_longer_than_the_tier_allows_is_refused(client, tenant, clip_small, make_tier, settings):
    set_tier(settings, tenant, make_tier(max_duration_seconds=0))
    r = upload(client, tenant, clip_small)
    assert r.status_code == 422 and r.json["error"]["code"] == "media_too_long"
    assert usage(client, tenant)["used_bytes"] == 0


def test_the_tier_upload_limit_applies(client, tenant, clip_small, make_tier, settings):
    set_tier(settings, tenant, make_tier(max_upload_bytes=1000))
    r = upload(client, tenant, clip_small)
    assert r.status_code == 413 and r.json["error"]["code"] == "payload_too_large"
