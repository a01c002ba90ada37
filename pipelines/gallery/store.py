"""The prompt gallery's entries: publish, read, list, unpublish, remove, export, and what
account deletion does with them.

Publishing is done by the edge in three short steps with no transaction open in between
(`web/api/gallery.py`): `candidate` reads the job under the caller's tenant and refuses what
cannot be published; the prompt passes moderation again; the output's bytes are copied to the
entry's own key (`media_key`) and `publish` adds the row. Refusals:

- ``404 job_not_found``: no such job of the caller's (another tenant's looks the same);
- ``409 job_not_succeeded``: the job has not succeeded (yet);
- ``422 not_publishable``: not a generation job with a prompt (`PUBLISHABLE`), or its output
  is not one image, video or audio file;
- ``409 output_missing``: the output file has been deleted from the library;
- ``409 already_published``: the job is in the gallery already;
- ``422 content_blocked`` (the edge, from `pipelines.moderation`).

Public reads (`public_get`, `public_list`) see published entries only, and what they answer
(`public_dict`) names no tenant, job, file or storage key: the entry's own id is the only
handle, and the media URL is keyed by it. They run without a tenant (on PostgreSQL as the
privileged role, like sign-up), so the filter on ``status`` is what keeps removed entries out.

Functions take a session (the edge's), may flush, never commit. Those that drop an entry's
copy return the storage keys to delete once the edge has committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import Conflict, NotFound, ValidationError
from pipelines import pagination
from pipelines.gallery.models import PUBLISHED, REMOVED, GalleryEntry
from pipelines.jobtypes import JOB_TYPES
from pipelines.models import SUCCEEDED, Job, JobOutput, ModerationEntry
from storage.models import File

#: The gallery's categories, in the order the pages offer them.
CATEGORIES = (
    "people", "animals", "nature", "architecture", "food", "fashion", "product", "art",
    "fantasy", "sci-fi", "abstract", "music", "other",
)  # fmt: skip
#: What an entry's output may be.
KINDS = ("image", "video", "audio")
#: Generation job types whose input has a prompt: those a person can publish.
PUBLISHABLE = tuple(
    sorted(
        name
        for name, jt in JOB_TYPES.items()
        if jt.generative and "prompt" in (jt.input_schema or {}).get("properties", {})
    )
)
MAX_DISPLAY_NAME = 60
MAX_REASON = 500
MAX_MODEL = 60
#: Parameters never copied into an entry: they would name the tenant's files.
_FILE_PARAM = re.compile(r"(^|_)file_ids?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Candidate:
    """What a publish copies from a succeeded job and its output."""

    job_id: str
    job_type: str
    model: str
    params: dict[str, Any]
    prompt: str
    file_id: str
    source_key: str
    kind: str
    content_type: str
    size: int
    suffix: str


def parse_publish(body: dict[str, Any]) -> tuple[str, str, str]:
    """``(job_id, category, display_name)`` of a publish request, each checked."""
    job_id = body.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ValidationError("job_id must be the id of one of your jobs", field="job_id")
    category = body.get("category")
    if category not in CATEGORIES:
        raise ValidationError(f"category must be one of: {', '.join(CATEGORIES)}", field="category")
    return job_id, str(category), display_name(body.get("display_name"))


def display_name(raw: Any) -> str:
    """The name the entry is attributed to: 1 to 60 characters, no control characters."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("display_name must be the name to show as the submitter", field="display_name")
    name = raw.strip()
    if len(name) > MAX_DISPLAY_NAME or _CONTROL.search(name):
        raise ValidationError(
            f"display_name must be at most {MAX_DISPLAY_NAME} characters, without control characters",
            field="display_name",
        )
    return name


