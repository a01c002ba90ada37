"""Outputs download under names made from their source and job, and a multi-file output
(an HLS ladder) downloads whole as one zip, for its own tenant only."""

from __future__ import annotations

import io
import zipfile

from tests.web.helpers import upload, wait_for_job


def _run(client, tenant, body):
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    done = wait_for_job(client, tenant, r.json["id"])
    assert done["status"] == "succeeded", done
    return done


def test_an_hls_ladder_downloads_whole_as_one_zip_named_after_its_source(client, tenant, clip_small, worker):
    file_id = upload(client, tenant, clip_small, name="clip.mp4").json["id"]
    done = _run(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "hls"}},
    )
    [out] = done["outputs"]

    r = client.get(f"/v1/files/{out['id']}/content?format=zip", headers=tenant.headers)

    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/zip"
    assert r.headers["Content-Disposition"] == 'attachment; filename="clip-hls.zip"'
    archive = zipfile.ZipFile(io.BytesIO(r.data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(names) == out["file_count"]
    assert all(name.startswith("clip-hls/") for name in names)
    assert "clip-hls/master.m3u8" in names
    # Every file is the same bytes as served one by one.
    for name in names:
        relpath = name.removeprefix("clip-hls/")
        served = client.get(f"/v1/files/{out['id']}/content/{relpath}", headers=tenant.headers)
        assert served.status_code == 200, relpath
        assert archive.read(name) == served.data


def test_an_output_downloads_under_its_source_and_job_name(client, tenant, clip_small, worker):
    file_id = upload(client, tenant, clip_small, name="holiday clip.mp4").json["id"]
    done = _run(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_360p"}},
    )
    [out] = done["outputs"]

    r = client.get(f"/v1/files/{out['id']}/content", headers=tenant.headers)

    assert r.status_code == 200
    assert "filename=holiday-clip-360p.mp4" in r.headers["Content-Disposition"]
    # The upload keeps its own name.
    upload_r = client.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert "holiday clip.mp4" in upload_r.headers["Content-Disposition"]


def test_a_single_file_also_downloads_as_a_zip_when_asked(client, tenant, png_image, worker):
    file_id = upload(client, tenant, png_image, name="logo.png").json["id"]
    done = _run(
        client,
        tenant,
        {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}},
    )
    [out] = done["outputs"]
    r = client.get(f"/v1/files/{out['id']}/content?format=zip", headers=tenant.headers)
    assert r.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(r.data))
    assert archive.namelist() == ["logo-resized/" + archive.namelist()[0].split("/", 1)[1]]
    assert r.headers["Content-Disposition"] == 'attachment; filename="logo-resized.zip"'


def test_another_tenants_zip_answers_like_an_unknown_file(client, make_tenant, clip_small, worker):
    alice, bob = make_tenant(), make_tenant()
    file_id = upload(client, bob, clip_small).json["id"]
    done = _run(
        client, bob, {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "hls"}}
    )
    bobs = done["outputs"][0]["id"]

    theirs = client.get(f"/v1/files/{bobs}/content?format=zip", headers=alice.headers)
    unknown = client.get(f"/v1/files/fil_{'0' * 24}/content?format=zip", headers=alice.headers)

    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json == unknown.json
    assert client.get(f"/v1/files/{bobs}/content?format=zip", headers=bob.headers).status_code == 200


def test_an_unknown_format_or_a_member_zip_is_refused_naming_format(client, tenant, clip_small, worker):
    file_id = upload(client, tenant, clip_small).json["id"]
    done = _run(
        client,
        tenant,
        {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "hls"}},
    )
    out = done["outputs"][0]
    for url in (
        f"/v1/files/{out['id']}/content?format=tar",
        f"/v1/files/{out['id']}/content/master.m3u8?format=zip",
    ):
        r = client.get(url, headers=tenant.headers)
        assert r.status_code == 422, url
        assert r.json["error"]["field"] == "format"
