"""The export archive: asked for on the API, built in the background by a real worker, its
contents checked file by file, downloadable until it expires, then removed by the scheduler;
a lost message, a dead build and a failing one are all recovered from the database; a large
library is copied in chunks, never held in memory; nothing of another tenant is reachable."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from faktry import clock
from faktry.cli import sweep_exports
from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines import retention
from pipelines.exports import store
from pipelines.exports.models import ExportArchive
from quotas.models import LedgerEntry
from storage.models import File
from tests.web.helpers import upload, wait_for_job
from workers.broker import BrokerSender

PASSWORD = "correct horse battery staple"


@pytest.fixture
def sessions(settings: Any) -> Any:
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def policy(settings: Any, **changes: Any) -> store.Policy:
    return store.Policy(**{**store.Policy.from_settings(settings).__dict__, **changes})


def ask(client: Any, tenant: Any) -> Any:
    return client.post("/v1/account/exports", headers=tenant.headers)


def wait_ready(client: Any, tenant: Any, archive_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/account/exports/{archive_id}", headers=tenant.headers).json
        if body["status"] in ("ready", "failed"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def download(client: Any, tenant: Any, archive_id: str) -> zipfile.ZipFile:
    r = client.get(f"/v1/account/exports/{archive_id}/download", headers=tenant.headers)
    assert r.status_code == 200, r.data[:300]
    assert r.headers["Content-Type"] == "application/zip"
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert "faktry-export-" in r.headers["Content-Disposition"]
    assert "no-store" in r.headers["Cache-Control"]
    return zipfile.ZipFile(io.BytesIO(r.data))


def rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def test_the_archive_holds_the_account_as_documents_and_the_media_files_themselves(
    client: Any, runtime: Any, worker: Any, make_tenant: Any, png_image: Path, clip_small: Path
) -> None:
    person = make_tenant(password=PASSWORD)
    other = make_tenant()
    # The account: an upload, a resize of it, an HLS ladder, a generated image published
    # to the gallery, a brand, and the credits those jobs cost.
    picture = upload(client, person, png_image, name="../holiday/../../beach.png").json
    video = upload(client, person, clip_small, name="clip.mp4").json
    resize = client.post(
        "/v1/jobs",
        json={
            "type": "image.resize",
            "input": {"file_id": picture["id"]},
            "params": {"width": 100, "height": 75},
        },
        headers=person.headers,
    ).json
    hls = client.post(
        "/v1/jobs",
        json={"type": "video.transcode", "input": {"file_id": video["id"]}, "params": {"preset": "hls"}},
        headers=person.headers,
    ).json
    generated = client.post(
        "/v1/jobs",
        json={
            "type": "image.generate",
            "input": {"prompt": "a red chair"},
            "params": {"model": "local-image"},
        },
        headers=person.headers,
    ).json
    for job in (resize, hls, generated):
        assert wait_for_job(client, person, job["id"])["status"] == "succeeded"
    published = client.post(
        "/v1/gallery",
        json={"job_id": generated["id"], "category": "product", "display_name": "Pat Q."},
        headers=person.headers,
    )
    assert published.status_code == 201, published.json
    brand = {
        "name": "Acme",
        "tagline": "Things that work",
        "colors": {"primary": "#112233"},
        "voice": {"mission": "# not a heading\nMake it simple.", "values": ["Clarity"]},
        "personas": [{"name": "Dana", "role": "Editor", "goals": ["Ship weekly"]}],
    }
    made_brand = client.post("/v1/brands", json=brand, headers=person.headers).json
    upload(client, other, png_image, name="others-secret.png")

    asked = ask(client, person)
    assert asked.status_code == 202, asked.json
    assert asked.json["status"] == "queued" and asked.json["download_url"] is None
    assert asked.headers["Location"] == f"/v1/account/exports/{asked.json['id']}"
    ready = wait_ready(client, person, asked.json["id"])
    assert ready["status"] == "ready", ready
    assert ready["download_url"] == f"/v1/account/exports/{ready['id']}/download"
    assert ready["expires_at"] > ready["finished_at"]

    r = client.get(ready["download_url"], headers=person.headers)
    assert hashlib.sha256(r.data).hexdigest() == ready["sha256"] and len(r.data) == ready["size"]
    archive = download(client, person, ready["id"])
    names = archive.namelist()
    assert not [n for n in names if n.startswith("/") or ".." in n.split("/")], names
    assert archive.testzip() is None

    # The documents.
    assert "account.json" in archive.read("README.txt").decode()
    document = json.loads(archive.read("account.json"))
    assert document["tenant"]["id"] == person.id
    assert {j["id"] for j in document["jobs"]} == {resize["id"], hls["id"], generated["id"]}
    profile = json.loads(archive.read("profile.json"))
    assert [u["email"] for u in profile["users"]] == [person.email]
    members = rows(archive, "members.csv")
    assert [(m["id"], m["email"]) for m in members] == [(person.user_id, person.email)]
    keys = rows(archive, "api_keys.csv")
    assert len(keys) == 1 and keys[0]["prefix"] and person.key not in archive.read("api_keys.csv").decode()
    assert "hash" not in archive.read("api_keys.csv").decode()
    jobs = {j["id"]: j for j in rows(archive, "jobs.csv")}
    assert set(jobs) == {resize["id"], hls["id"], generated["id"]}
    assert jobs[generated["id"]]["prompt"] == "a red chair" and jobs[hls["id"]]["status"] == "succeeded"
    events = rows(archive, "job_events.csv")
    assert {e["job_id"] for e in events} == set(jobs)
    assert {"created", "succeeded"} <= {e["kind"] for e in events}
    ledger_rows = rows(archive, "transactions.csv")
    with transaction(runtime.context.sessions) as session:
        kept = session.scalars(select(LedgerEntry.id).where(LedgerEntry.tenant_id == person.id)).all()
    assert sorted(t["id"] for t in ledger_rows) == sorted(kept)
    assert json.loads(archive.read(f"brands/{made_brand['id']}.json"))["tagline"] == "Things that work"
    markdown = archive.read(f"brands/{made_brand['id']}.md").decode()
    assert markdown.startswith("# Acme\n") and "`#112233`" in markdown and "### Dana (Editor)" in markdown
    assert "\\# not a heading" in markdown  # typed text never becomes a heading
    gallery = json.loads(archive.read("gallery.json"))
    assert [g["id"] for g in gallery] == [published.json["id"]]
    assert "workflows.json" not in names and "projects.json" not in names  # none exist

    # The media files, byte for byte.
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["missing"] == []
    listed = {f["name"]: f for f in manifest["files"]}
    for name, entry in listed.items():
        data = archive.read(name)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"], name
    upload_name = f"media/{picture['id']}/beach.png"
    assert archive.read(upload_name) == png_image.read_bytes()
    ladder = [n for n in listed if n.startswith("media/") and n.endswith(".m3u8")]
    assert len(ladder) >= 2 and any(n.endswith(".ts") or n.endswith(".m4s") for n in listed)
    assert len({n.split("/")[1] for n in ladder}) == 1  # one folder per multi-file output
    assert [n for n in listed if n.startswith(f"gallery/{published.json['id']}/")]
    with transaction(runtime.context.sessions) as session:
        stored = session.scalars(select(File).where(File.tenant_id == person.id)).all()
    assert ready["file_count"] == len(stored) + 1 == len(listed)  # every library file, and the gallery copy
    assert not [n for n in names if "others-secret" in n]
    assert other.id not in archive.read("account.json").decode()


def test_asking_again_while_one_is_built_answers_that_one(client: Any, tenant: Any) -> None:
    first = ask(client, tenant)
    again = ask(client, tenant)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["id"] == first.json["id"]
    listed = client.get("/v1/account/exports", headers=tenant.headers).json["data"]
    assert [a["id"] for a in listed] == [first.json["id"]]


def test_an_archive_not_built_yet_is_not_downloadable(client: Any, tenant: Any) -> None:
    asked = ask(client, tenant).json
    r = client.get(f"/v1/account/exports/{asked['id']}/download", headers=tenant.headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "export_not_ready"


def test_a_body_or_a_field_is_refused(client: Any, tenant: Any) -> None:
    r = client.post("/v1/account/exports", json={"everything": True}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "unknown_field"
    assert client.get("/v1/account/exports", headers=tenant.headers).json["data"] == []


def test_another_tenant_cannot_see_or_download_an_archive(
    client: Any, runtime: Any, make_tenant: Any, sessions: Any, settings: Any
) -> None:
    owner, other = make_tenant(), make_tenant()
    asked = ask(client, owner).json
    assert (
        store.build(
            sessions, runtime.context.storage, asked["id"], policy(settings), tmp_dir=settings.tmp_dir
        )
        == "ready"
    )
    for path in (f"/v1/account/exports/{asked['id']}", f"/v1/account/exports/{asked['id']}/download"):
        r = client.get(path, headers=other.headers)
        assert r.status_code == 404 and r.json["error"]["code"] == "export_not_found"
    assert client.get("/v1/account/exports", headers=other.headers).json["data"] == []
    assert client.get(f"/v1/account/exports/{asked['id']}/download", headers=owner.headers).status_code == 200


def test_the_link_expires_and_the_scheduler_removes_the_archive(
    client: Any, runtime: Any, tenant: Any, sessions: Any, settings: Any
) -> None:
    asked = ask(client, tenant).json
    storage = runtime.context.storage
    assert store.build(sessions, storage, asked["id"], policy(settings), tmp_dir=settings.tmp_dir) == "ready"
    with transaction(sessions) as session:
        key = session.get(ExportArchive, asked["id"]).storage_key
    assert key == f"exports/{tenant.id}/{asked['id']}.zip" and storage.exists(key)

    clock.freeze(clock.now() + timedelta(hours=settings.export_archive_hours, seconds=1))
    r = client.get(f"/v1/account/exports/{asked['id']}/download", headers=tenant.headers)
    assert r.status_code == 410 and r.json["error"]["code"] == "export_expired"
    assert (
        client.get(f"/v1/account/exports/{asked['id']}", headers=tenant.headers).json["status"] == "expired"
    )

    swept = retention.sweep(sessions, storage, ledger_retention_days=settings.ledger_retention_days)
    assert swept.archives_expired == 1 and not storage.exists(key)
    after = client.get(f"/v1/account/exports/{asked['id']}", headers=tenant.headers).json
    assert after["status"] == "expired" and after["download_url"] is None
    assert (
        retention.sweep(
            sessions, storage, ledger_retention_days=settings.ledger_retention_days
        ).archives_expired
        == 0
    )
    # A new one can be asked for.
    assert ask(client, tenant).status_code == 202


def test_a_lost_build_message_is_sent_again_by_the_scheduler(
    client: Any, runtime: Any, worker: Any, tenant: Any, sessions: Any, settings: Any
) -> None:
    with transaction(sessions) as session:  # asked for, but its message never reached the broker
        archive, _ = store.request(session, tenant.id, tenant.user_id)
        archive_id = archive.id
    assert (
        sweep_exports(settings, sessions, BrokerSender(runtime.broker)) == 0
    )  # not yet: it may be on its way
    clock.freeze(clock.now() + timedelta(seconds=settings.requeue_after_seconds + 1))
    assert sweep_exports(settings, sessions, BrokerSender(runtime.broker)) == 1
    clock.reset()
    assert wait_ready(client, tenant, archive_id)["status"] == "ready"


def test_a_build_whose_process_died_is_started_again_and_the_dead_start_cannot_finish_it(
    client: Any, runtime: Any, tenant: Any, sessions: Any, settings: Any
) -> None:
    asked = ask(client, tenant).json
    rules = policy(settings)
    dead = store.claim(sessions, asked["id"], rules)  # started, then its process was killed
    assert dead is not None and dead.attempt == 1
    assert store.due(sessions, rules) == []
    clock.freeze(clock.now() + timedelta(seconds=rules.stale_seconds + 1))
    assert store.due(sessions, rules) == [asked["id"]]
    storage = runtime.context.storage
    assert store.build(sessions, storage, asked["id"], rules, tmp_dir=settings.tmp_dir) == "ready"
    with transaction(sessions) as session:
        row = session.get(ExportArchive, asked["id"])
        assert (row.attempts, row.status) == (2, "ready")
        ready_key = row.storage_key
    # The first start comes back to life: its result is refused and the archive stays.
    from pipelines.exports.archive import Written

    assert not store._finish(sessions, dead, "exports/stale.zip", Written(size=1, sha256="x"), rules)
    assert client.get(f"/v1/account/exports/{asked['id']}", headers=tenant.headers).json["status"] == "ready"
    assert storage.exists(ready_key)


class BrokenStorage:
    """Storage whose writes fail: the build cannot store its zip."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_file(self, *_: Any, **__: Any) -> None:
        raise OSError("disk full")