def candidate(session: Session, job_id: str) -> Candidate:
    """What publishing ``job_id`` would copy; raises the refusals of the module's docstring.
    ``session`` is scoped to the caller's tenant."""
    job = session.get(Job, job_id) if job_id.startswith("job_") else None
    tenant = session.info.get("tenant_id")
    if job is None or (tenant is not None and job.tenant_id != tenant):
        raise NotFound("no such job", code="job_not_found")
    prompt = (job.input or {}).get("prompt")
    if job.type not in PUBLISHABLE or not isinstance(prompt, str) or not job.model:
        raise ValidationError(
            f"only generation jobs with a prompt can be published ({', '.join(PUBLISHABLE)})",
            field="job_id",
            code="not_publishable",
        )
    if job.status != SUCCEEDED:
        raise Conflict(f"the job has not succeeded (it is {job.status})", code="job_not_succeeded")
    taken = select(GalleryEntry.id).where(
        GalleryEntry.tenant_id == job.tenant_id, GalleryEntry.job_id == job.id
    )
    if session.scalar(taken) is not None:
        raise Conflict("this job is in the gallery already", code="already_published")
    outputs = session.execute(
        select(JobOutput.file_id, File)
        .outerjoin(File, File.id == JobOutput.file_id)
        .where(JobOutput.job_id == job.id)
        .order_by(JobOutput.name, JobOutput.id)
    ).all()
    if not outputs:
        raise Conflict("the job's output has been deleted from the library", code="output_missing")
    file_id, file = outputs[0]
    if file is None:
        raise Conflict("the job's output has been deleted from the library", code="output_missing")
    if file.kind not in KINDS or file.file_count != 1 or file.root_id is not None:
        raise ValidationError(
            "only an image, a video or an audio file can be shown in the gallery",
            field="job_id",
            code="not_publishable",
        )
    params = {k: v for k, v in (job.params or {}).items() if k != "model" and not _FILE_PARAM.search(k)}
    return Candidate(
        job_id=job.id,
        job_type=job.type,
        model=job.model,
        params=params,
        prompt=prompt,
        file_id=file_id,
        source_key=file.storage_key,
        kind=file.kind,
        content_type=file.content_type,
        size=file.size,
        suffix=Path(file.storage_key).suffix[:10],
    )


def media_key(entry_id: str, suffix: str) -> str:
    """Where an entry's copy of its output is stored: under the gallery's prefix, never under
    the tenant's (``t/<tenant>/``), so deleting the account's files leaves it when the person
    chose to keep their entries public."""
    return f"gallery/{entry_id}/output{suffix}"


def publish(
    session: Session,
    *,
    tenant_id: str,
    user_id: str | None,
    entry_id: str,
    key: str,
    made: Candidate,
    category: str,
    display_name: str,
) -> GalleryEntry:
    """Add the published entry (its bytes are stored under ``key`` already); flushes."""
    entry = GalleryEntry(
        id=entry_id,
        tenant_id=tenant_id,
        user_id=user_id,
        job_id=made.job_id,
        file_id=made.file_id,
        storage_key=key,
        kind=made.kind,
        content_type=made.content_type,
        size=made.size,
        job_type=made.job_type,
        model=made.model,
        params=made.params,
        prompt=made.prompt,
        category=category,
        display_name=display_name,
        status=PUBLISHED,
    )
    session.add(entry)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as err:  # published by a request racing this one
        raise Conflict("this job is in the gallery already", code="already_published") from err
    return entry


def _published(entry_id: str) -> Any:
    return select(GalleryEntry).where(GalleryEntry.id == entry_id, GalleryEntry.status == PUBLISHED)


def public_get(session: Session, entry_id: str) -> GalleryEntry:
    """A published entry, whoever asks; anything else is ``404 gallery_entry_not_found``."""
    entry = session.scalar(_published(entry_id)) if entry_id.startswith("gal_") else None
    if entry is None:
        raise NotFound("no such gallery entry", code="gallery_entry_not_found")
    return entry


def parse_filters(args: Any) -> dict[str, str]:
    """The listing's filters from a query string: ``category``, ``model`` and ``kind``."""
    filters: dict[str, str] = {}
    category, model, kind = args.get("category"), args.get("model"), args.get("kind")
    if category:
        if category not in CATEGORIES:
            raise ValidationError(f"category must be one of: {', '.join(CATEGORIES)}", field="category")
        filters["category"] = category
    if model:
        if len(model) > MAX_MODEL:
            raise ValidationError(f"model must be at most {MAX_MODEL} characters", field="model")
        filters["model"] = model
    if kind:
        if kind not in KINDS:
            raise ValidationError(f"kind must be one of: {', '.join(KINDS)}", field="kind")
        filters["kind"] = kind
    return filters


def public_list(
    session: Session, filters: dict[str, str], *, cursor: str | None, limit: int
) -> tuple[list[GalleryEntry], str | None]:
    """One page of published entries, newest first (an index range per filter)."""
    stmt = select(GalleryEntry).where(GalleryEntry.status == PUBLISHED)
    for name, value in filters.items():
        stmt = stmt.where(getattr(GalleryEntry, name) == value)
    return pagination.page(
        session, stmt, created=GalleryEntry.created_at, ident=GalleryEntry.id, cursor=cursor, limit=limit
    )


