"""``/v1/jobs``: validation, idempotency, isolation, running on a real worker, cancel."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def video_id(client, tenant, clip_small):
    return upload(client, tenant, clip_small).json["id"]


def submit(client, tenant, body, **headers):
    return client.post("/v1/jobs", json=body, headers={**tenant.headers, **headers})


def test_an_unknown_job_type_is_a_422_listing_the_known_ones(client, tenant, video_id):
    r = submit(client, tenant, {"type": "video.explode", "input": {"file_id": video_id}})
    assert r.status_code == 422
    err = r.json["error"]
    assert err["code"] == "unknown_job_type" and err["field"] == "type"
    assert {"media.probe", "video.transcode", "video.thumbnail", "image.resize"} <= set(err["known_types"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "params.preset"),
        ({"preset": "mp4_9000p"}, "params.preset"),
        ({"preset": "mp4_480p", "speed": 3}, "params.speed"),
    ],
)
def test_bad_params_are_a_422_naming_the_field(client, tenant, video_id, params, field):
    r = submit(client, tenant, {"type": "video.transcode", "input": {"file_id": video_id}, "params": params})
    assert r.status_code == 422
    assert r.json["error"]["field"] == field


def test_a_job_needs_an_input_of_a_kind_its_type_takes(client, tenant, png_image, video_id):
    image_id = upload(client, tenant, png_image).json["id"]
    r = submit(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": image_id}, "params": {"preset": "mp4_360p"}},
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "unsupported_input"
    r = submit(client, tenant, {"type": "image.resize", "input": {}, "params": {"width": 1, "height": 1}})
    assert r.status_code == 422 and r.json["error"]["field"] == "input.file_id"


def test_another_tenants_file_cannot_be_a_job_input(client, make_tenant, clip_small):
    alice, bob = make_tenant(), make_tenant()
    bobs = upload(client, bob, clip_small).json["id"]
    theirs = submit(client, alice, {"type": "media.probe", "input": {"file_id": bobs}})
    unknown = submit(client, alice, {"type": "media.probe", "input": {"file_id": "fil_" + "0" * 24}})
    assert theirs.status_code == unknown.status_code == 422
    assert theirs.json == unknown.json


def test_the_same_idempotency_key_and_body_return_the_same_job(client, tenant, video_id):
    body = {"type": "media.probe", "input": {"file_id": video_id}}
    first = submit(client, tenant, body, **{"Idempotency-Key": "abc"})
    again = submit(client, tenant, body, **{"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 202
    assert first.json["id"] == again.json["id"]
    other = submit(client, tenant, {**body, "metadata": {"x": 1}}, **{"Idempotency-Key": "abc"})
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"
    assert len(client.get("/v1/jobs", headers=tenant.headers).json["data"]) == 1


def test_a_submitted_job_is_queued_with_its_links(client, tenant, video_id, runtime):
    r = submit(
        client, tenant, {"type": "media.probe", "input": {"file_id": video_id}, "metadata": {"ref": "a1"}}
    )
    assert r.status_code == 202
    job = r.json
    assert job["status"] == "queued" and job["queue"] == "local.small"
    assert job["urls"] == {"self": f"/v1/jobs/{job['id']}", "cancel": f"/v1/jobs/{job['id']}/cancel"}
    assert job["metadata"] == {"ref": "a1"}
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=tenant.headers).json["data"]
    assert [e["kind"] for e in events] == ["created"]


def test_another_tenants_job_answers_exactly_like_an_unknown_one(client, make_tenant, clip_small):
    alice, bob = make_tenant(), make_tenant()
    file_id = upload(client, bob, clip_small).json["id"]
    job_id = submit(client, bob, {"type": "media.probe", "input": {"file_id": file_id}}).json["id"]
    for method, suffix in [("get", ""), ("get", "/events"), ("post", "/cancel")]:
        theirs = getattr(client, method)(f"/v1/jobs/{job_id}{suffix}", headers=alice.headers)
        unknown = getattr(client, method)(f"/v1/jobs/job_{'0' * 24}{suffix}", headers=alice.headers)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json == unknown.json
    assert client.get("/v1/jobs", headers=alice.headers).json["data"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=bob.headers).json["status"] == "queued"


def test_a_queued_job_canceled_never_runs(client, tenant, video_id, runtime, worker):
    worker.pause()
    job = submit(client, tenant, {"type": "media.probe", "input": {"file_id": video_id}}).json
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    assert r.status_code == 202 and r.json["status"] == "canceled"
    worker.resume()
    runtime.broker.join("local.small", timeout=10_000)
    body = client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json
    assert body["status"] == "canceled" and body["attempts"] == 0


def test_jobs_filter_by_status(client, tenant, video_id):
    submit(client, tenant, {"type": "media.probe", "input": {"file_id": video_id}})
    assert len(client.get("/v1/jobs?status=queued", headers=tenant.headers).json["data"]) == 1
    assert client.get("/v1/jobs?status=running", headers=tenant.headers).json["data"] == []
    assert client.get("/v1/jobs?status=weird", headers=tenant.headers).status_code == 422


def test_a_probe_job_runs_on_a_worker_and_reports_the_media(client, tenant, video_id, worker):
    job = submit(client, tenant, {"type": "media.probe", "input": {"file_id": video_id}}).json
    done = wait_for_job(client, tenant, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["attempts"] == 1
    assert done["result"]["media"]["width"] == 320
    kinds = [
        e["kind"] for e in client.get(f"/v1/jobs/{job['id']}/events", headers=tenant.headers).json["data"]
    ]
    assert kinds == ["created", "started", "succeeded"]


def test_a_transcode_writes_an_output_file_into_the_library(client, tenant, clip_720p, worker, tmp_path):
    file_id = upload(client, tenant, clip_720p).json["id"]
    job = submit(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_480p"}},
    ).json
    done = wait_for_job(client, tenant, job["id"])
    assert done["status"] == "succeeded", done
    [out] = done["outputs"]
    assert out["content_type"] == "video/mp4" and out["media"]["height"] == 480
    assert out["job_id"] == job["id"]
    data = client.get(out["url"], headers=tenant.headers).data
    target = tmp_path / "out.mp4"
    target.write_bytes(data)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,height", "-of", "csv=p=0", str(target)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "h264,480"
    library = client.get("/v1/files", headers=tenant.headers).json["data"]
    assert {f["id"] for f in library} == {file_id, out["id"]}


def test_an_hls_ladder_is_one_output_whose_playlists_resolve_relative_paths(
    client, tenant, clip_small, worker
):
    file_id = upload(client, tenant, clip_small).json["id"]
    job = submit(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "hls"}},
    ).json
    done = wait_for_job(client, tenant, job["id"])
    assert done["status"] == "succeeded", done
    [out] = done["outputs"]
    assert out["name"] == "hls" and out["relpath"] == "master.m3u8" and out["file_count"] > 3
    master = client.get(out["url"], headers=tenant.headers)
    assert master.status_code == 200
    base = out["url"].rsplit("/", 1)[0]
    variants = [
        line for line in master.get_data(as_text=True).splitlines() if line and not line.startswith("#")
    ]
    assert len(variants) >= 2
    for variant in variants:
        playlist = client.get(f"{base}/{variant}", headers=tenant.headers)
        assert playlist.status_code == 200, variant
        folder = variant.rsplit("/", 1)[0]
        segments = [s for s in playlist.get_data(as_text=True).splitlines() if s and not s.startswith("#")]
        assert segments
        for seg in segments:
            assert client.get(f"{base}/{folder}/{seg}", headers=tenant.headers).status_code == 200
    library = client.get("/v1/files", headers=tenant.headers).json["data"]
    assert len(library) == 2  # the upload and the ladder's root; members are inside it


def test_an_image_resize_runs(client, tenant, png_image, worker):
    file_id = upload(client, tenant, png_image).json["id"]
    body = {
        "type": "image.resize",
        "input": {"file_id": file_id},
        "params": {"width": 32, "height": 32, "mode": "fill", "format": "webp"},
    }
    done = wait_for_job(client, tenant, submit(client, tenant, body).json["id"])
    assert done["status"] == "succeeded", done
    [out] = done["outputs"]
    assert out["content_type"] == "image/webp"
    assert (out["media"]["width"], out["media"]["height"]) == (32, 32)


def test_thumbnails_and_sprites_run(client, tenant, clip_small, worker):
    file_id = upload(client, tenant, clip_small).json["id"]
    one = submit(
        client,
        tenant,
        {
            "type": "video.thumbnail",
            "input": {"file_id": file_id},
            "params": {"at_fraction": 0.5, "width": 160},
        },
    ).json
    sheet = submit(
        client,
        tenant,
        {
            "type": "video.thumbnail",
            "input": {"file_id": file_id},
            "params": {"sprite": True, "frames": 4, "columns": 2, "width": 80},
        },
    ).json
    a, b = wait_for_job(client, tenant, one["id"]), wait_for_job(client, tenant, sheet["id"])
    assert a["status"] == b["status"] == "succeeded", (a, b)
    assert a["outputs"][0]["media"]["width"] == 160
    assert b["outputs"][0]["media"]["width"] == 160  # 2 columns of 80


def test_canceling_a_running_transcode_stops_ffmpeg_and_removes_partial_outputs(
    client, tenant, long_clip, worker, settings
):
    file_id = upload(client, tenant, long_clip).json["id"]
    job = submit(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_1080p"}},
    ).json
    wait_for_job(client, tenant, job["id"], until=("running",))
    deadline = time.monotonic() + 30
    while client.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json["progress"] <= 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    assert r.status_code == 202 and r.json["cancel_requested"] is True
    done = wait_for_job(client, tenant, job["id"], timeout=10)
    assert done["status"] == "canceled" and done["outputs"] == []
    assert not _ffmpeg_running(settings)
    jobs_dir = settings.var_dir.parent / "storage" / "t" / tenant.id / "jobs"
    assert not jobs_dir.exists() or not [p for p in jobs_dir.rglob("*") if p.is_file()]
    assert not list(settings.tmp_dir.glob(f"{job['id']}*"))


def _ffmpeg_running(settings) -> bool:
    out = subprocess.run(["pgrep", "-f", str(settings.tmp_dir)], capture_output=True, text=True)
    return bool(out.stdout.strip())