def test_a_failing_build_is_tried_again_then_fails_with_a_stable_code(
    client: Any, runtime: Any, tenant: Any, sessions: Any, settings: Any
) -> None:
    asked = ask(client, tenant).json
    rules = policy(settings, max_attempts=2)
    broken = BrokenStorage(runtime.context.storage)
    assert store.build(sessions, broken, asked["id"], rules, tmp_dir=settings.tmp_dir) == "queued"
    assert client.get(f"/v1/account/exports/{asked['id']}", headers=tenant.headers).json["status"] == "queued"
    assert store.build(sessions, broken, asked["id"], rules, tmp_dir=settings.tmp_dir) == "failed"
    body = client.get(f"/v1/account/exports/{asked['id']}", headers=tenant.headers).json
    assert body["status"] == "failed" and body["error"]["code"] == "export_failed"
    r = client.get(f"/v1/account/exports/{asked['id']}/download", headers=tenant.headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "export_failed"
    assert list(Path(settings.tmp_dir).glob("exp_*")) == []  # no partial file left
    assert ask(client, tenant).status_code == 202  # a new one can be asked for


def test_a_large_library_is_copied_in_chunks_not_held_in_memory(
    client: Any, runtime: Any, tenant: Any, sessions: Any, settings: Any, tmp_path: Path
) -> None:
    storage = runtime.context.storage
    size = 8 * 1024 * 1024
    with transaction(sessions) as session:
        for n in range(4):
            blob = tmp_path / f"blob{n}"
            blob.write_bytes(bytes([n]) * size)
            key = f"t/{tenant.id}/files/big{n}/data"
            stored = storage.store_file(key, blob)
            session.add(
                File(
                    tenant_id=tenant.id, origin="upload", storage_key=key, size=size,
                    content_type="video/mp4", kind="video", sha256=stored.sha256, filename=f"big{n}.mp4",
                    total_size=size,
                )
            )  # fmt: skip
    asked = ask(client, tenant).json
    tracemalloc.start()
    try:
        outcome = store.build(sessions, storage, asked["id"], policy(settings), tmp_dir=settings.tmp_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome == "ready"
    assert peak < 4 * 1024 * 1024, f"the build held {peak} bytes at once for a 32 MiB library"
    archive = download(client, tenant, asked["id"])
    assert len([n for n in archive.namelist() if n.startswith("media/")]) == 4
    assert archive.getinfo(next(n for n in archive.namelist() if n.endswith("big2.mp4"))).file_size == size


def test_a_restricted_account_can_still_export(client: Any, tenant: Any, make_tenant: Any) -> None:
    person = make_tenant(password=PASSWORD)
    login = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    csrf = {"X-CSRF-Token": login.json["csrf_token"]}
    assert client.put("/v1/account/restriction", json={"restricted": True}, headers=csrf).status_code == 200
    r = client.post("/v1/account/exports", headers=csrf)
    assert r.status_code == 202, r.json


def test_deleting_the_account_removes_its_archives(
    client: Any, runtime: Any, make_tenant: Any, sessions: Any, settings: Any
) -> None:
    person = make_tenant(password=PASSWORD)
    login = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    csrf = {"X-CSRF-Token": login.json["csrf_token"]}
    asked = client.post("/v1/account/exports", headers=csrf).json
    storage = runtime.context.storage
    assert store.build(sessions, storage, asked["id"], policy(settings), tmp_dir=settings.tmp_dir) == "ready"
    assert list(storage.list(store.storage_prefix(person.id)))
    r = client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 204, r.json
    assert list(storage.list(store.storage_prefix(person.id))) == []
    with transaction(sessions) as session:
        assert session.scalars(select(ExportArchive).where(ExportArchive.tenant_id == person.id)).all() == []


def test_the_stored_zip_is_not_in_the_storage_quota(
    client: Any, runtime: Any, tenant: Any, sessions: Any, settings: Any
) -> None:
    before = client.get("/v1/account", headers=tenant.headers).json
    asked = ask(client, tenant).json
    assert (
        store.build(
            sessions, runtime.context.storage, asked["id"], policy(settings), tmp_dir=settings.tmp_dir
        )
        == "ready"
    )
    after = client.get("/v1/account", headers=tenant.headers).json
    assert after["storage"] == before["storage"]
