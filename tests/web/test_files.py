"""``/v1/files``: uploads decided by content, size limits, listing, download, delete, isolation."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from tests.web.helpers import upload, wait_for_job


def test_an_upload_answers_201_with_its_probed_facts(client, tenant, clip_small: Path):
    r = upload(client, tenant, clip_small, name="holiday.mov")
    assert r.status_code == 201, r.json
    body = r.json
    assert body["id"].startswith("fil_")
    assert body["size"] == clip_small.stat().st_size
    assert body["sha256"] == hashlib.sha256(clip_small.read_bytes()).hexdigest()
    assert body["content_type"] == "video/mp4"  # from the bytes, not the .mov name
    assert body["kind"] == "video"
    media = body["media"]
    assert media["width"] == 320 and media["height"] == 240
    assert abs(media["duration"] - 1.0) < 0.2
    assert media["video_codec"] == "h264"
    assert body["filename"] == "holiday.mov"


def test_the_stored_name_is_chosen_by_the_server(client, tenant, clip_small, settings):
    r = upload(client, tenant, clip_small, name="../../etc/passwd")
    assert r.status_code == 201
    stored = list((Path(settings.resolved_storage_url.removeprefix("file:"))).rglob("*"))
    names = [p.name for p in stored if p.is_file()]
    assert names == ["original.mp4"]
    assert r.json["filename"] == "passwd"


def test_an_image_upload_is_probed_with_pillow(client, tenant, png_image):
    r = upload(client, tenant, png_image, name="x.bin")
    assert r.status_code == 201, r.json
    assert r.json["content_type"] == "image/png"
    assert r.json["media"]["width"] > 0


def test_text_disguised_as_video_is_refused_and_nothing_is_kept(client, tenant, tmp_path, settings):
    fake = tmp_path / "movie.mp4"
    fake.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n/etc/hostname\n#EXT-X-ENDLIST\n")
    r = upload(client, tenant, fake)
    assert r.status_code == 415
    assert r.json["error"]["code"] == "unsupported_format"
    assert client.get("/v1/files", headers=tenant.headers).json["data"] == []
    storage_root = Path(settings.resolved_storage_url.removeprefix("file:"))
    assert not storage_root.exists() or not [p for p in storage_root.rglob("*") if p.is_file()]
    assert not [p for p in settings.tmp_dir.iterdir() if p.name.startswith("upload-")]


def test_a_truncated_mp4_is_refused_as_invalid_media(client, tenant, clip_small, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = clip_small.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r = upload(client, tenant, cut)
    assert r.status_code == 422
    assert r.json["error"]["code"] == "invalid_media"


def test_a_png_declaring_100000_by_100000_pixels_is_refused(client, tenant, bomb_png):
    r = upload(client, tenant, bomb_png)
    assert r.status_code == 422
    assert r.json["error"]["code"] == "media_too_large"


def test_an_empty_or_missing_file_part_is_a_422(client, tenant):
    r = client.post(
        "/v1/files", headers=tenant.headers, data={"other": "x"}, content_type="multipart/form-data"
    )
    assert r.status_code == 422 and r.json["error"]["field"] == "file"
    r = client.post(
        "/v1/files",
        headers=tenant.headers,
        data={"file": (io.BytesIO(b""), "empty.mp4")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422


def test_an_upload_over_the_limit_is_a_413(app, client, tenant, tmp_path):
    app.extensions["faktry"].settings = app.extensions["faktry"].settings.replace(max_upload_bytes=100_000)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(300_000))
    r = upload(client, tenant, big)
    assert r.status_code == 413
    assert r.json["error"]["code"] == "payload_too_large"


def test_listing_pages_with_a_cursor(client, tenant, png_image):
    ids = [upload(client, tenant, png_image).json["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        q = "/v1/files?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(q, headers=tenant.headers)
        assert r.status_code == 200
        seen += [f["id"] for f in r.json["data"]]
        cursor = r.json["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert client.get("/v1/files?cursor=%%%", headers=tenant.headers).status_code == 422
    assert client.get("/v1/files?limit=0", headers=tenant.headers).status_code == 422


def test_content_downloads_the_same_bytes_and_delete_removes_them(client, tenant, clip_small, settings):
    file_id = upload(client, tenant, clip_small).json["id"]
    r = client.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert r.status_code == 200 and r.data == clip_small.read_bytes()
    assert r.headers["Content-Type"] == "video/mp4"
    assert client.delete(f"/v1/files/{file_id}", headers=tenant.headers).status_code == 204
    assert client.get(f"/v1/files/{file_id}", headers=tenant.headers).status_code == 404
    storage_root = Path(settings.resolved_storage_url.removeprefix("file:"))
    assert not [p for p in storage_root.rglob("*") if p.is_file()]
    assert client.get("/v1/account", headers=tenant.headers).json["storage"]["used_bytes"] == 0


def test_another_tenants_file_answers_exactly_like_an_unknown_one(client, make_tenant, png_image):
    alice, bob = make_tenant(), make_tenant()
    bobs = upload(client, bob, png_image).json["id"]
    for method, suffix in [("get", ""), ("get", "/content"), ("delete", "")]:
        theirs = getattr(client, method)(f"/v1/files/{bobs}{suffix}", headers=alice.headers)
        unknown = getattr(client, method)(f"/v1/files/fil_{'0' * 24}{suffix}", headers=alice.headers)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json == unknown.json
    assert client.get("/v1/files", headers=alice.headers).json["data"] == []
    assert client.get(f"/v1/files/{bobs}", headers=bob.headers).status_code == 200


def test_listing_filters_by_kind_origin_and_size(client, tenant, png_image, clip_small, worker):
    image = upload(client, tenant, png_image).json
    video = upload(client, tenant, clip_small).json
    job = client.post(
        "/v1/jobs",
        json={"type": "image.resize", "input": {"file_id": image["id"]}, "params": {"width": 4, "height": 4}},
        headers=tenant.headers,
    ).json
    output = wait_for_job(client, tenant, job["id"])["outputs"][0]

    def ids(query: str) -> list[str]:
        r = client.get(f"/v1/files?{query}", headers=tenant.headers)
        assert r.status_code == 200, r.json
        return [f["id"] for f in r.json["data"]]

    assert ids("origin=upload") == [video["id"], image["id"]]
    assert ids("origin=output") == [output["id"]]
    assert ids("kind=image&origin=upload") == [image["id"]]
    assert ids(f"min_size={video['size']}") == [video["id"]]
    smaller = client.get(f"/v1/files?max_size={image['size']}", headers=tenant.headers).json["data"]
    assert all(f["size"] < image["size"] for f in smaller)
    assert image["id"] not in [f["id"] for f in smaller]  # fewer than, not at most
    assert (output["id"] in [f["id"] for f in smaller]) == (output["size"] < image["size"])
    assert ids(f"min_size={image['size']}&max_size={image['size'] + 1}") == [image["id"]]
    for bad in ("origin=elsewhere", "min_size=-1", "max_size=1e3", "min_size=" + "9" * 19):
        r = client.get(f"/v1/files?{bad}", headers=tenant.headers)
        assert r.status_code == 422 and r.json["error"]["field"] in bad