def own(session: Session, entry_id: str) -> GalleryEntry:
    """One of the caller's entries, published or removed (``session`` is scoped to the
    caller's tenant); another tenant's is ``404 gallery_entry_not_found`` like an unknown id."""
    entry = session.get(GalleryEntry, entry_id) if entry_id.startswith("gal_") else None
    tenant = session.info.get("tenant_id")
    if entry is None or tenant is None or entry.tenant_id != tenant:
        raise NotFound("no such gallery entry", code="gallery_entry_not_found")
    return entry


def unpublish(session: Session, entry: GalleryEntry) -> str:
    """Take the entry out of the gallery for good: the row goes; returns the key of its copy."""
    key = entry.storage_key
    session.delete(entry)
    session.flush()
    return key


def remove(session: Session, entry_id: str, reason: Any) -> tuple[GalleryEntry, str | None]:
    """Staff remove a published entry for a policy violation: it is hidden, ``reason`` is kept
    on it and in the moderation log (action ``removed``, with the prompt and model). Returns
    the entry and the key of its copy to delete (None when it was removed already: nothing is
    logged twice). ``session`` acts for no tenant."""
    if not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > MAX_REASON:
        raise ValidationError(f"reason must say why, in 1 to {MAX_REASON} characters", field="reason")
    entry = session.get(GalleryEntry, entry_id) if entry_id.startswith("gal_") else None
    if entry is None:
        raise NotFound("no such gallery entry", code="gallery_entry_not_found")
    if entry.status == REMOVED:
        return entry, None
    entry.status = REMOVED
    entry.removed_reason = reason.strip()
    entry.removed_at = clock.now()
    session.add(
        ModerationEntry(
            tenant_id=entry.tenant_id,
            action="removed",
            category=entry.category,
            score=1.0,
            source="staff",
            endpoint=f"POST /v1/admin/gallery/{entry.id}/remove",
            model=entry.model,
            prompt=entry.prompt,
            reason=entry.removed_reason,
        )
    )
    session.flush()
    return entry, entry.storage_key


def media_url(entry: GalleryEntry) -> str:
    return f"/gallery/media/{entry.id}"


def public_dict(entry: GalleryEntry) -> dict[str, Any]:
    """What anyone may see of a published entry: no tenant, job, file or storage key."""
    return {
        "object": "gallery_entry",
        "id": entry.id,
        "kind": entry.kind,
        "content_type": entry.content_type,
        "media_url": media_url(entry),
        "page_url": f"/gallery/{entry.id}",
        "category": entry.category,
        "display_name": entry.display_name,
        "prompt": entry.prompt,
        "job_type": entry.job_type,
        "model": entry.model,
        "params": entry.params or {},
        "created_at": entry.created_at.isoformat(),
    }


def export_dict(entry: GalleryEntry) -> dict[str, Any]:
    """An entry in its owner's account export: the public fields, and what only the owner
    may know (the job and file it came from, its status and why staff removed it)."""
    return {
        **public_dict(entry),
        "status": entry.status,
        "job_id": entry.job_id,
        "file_id": entry.file_id,
        "user_id": entry.user_id,
        "removed_reason": entry.removed_reason,
        "removed_at": entry.removed_at.isoformat() if entry.removed_at else None,
    }


def of_tenant(session: Session, tenant_id: str) -> list[GalleryEntry]:
    return list(
        session.scalars(
            select(GalleryEntry)
            .where(GalleryEntry.tenant_id == tenant_id)
            .order_by(GalleryEntry.created_at, GalleryEntry.id)
        )
    )


def on_account_deleted(session: Session, tenant_id: str, *, keep_public: bool) -> list[str]:
    """What deleting the account does to its entries. By default they are unpublished (rows
    gone; returns their copies' keys to delete after the commit). With ``keep_public`` (the
    person's choice on the deletion request) published entries stay, attributed to their
    display name only: the link to the deleted person (``user_id``) and to the deleted job
    and file is cut; entries staff removed go either way."""
    if not keep_public:
        keys = list(
            session.scalars(select(GalleryEntry.storage_key).where(GalleryEntry.tenant_id == tenant_id))
        )
        session.execute(delete(GalleryEntry).where(GalleryEntry.tenant_id == tenant_id))
        return keys
    removed = list(
        session.scalars(
            select(GalleryEntry.storage_key).where(
                GalleryEntry.tenant_id == tenant_id, GalleryEntry.status == REMOVED
            )
        )
    )
    session.execute(
        delete(GalleryEntry).where(GalleryEntry.tenant_id == tenant_id, GalleryEntry.status == REMOVED)
    )
    session.execute(
        update(GalleryEntry)
        .where(GalleryEntry.tenant_id == tenant_id)
        .values(user_id=None, file_id=None)
        .execution_options(synchronize_session=False)
    )
    return removed
