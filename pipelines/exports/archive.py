"""Writing an export archive: a zip holding the account's export and its media files.

The layout (said again in the archive's own ``README.txt``)::

    README.txt            what is where
    account.json          everything faktry keeps about the account (as GET /v1/account/export)
    profile.json          the account and its people's profiles
    members.csv           the people: profile fields, role, sign-up and last log-in
    api_keys.csv          the API keys' metadata (never a key or its hash)
    jobs.json             the jobs with their parameters, prompts, results and outputs
    jobs.csv              one line per job
    job_events.csv        every job's history
    transactions.csv      the ledger, oldest first (same columns as the API's CSV)
    brands/<id>.md        each brand guideline as Markdown, and as JSON beside it
    workflows.json        workflows, their versions, runs, steps and run events (if any)
    projects.json         video projects (if any)
    gallery.json          gallery entries (if any), their media under gallery/<entry id>/
    media/<file id>/...   the media library's files: an upload or a single-file output as
                          media/<file id>/<its name>, a multi-file output (an HLS ladder)
                          as its own tree under media/<file id>/
    manifest.json         every media file: its place in the archive, size and SHA-256

The zip is written to a file, member by member, each media file copied from storage in
chunks: memory holds one chunk and the account's JSON document, however large the library.
Media files are stored as they are (already compressed); the documents are deflated. A file
whose stored object is missing is listed under ``missing`` in the manifest and left out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.interface import ObjectNotFound, Storage


@dataclass(frozen=True)
class Media:
    """One stored object to copy into the archive at ``name``."""

    name: str
    key: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class Brand:
    """A brand guideline written out (`pipelines.brands.book`): Markdown and JSON."""

    id: str
    markdown: str
    json: dict[str, Any]


@dataclass
class Written:
    size: int = 0
    sha256: str = ""
    file_count: int = 0
    missing: list[str] = field(default_factory=list)


MEMBERS_CSV = [
    "id", "email", "role", "is_staff", "first_name", "last_name", "company", "industry", "website",
    "birthday", "location", "created_at", "last_login_at",
]  # fmt: skip
KEYS_CSV = ["id", "user_id", "name", "prefix", "active", "created_at", "last_used_at", "revoked_at"]
JOBS_CSV = [
    "id", "type", "status", "model", "provider", "created_at", "started_at", "finished_at",
    "cost_estimated", "cost_charged", "error_code", "prompt",
]  # fmt: skip
EVENTS_CSV = ["id", "job_id", "at", "kind", "status", "attempt", "data"]

README = """faktry export archive
=====================

Account {tenant_id}, made {made}.

{layout}
Amounts of credits are in millicredits (1 credit = 1000). Times are UTC, ISO 8601.
"""


def write(
    path: Path,
    document: dict[str, Any],
    media: Iterable[Media],
    storage: Storage,
    *,
    transactions: Iterable[dict[str, Any]],
    transaction_fields: list[str],
    brands: Iterable[Brand] = (),
    made: datetime,
    beat: Callable[[], None] = lambda: None,
) -> Written:
    """Write the archive to ``path``; ``beat`` is called after each media file (the build's
    sign of life, which may raise to stop it)."""
    written = Written()
    stamp = made.timetuple()[:6]
    with path.open("wb") as raw, zipfile.ZipFile(raw, "w", allowZip64=True) as archive:

        def text(name: str, body: str) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, body.encode())

        layout = (__doc__ or "").split("::", 1)[1].split("\n\n", 2)[1]
        text(
            "README.txt",
            README.format(tenant_id=document["tenant"]["id"], made=made.isoformat(), layout=layout),
        )
        text("account.json", _json(document))
        text("profile.json", _json({"tenant": document["tenant"], "users": document["users"]}))
        text("members.csv", _csv(MEMBERS_CSV, document["users"]))
        text("api_keys.csv", _csv(KEYS_CSV, document["api_keys"]))
        text("jobs.json", _json(document["jobs"]))
        text("jobs.csv", _csv(JOBS_CSV, (_job_line(job) for job in document["jobs"])))
        text("job_events.csv", _csv(EVENTS_CSV, document["job_events"]))
        text("transactions.csv", _csv(transaction_fields, transactions))
        for brand in brands:
            text(f"brands/{brand.id}.json", _json(brand.json))
            text(f"brands/{brand.id}.md", brand.markdown)
        if document["workflows"]:
            keys = ("workflows", "workflow_versions", "workflow_runs", "workflow_steps", "workflow_events")
            text("workflows.json", _json({key: document[key] for key in keys}))
        if document["projects"]:
            text("projects.json", _json(document["projects"]))
        if document["gallery_entries"]:
            text("gallery.json", _json(document["gallery_entries"]))
        listed: list[dict[str, Any]] = []
        for item in media:
            digest = _copy(archive, item, storage, stamp)
            if digest is None:
                written.missing.append(item.name)
            else:
                listed.append({"name": item.name, "size": item.size, "sha256": digest})
                written.file_count += 1
            beat()
        text("manifest.json", _json({"files": listed, "missing": written.missing}))
    written.size = path.stat().st_size
    written.sha256 = _sha256(path)
    return written


def _copy(archive: zipfile.ZipFile, item: Media, storage: Storage, stamp: Any) -> str | None:
    """Copy one stored object into the archive, chunk by chunk; its SHA-256, or None when
    storage no longer has it."""
    try:
        chunks = storage.iter_chunks(item.key)
    except ObjectNotFound:
        return None
    info = zipfile.ZipInfo(item.name, date_time=stamp)
    info.compress_type = zipfile.ZIP_STORED
    digest = hashlib.sha256()
    with chunks, archive.open(info, "w", force_zip64=True) as dest:
        for chunk in chunks:
            digest.update(chunk)
            dest.write(chunk)
    return digest.hexdigest()


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _csv(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else value


def _job_line(job: dict[str, Any]) -> dict[str, Any]:
    cost = job.get("cost") or {}
    error = job.get("error") or {}
    return {
        **job,
        "cost_estimated": cost.get("estimated"),
        "cost_charged": cost.get("charged"),
        "error_code": error.get("code"),
        "prompt": (job.get("input") or {}).get("prompt") or (job.get("params") or {}).get("prompt"),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def safe_name(name: str, fallback: str = "file") -> str:
    """A file name a person gave, made safe as one segment of a path in the archive: no
    separators or control characters, no leading dots, at most 150 characters."""
    cleaned = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    return cleaned[:150] or fallback


def safe_path(relpath: str) -> str:
    """A path inside a multi-file output, each segment made safe (`safe_name`)."""
    return "/".join(safe_name(part) for part in relpath.split("/") if part not in ("", ".", ".."))
