"""The OpenAPI 3.1 document of ``/v1``, served at ``GET /v1/openapi.json``.

Built from the code's own declarations wherever the code states them: the job types and their
parameter schemas (`pipelines.jobtypes.JOB_TYPES`), job statuses, media kinds, page and
metadata limits, the API key format. The document is a contract that ``tests/web/
test_openapi.py`` enforces: every route must appear here, and schemathesis checks that the
API answers with the statuses, media types and bodies written down here.

`build` runs once per process (it is cached); callers must not mutate its result.
"""

from __future__ import annotations

import copy
import inspect
import sys
from functools import cache
from typing import Any, get_args

from faktry import permissions
from faktry.tenancy import KEY_PREFIX, SECRET_CHARS, VISIBLE_CHARS
from pipelines import jobtypes, pagination
from pipelines.audit.log import ACTIONS as AUDIT_ACTIONS
from pipelines.brands import schema as brand_schema
from pipelines.catalog import PROVIDERS, default_catalog
from pipelines.gallery import store as gallery
from pipelines.media import detect
from pipelines.models import STATUSES
from pipelines.projects import schema as project_schema
from pipelines.services import MAX_METADATA_BYTES
from pipelines.workflows import graph as workflow_graph
from pipelines.workflows import store as workflow_store
from quotas.ledger import MAX_GRANT_CREDITS, MAX_GRANT_KEY, MAX_GRANT_REASON
from web import openapi_examples, openapi_webhooks

JSON = "application/json"
Schema = dict[str, Any]

# What a werkzeug ``<name>`` (string converter) segment can hold: anything but a slash.
_SEGMENT = {"type": "string", "pattern": "^[^/]+$"}
_STAMP = {"type": "string", "format": "date-time"}
_NULLABLE_STAMP = {"type": ["string", "null"], "format": "date-time"}
_UPLOAD_KINDS = list(get_args(detect.Kind))
# Job outputs add HLS playlists (their segments count as video) and WebVTT subtitles.
_FILE_KINDS = [*_UPLOAD_KINDS, "playlist", "subtitles"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Schema, required: list[str] | None = None, **extra: Any) -> Schema:
    """A closed object: every property the code returns is listed, nothing else may appear."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    required = list(properties) if required is None else required
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def _list_of(item: Schema, *, paged: bool) -> Schema:
    properties: Schema = {"object": {"const": "list"}, "data": {"type": "array", "items": item}}
    if paged:
        properties["next_cursor"] = {
            "type": ["string", "null"],
            "description": "Pass as `cursor` for the next page; null on the last page.",
        }
    return _obj(properties)


# -- schemas -----------------------------------------------------------------------------------


def _error() -> Schema:
    detail = {
        "code": {"type": "string", "description": "Stable, machine-readable; never reworded."},
        "message": {"type": "string", "description": "For people; may change."},
        "field": {"type": "string", "description": "The request field at fault (422)."},
        "limit": {"type": "integer", "description": "The upload size limit, in bytes (413)."},
        "known_types": {"type": "array", "items": {"type": "string"}},
        "known_models": {"type": "array", "items": {"type": "string"}},
        "price": {"type": "integer", "description": "Millicredits the job costs (402)."},
        "available": {"type": "integer", "description": "Millicredits available (402)."},
        "debt": {"type": "integer", "description": "Millicredits owed (402 `account_in_debt`)."},
        "quota_bytes": {"type": "integer", "description": "The tier's storage quota (413)."},
        "used_bytes": {"type": "integer", "description": "Storage used (413)."},
        "limit_seconds": {"type": "integer", "description": "The tier's longest media (422)."},
        "retry_after": {"type": "integer", "description": "Seconds to wait (429); also `Retry-After`."},
        "category": {"type": ["string", "null"], "description": "The moderation category (422, 503)."},
        "problems": {
            "type": "array",
            "description": "Each problem of a refused workflow graph or its inputs (422 `invalid_workflow`).",
            "items": _obj(
                {
                    "node": {
                        "type": ["string", "null"],
                        "description": "The node at fault; null for run inputs.",
                    },
                    "field": {
                        "type": ["string", "null"],
                        "description": "Its field (`params.width`, `map`...).",
                    },
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                }
            ),
        },
    }
    return _obj(
        {"error": {"type": "object", "properties": detail, "required": ["code", "message"]}},
        description="Every error: a stable `code`, a `message` and, for some codes, details.",
    )


def _media() -> Schema:
    optional_int = {"type": ["integer", "null"], "minimum": 0}
    return {
        "type": "object",
        "description": "Facts probed from the bytes (empty for members of a multi-file output).",
        "properties": {
            "format_name": {"type": "string"},
            "duration": {"type": ["number", "null"], "minimum": 0, "description": "Seconds."},
            "width": optional_int,
            "height": optional_int,
            "video_codec": {"type": ["string", "null"]},
            "audio_codec": {"type": ["string", "null"]},
            "streams": {"type": "array", "items": {"type": "object"}},
            "bit_rate": optional_int,
        },
    }


def _file(**extra: Schema) -> Schema:
    properties: Schema = {
        **extra,
        "id": {"type": "string", "pattern": "^fil_"},
        "object": {"const": "file"},
        "origin": {"enum": ["upload", "output"]},
        "kind": {"enum": _FILE_KINDS},
        "content_type": {"type": "string", "description": "Decided from the bytes, never from the name."},
        "size": {"type": "integer", "minimum": 0},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "filename": {"type": "string", "maxLength": 255, "description": "The name the client gave."},
        "media": _ref("Media"),
        "job_id": {"type": ["string", "null"], "description": "The job that wrote this output."},
        "created_at": _STAMP,
        "url": {"type": "string", "description": "Where the bytes are served."},
    }
    expiring = {"expires_at": {**_STAMP, "description": "When the tier's output retention removes it."}}
    multi_file = {
        "root_id": {"type": ["string", "null"], "description": "The root (master playlist) of the output."},
        "relpath": {"type": ["string", "null"], "description": "The path inside the output."},
        "file_count": {"type": "integer", "minimum": 1},
        "total_size": {"type": "integer", "minimum": 0},
    }
    return _obj(
        {**properties, **expiring, **multi_file},
        list(properties),
        description="A media file. Members of multi-file outputs (HLS) and their roots carry "
        + ", ".join(f"`{name}`" for name in multi_file)
        + "; outputs of a tier that keeps them for a while, `expires_at`.",
    )


def _job() -> Schema:
    urls = _obj({"self": {"type": "string"}, "cancel": {"type": "string"}})
    error = _obj({"code": {"type": "string"}, "message": {"type": ["string", "null"]}})
    return _obj(
        {
            "id": {"type": "string", "pattern": "^job_"},
            "object": {"const": "job"},
            "type": {"enum": list(jobtypes.JOB_TYPES)},
            "status": {"enum": list(STATUSES)},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "attempts": {"type": "integer", "minimum": 0},
            "queue": {"type": "string"},
            "queue_position": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "While queued: jobs the fair order admits before this one (single-job reads).",
            },
            "input": {
                "type": "object",
                "description": "As submitted: files by id, prompts. A URL input (`url`) shows the "
                "`file_id` of the library file it was fetched into, once it has been.",
            },
            "model": {"type": ["string", "null"], "description": "The generation model."},
            "provider": {"type": ["string", "null"], "description": "Who runs the model."},
            "upstream": {
                "oneOf": [
                    _obj(
                        {
                            "status": {"type": ["string", "null"]},
                            "queue_position": {"type": ["integer", "null"]},
                            "progress": {"type": ["number", "null"]},
                        }
                    ),
                    {"type": "null"},
                ],
                "description": "Where a generation job stands at its provider, while it waits there.",
            },
            "params": {"type": "object", "description": "As submitted, with defaults applied."},
            "metadata": {"type": "object"},
            "result": {"type": "object", "description": "Facts the job reports besides files."},
            "error": {"oneOf": [error, {"type": "null"}]},
            "cancel_requested": {"type": "boolean"},
            "cost": _obj(
                {
                    "estimated": {"type": "integer", "minimum": 0, "description": "Quoted at submit."},
                    "held": {"type": "integer", "minimum": 0, "description": "Reserved until it ends."},
                    "charged": {"type": ["integer", "null"], "minimum": 0, "description": "Once settled."},
                },
                description="Millicredits.",
            ),
            "outputs": {"type": "array", "items": _ref("JobOutput")},
            "created_at": _STAMP,
            "started_at": _NULLABLE_STAMP,
            "finished_at": _NULLABLE_STAMP,
            "urls": urls,
        }
    )


def _account() -> Schema:
    count = {"type": "integer", "minimum": 0}
    user = _obj({"id": {"type": "string"}, "email": {"type": "string"}, "is_staff": {"type": "boolean"}})
    return _obj(
        {
            "object": {"const": "account"},
            "tenant": _obj(
                {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "tier": {"type": "string"},
                    "created_at": _STAMP,
                }
            ),
            "user": {"oneOf": [user, {"type": "null", "description": "An API key that belongs to no user."}]},
            "credits": _obj(
                {
                    "unit": {"const": "millicredits"},
                    "available": count,
                    "held": count,
                    "debt": count,
                    "lots": {"type": "array", "items": _ref("CreditLot")},
                }
            ),
            "storage": _obj({"used_bytes": count, "reserved_bytes": count, "quota_bytes": count}),
            "limits": _obj(
                {
                    "tier": {"type": "string"},
                    "max_upload_bytes": count,
                    "max_duration_seconds": count,
                    "max_concurrent_jobs": count,
                    "submits_per_minute": count,
                }
            ),
            "auth": {"enum": ["api_key", "session"], "description": "How this request authenticated."},
            "restriction": _obj(
                {
                    "restricted": {
                        "type": "boolean",
                        "description": "Processing is restricted at the person's request: no new jobs.",
                    },
                    "restricted_at": {"type": ["string", "null"], "format": "date-time"},
                }
            ),
            "notices": {
                "type": "array",
                "description": "What the account must be told, also shown at the top of every page: each "
                "webhook endpoint the platform turned off (it answered 410, or failed for days), until it "
                "is turned on again or deleted.",
                "items": _obj(
                    {
                        "kind": {"enum": ["webhook_endpoint_disabled"]},
                        "endpoint_id": {"type": "string"},
                        "url": {"type": "string"},
                        "reason": {"enum": ["gone", "failing"]},
                        "message": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                    }
                ),
            },
        }
    )


def _credit_lot() -> Schema:
    return _obj(
        {
            "id": {"type": "string", "pattern": "^lot_"},
            "source": {"type": "string", "examples": ["purchase", "grant", "refund", "starter"]},
            "amount": {"type": "integer", "minimum": 1},
            "remaining": {"type": "integer", "minimum": 0},
            "held": {"type": "integer", "minimum": 0},
            "created_at": _STAMP,
            "expires_at": _STAMP,
        },
        description="Credits bought or granted together (millicredits); the first to expire go first.",
    )


def _transaction() -> Schema:
    return _obj(
        {
            "id": {"type": "string", "pattern": "^txn_"},
            "object": {"const": "transaction"},
            "created_at": _STAMP,
            "kind": {
                "type": "string",
                "examples": ["grant", "purchase", "hold", "capture", "release", "refund", "carried"],
                "description": "`carried`: the sum of a lot's entries older than the ledger's keeping "
                "time (seven years), which the scheduler purged.",
            },
            "available": {"type": "integer", "description": "Change to the available millicredits."},
            "held": {"type": "integer", "description": "Change to the held millicredits."},
            "debt": {"type": "integer", "description": "Debt owed (positive) or paid off (negative)."},
            "lot_id": {"type": ["string", "null"]},
            "job_id": {"type": ["string", "null"]},
            "memo": {"type": "string"},
        },
        description="One movement of credits.",
    )


def _balance(description: str) -> Schema:
    count = {"type": "integer", "minimum": 0}
    return _obj({"available": count, "held": count, "debt": count}, description=description)


def _tenant() -> Schema:
    count = {"type": "integer", "minimum": 0}
    return _obj(
        {
            "object": {"const": "tenant"},
            "id": {"type": "string"},
            "name": {"type": "string"},
            "tier": {"type": "string"},
            "created_at": _STAMP,
            "owner_email": {"type": ["string", "null"], "description": "Null when it has no owner."},
            "credits": _balance("Millicredits, as `GET /v1/account` counts them."),
            "storage": _obj({"used_bytes": count, "quota_bytes": count}),
        },
        description="A tenant as operators see it.",
    )


def _grant() -> Schema:
    no_lot = {"type": "null", "description": "A repeated `Idempotency-Key`: nothing was granted."}
    return _obj(
        {
            "object": {"const": "grant"},
            "tenant_id": {"type": "string"},
            "lot": {"oneOf": [_ref("CreditLot"), no_lot]},
            "credits": _balance("The tenant's millicredits after the grant."),
        },
        description="Credits granted by an operator.",
    )


def _grant_request() -> Schema:
    return _obj(
        {
            "credits": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_GRANT_CREDITS,
                "description": "Credits (1 credit = 1,000 millicredits), rounded to the millicredit.",
            },
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_GRANT_REASON,
                "description": "Why; kept as the lot's reference and the ledger memo.",
            },
        }
    )


def _job_event() -> Schema:
    return _obj(
        {
            "id": {"type": "integer"},
            "at": _STAMP,
            "kind": {"type": "string", "examples": ["created", "started", "succeeded", "canceled"]},
            "status": {"enum": list(STATUSES), "description": "The job's status after the event."},
            "attempt": {"type": "integer", "minimum": 0},
            "data": {"type": "object"},
        }
    )


def _submission_name(job_type: str) -> str:
    return "Submit" + "".join(part.capitalize() for part in job_type.replace("_", ".").split("."))


def _params(job_type: jobtypes.JobType) -> Schema:
    """The job type's ``params`` schema; for a generative type, one of its models' schemas (the
    model named in ``params.model`` validates the rest, as `pipelines.services.prepare` does)."""
    if not job_type.generative:
        return copy.deepcopy(job_type.params_schema)
    models = default_catalog().for_type(job_type.name)
    return {
        "oneOf": [copy.deepcopy(model.params_schema) for model in models],
        "description": job_type.params_schema.get("description", ""),
    }


def _submissions() -> dict[str, Schema]:
    """One request schema per job type: its ``input`` and ``params`` schemas are the job type's."""
    out: dict[str, Schema] = {}
    for name, job_type in jobtypes.JOB_TYPES.items():
        required = ["type", "input"] + (["params"] if job_type.params_schema.get("required") else [])
        out[_submission_name(name)] = _obj(
            {
                "type": {"const": name},
                "input": copy.deepcopy(job_type.inputs),
                "params": _params(job_type),
                "metadata": {
                    "type": "object",
                    "description": f"Yours to keep with the job: at most {MAX_METADATA_BYTES} bytes of JSON.",
                },
                "webhook": openapi_webhooks.job_webhook(),
            },
            required,
            title=name,
            description=job_type.description,
        )
    return out


def _schemas() -> dict[str, Schema]:
    submissions = _submissions()
    key_properties: Schema = {
        "id": {"type": "string", "pattern": "^key_"},
        "object": {"const": "api_key"},
        "name": {"type": "string", "maxLength": 100},
        "prefix": {"type": "string", "pattern": f"^{KEY_PREFIX}[a-z0-9]{{{VISIBLE_CHARS}}}$"},
        "created_at": _STAMP,
        "last_used_at": _NULLABLE_STAMP,
        "revoked_at": _NULLABLE_STAMP,
        "expires_at": _NULLABLE_STAMP,
        "scopes": {"type": "array", "items": {"enum": list(permissions.SCOPES)}},
        "active": {"type": "boolean", "description": "Neither revoked nor expired."},
    }
    plain_key = {
        "type": "string",
        "pattern": f"^{KEY_PREFIX}[a-z0-9]{{{VISIBLE_CHARS + SECRET_CHARS}}}$",
        "description": "The key itself, shown this once.",
    }
    return {
        "Error": _error(),
        "Media": _media(),
        "File": _file(),
        "FileList": _list_of(_ref("File"), paged=True),
        "JobOutput": _file(name={"type": "string", "description": "The output's name within the job."}),
        **submissions,
        "JobSubmission": {
            "oneOf": [_ref(name) for name in submissions],
            "discriminator": {
                "propertyName": "type",
                "mapping": {
                    name: f"#/components/schemas/{_submission_name(name)}" for name in jobtypes.JOB_TYPES
                },
            },
        },
        "Quote": _obj(
            {
                "object": {"const": "quote"},
                "type": {"enum": list(jobtypes.JOB_TYPES)},
                "model": {"type": ["string", "null"]},
                "price": {"type": "integer", "minimum": 0},
                "currency": {"const": "millicredits"},
                "available": {"type": "integer", "minimum": 0},
                "sufficient": {"type": "boolean", "description": "Whether submitting now would be accepted."},
            }
        ),
        "Job": _job(),
        "JobList": _list_of(_ref("Job"), paged=True),
        "JobEvent": _job_event(),
        "JobEventList": _list_of(_ref("JobEvent"), paged=False),
        **_workflow_schemas(),
        **_workflow_run_schemas(),
        **_brand_schemas(),
        **_project_schemas(),
        "Account": _account(),
        "CreditLot": _credit_lot(),
        "Transaction": _transaction(),
        "TransactionList": _list_of(_ref("Transaction"), paged=True),
        "CreditPack": _obj(
            {
                "id": {"type": "string", "examples": ["starter"]},
                "object": {"const": "credit_pack"},
                "name": {"type": "string"},
                "credits": {"type": "integer", "minimum": 1},
                "amount": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "In the currency's smallest unit.",
                },
                "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
            }
        ),
        "CreditPackList": _obj(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _ref("CreditPack")},
                "payments": {
                    "enum": ["stripe", "test", "off"],
                    "description": "How packs are paid here: Stripe Checkout, faktry's own test "
                    "checkout (no money moves), or not at all (checkout answers 409).",
                },
                "examples": {
                    "type": "array",
                    "description": "What credits buy at this deployment's prices: one unit of a common job.",
                    "items": _obj(
                        {
                            "job_type": {"type": "string"},
                            "preset": {"type": ["string", "null"]},
                            "unit": {"enum": ["minute", "image"]},
                            "label": {"type": "string"},
                            "millicredits": {"type": "integer", "minimum": 1},
                        }
                    ),
                },
            }
        ),
        "CheckoutStatus": _obj(
            {
                "object": {"const": "checkout_status"},
                "session_id": {"type": "string"},
                "status": {
                    "enum": ["credited", "paid", "unpaid"],
                    "description": "`credited`: the credits are in the balance; `paid`: paid, the "
                    "credits arrive with the payment provider's webhook; `unpaid`: not paid or canceled.",
                },
                "credits_added": {"type": ["integer", "null"], "description": "Millicredits, once credited."},
            }
        ),
        "CreditHistoryLine": _obj(
            {
                "object": {"const": "credit_history_line"},
                "id": {
                    "type": "string",
                    "description": "The job's, the credit lot's or the ledger entry's id.",
                },
                "kind": {
                    "type": "string",
                    "description": "`job`; a lot's source (`purchase`, `grant`, `starter`, `refund`); or a "
                    "removal (`expiry`, `refunded`, `debt`).",
                },
                "created_at": {"type": "string", "format": "date-time"},
                "description": {"type": "string", "description": "The line in words."},
                "added": {"type": "integer", "minimum": 0, "description": "Millicredits added."},
                "charged": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Millicredits a job was charged.",
                },
                "held": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Millicredits held for a running job.",
                },
                "removed": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Millicredits expired or taken back.",
                },
                "job_id": {"type": ["string", "null"]},
                "job_status": {"type": "string"},
                "charge": {"enum": ["charged", "held", "none"]},
                "expires_at": {"type": "string", "format": "date-time"},
            },
            required=[
                "object",
                "id",
                "kind",
                "created_at",
                "description",
                "added",
                "charged",
                "held",
                "removed",
                "job_id",
            ],
        ),
        "CreditHistory": _list_of(_ref("CreditHistoryLine"), paged=True),
        "CheckoutRequest": _obj({"pack": {"type": "string", "description": "A credit pack's `id`."}}),
        "Model": _obj(
            {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "provider": {"enum": list(PROVIDERS)},
                "job_types": {"type": "array", "items": {"enum": list(jobtypes.JOB_TYPES)}},
                "description": {"type": "string"},
                "params": {"type": "object", "description": "JSON Schemas of the parameters it takes."},
                "price": {"type": "object", "description": "Its price rule, in millicredits."},
                "queue": {"type": "string"},
                "runs_on": {
                    "enum": list(PROVIDERS),
                    "description": "`local` (the offline stand-in) when its provider has no key here.",
                },
            }
        ),
        "ModelList": _list_of(_ref("Model"), paged=False),
        "ModerationEntry": _obj(
            {
                "id": {"type": "string", "pattern": "^mod_"},
                "at": _STAMP,
                "tenant_id": {"type": "string"},
                "action": {"enum": ["blocked", "flagged", "removed"]},
                "category": {"type": "string"},
                "score": {"type": "number"},
                "source": {"type": "string", "examples": ["local", "openai", "staff"]},
                "endpoint": {"type": "string"},
                "model": {"type": ["string", "null"]},
                "prompt": {"type": "string"},
                "reason": {
                    "type": ["string", "null"],
                    "description": "Why staff removed a gallery entry (action `removed`); null otherwise.",
                },
            },
            description="A flagged or blocked prompt, or a gallery entry staff removed.",
        ),
        "ModerationLog": _list_of(_ref("ModerationEntry"), paged=True),
        "Queue": _obj(
            {
                "queue": {"type": "string"},
                "depth": {"type": "integer", "minimum": 0},
                "delayed": {"type": "integer", "minimum": 0},
                "oldest_age_seconds": {"type": ["number", "null"]},
                "running": {"type": "integer", "minimum": 0},
                "finished_last_5m": {"type": "integer", "minimum": 0},
                "throughput_per_minute": {"type": "number", "minimum": 0},
                "avg_duration_seconds": {"type": ["number", "null"]},
                "scaling_hint": _obj(
                    {
                        "workers_needed": {"type": "integer", "minimum": 0},
                        "drain_target_seconds": {"type": "number"},
                    }
                ),
            }
        ),
        "QueueList": _list_of(_ref("Queue"), paged=False),
        "DeadLetter": _obj(
            {**_job()["properties"], "tenant_id": {"type": "string"}}, [*_job()["required"], "tenant_id"]
        ),
        "DeadLetterList": _list_of(_ref("DeadLetter"), paged=True),
        "Tenant": _tenant(),
        "TenantList": _list_of(_ref("Tenant"), paged=True),
        "GrantRequest": _grant_request(),
        "Grant": _grant(),
        "CheckoutSession": _obj(
            {
                "object": {"const": "checkout_session"},
                "url": {"type": "string", "description": "The hosted payment page to send the buyer to."},
                "session_id": {"type": "string"},
            }
        ),
        "ApiKey": _obj(key_properties),
        "NewApiKey": _obj({**key_properties, "key": plain_key}),
        "ApiKeyList": _list_of(_ref("ApiKey"), paged=False),
        "NewApiKeyRequest": _obj(
            {
                "name": {
                    "type": "string",
                    "maxLength": 100,
                    "description": "What the key is for; spaces around it are dropped. Without a "
                    "name, or with a blank one, the key is named after the time it was made "
                    "(UTC): `Key created 2026-01-15 09:30 UTC`.",
                },
                "scopes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": list(permissions.SCOPES)},
                    "description": "What the key may do, each a scope your role has (docs/api.md, Roles "
                    "and scopes). Default: every scope of your role.",
                },
                "expires_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "After this the key is refused (`api_key_expired`); in the future, "
                    "at most ten years ahead. Default: never.",
                },
            },
            [],
        ),
        "Member": _obj(
            {
                "id": {"type": "string", "pattern": "^usr_"},
                "object": {"const": "member"},
                "email": {"type": "string"},
                "role": {"enum": list(permissions.ROLES)},
                "first_name": {"type": "string"},
                "last_name": {"type": "string"},
                "you": {"type": "boolean", "description": "Whether this is the caller."},
                "created_at": _STAMP,
                "last_login_at": _NULLABLE_STAMP,
            }
        ),
        "MemberList": _list_of(_ref("Member"), paged=False),
        "AuditEntry": _obj(
            {
                "id": {"type": "string", "pattern": "^aud_"},
                "object": {"const": "audit_entry"},
                "at": _STAMP,
                "action": {"enum": list(AUDIT_ACTIONS)},
                "via": {"enum": ["session", "api_key", "staff", "anonymous"]},
                "actor": {
                    "type": "object",
                    "description": "Who: `user_id`, `email`, `api_key_id`; faktry staff: `staff: true`.",
                },
                "target": {"type": ["string", "null"], "description": "What it was about (an id)."},
                "address": {"type": ["string", "null"]},
                "data": {"type": "object"},
            },
            description="A security event of the account (docs/api.md, Audit log).",
        ),
        "AuditLog": _list_of(_ref("AuditEntry"), paged=True),
        "Invitation": _obj(
            {
                "id": {"type": "string", "pattern": "^inv_"},
                "object": {"const": "invitation"},
                "email": {"type": "string"},
                "role": {"enum": list(permissions.ROLES)},
                "status": {"enum": ["pending", "accepted", "revoked", "expired"]},
                "created_at": _STAMP,
                "expires_at": _STAMP,
                "accepted_at": _NULLABLE_STAMP,
            },
            description="An invitation to join the account (docs/api.md, Roles and scopes).",
        ),
        "InvitationList": _list_of(_ref("Invitation"), paged=False),
        "Login": _obj({"email": {"type": "string", "format": "email"}, "password": {"type": "string"}}),
        "Export": _obj(
            {
                "object": {"const": "export"},
                "exported_at": {"type": "string"},
                "tenant": {"type": "object"},
                "users": {"type": "array", "items": {"type": "object"}},
                "sessions": {"type": "array", "items": {"type": "object"}},
                "api_keys": {"type": "array", "items": {"type": "object"}},
                "billing": {"type": "object"},
                "credit_lots": {"type": "array", "items": {"type": "object"}},
                "holds": {"type": "array", "items": {"type": "object"}},
                "transactions": {"type": "array", "items": {"type": "object"}},
                "payments": {"type": "array", "items": {"type": "object"}},
                "storage": {"type": "object"},
                "files": {"type": "array", "items": _ref("File")},
                "uploads": {
                    "type": "array",
                    "items": _ref("Upload"),
                    "description": "Uploads arriving in pieces (tus, direct to S3), finished or not.",
                },
                "jobs": {"type": "array", "items": _ref("Job")},
                "job_events": {"type": "array", "items": {"type": "object"}},
                "moderation_log": {"type": "array", "items": {"type": "object"}},
                "workflows": {"type": "array", "items": {"type": "object"}},
                "workflow_versions": {"type": "array", "items": {"type": "object"}},
                "workflow_runs": {"type": "array", "items": {"type": "object"}},
                "workflow_steps": {"type": "array", "items": {"type": "object"}},
                "workflow_events": {"type": "array", "items": {"type": "object"}},
                "brands": {"type": "array", "items": _ref("Brand")},
                "projects": {"type": "array", "items": _ref("Project")},
                "webhook_endpoints": {"type": "array", "items": {"type": "object"}},
                "webhook_messages": {"type": "array", "items": _ref("WebhookMessage")},
                "webhook_signing_keys": {"type": "array", "items": {"type": "object"}},
                "mail_messages": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "The mails sent about the account, as sent.",
                },
                "account_tokens": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "The tokens of the mails' links: purpose, expiry, use (never the token).",
                },
                "gallery_entries": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "Your gallery entries, published or removed by staff (with the reason).",
                },
                "export_archives": {"type": "array", "items": _ref("ExportArchive")},
                "audit_log": {"type": "array", "items": _ref("AuditEntry")},
                "invitations": {"type": "array", "items": _ref("Invitation")},
            }
        ),
        "ExportArchive": _obj(
            {
                "id": {"type": "string", "pattern": "^exp_"},
                "object": {"const": "export_archive"},
                "status": {
                    "enum": ["queued", "building", "ready", "expired", "failed"],
                    "description": "`ready` until `expires_at`, then `expired` (the zip is removed).",
                },
                "size": {"type": ["integer", "null"], "description": "Bytes of the zip, once ready."},
                "sha256": {"type": ["string", "null"], "description": "The zip's SHA-256, once ready."},
                "file_count": {
                    "type": ["integer", "null"],
                    "description": "Media files in the archive (the library's and the gallery's copies).",
                },
                "error": {
                    "type": ["object", "null"],
                    "description": "Why it failed (`export_failed`); ask for a new one.",
                },
                "created_at": _STAMP,
                "started_at": _NULLABLE_STAMP,
                "finished_at": _NULLABLE_STAMP,
                "expires_at": _NULLABLE_STAMP,
                "download_url": {
                    "type": ["string", "null"],
                    "description": "`/v1/account/exports/{id}/download` while it is ready.",
                },
                "urls": {"type": "object"},
            },
            description="An export archive: the account's export, CSV and Markdown copies and the media "
            "files, as one zip built in the background (docs/api.md, 'Export archive').",
        ),
        "ExportArchiveList": _list_of(_ref("ExportArchive"), paged=False),
        "Signup": _obj(
            {
                "email": {"type": "string", "format": "email"},
                "password": {"type": "string", "minLength": 10},
                "confirm_age_16": {"const": True, "description": "faktry accepts people aged 16 or older."},
            }
        ),
        "SignupAccepted": _obj(
            {
                "object": {"const": "signup"},
                "email": {"type": "string", "description": "The email as faktry keeps it (lower case)."},
            },
            description="The same whether or not the email had an account already: log in next.",
        ),
        "PasswordChange": _obj(
            {
                "current_password": {"type": "string", "minLength": 1},
                "new_password": {"type": "string", "minLength": 10},
            }
        ),
        "Profile": _obj(
            {
                "object": {"const": "profile"},
                "email": {"type": "string"},
                **{
                    "first_name": {"type": "string", "maxLength": 100},
                    "last_name": {"type": "string", "maxLength": 100},
                    "company": {"type": "string", "maxLength": 200},
                    "industry": {"type": "string", "maxLength": 100},
                    "website": {"type": "string", "maxLength": 300},
                    "location": {"type": "string", "maxLength": 100},
                },
                "birthday": {
                    "type": ["string", "null"],
                    "format": "date",
                    "description": "YYYY-MM-DD, 1900-01-01 to today; null when not given.",
                },
                "email_verified": {
                    "type": "boolean",
                    "description": "Whether the person confirmed their email address (needed to buy "
                    "credits; `POST /v1/email/verification` mails the link again).",
                },
            }
        ),
        "ProfileChange": _obj(
            {
                "first_name": {"type": "string", "maxLength": 100},
                "last_name": {"type": "string", "maxLength": 100},
                "company": {"type": "string", "maxLength": 200},
                "industry": {"type": "string", "maxLength": 100},
                "website": {"type": "string", "maxLength": 300},
                "location": {"type": "string", "maxLength": 100},
                "birthday": {
                    "type": ["string", "null"],
                    "description": 'YYYY-MM-DD, not in the future; null or "" clears it.',
                },
            },
            [],
        ),
        "Session": _obj(
            {
                "object": {"const": "session"},
                "user_id": {"type": ["string", "null"], "description": "Null for an API key without a user."},
                "tenant_id": {"type": "string"},
                "csrf_token": {
                    "type": ["string", "null"],
                    "description": "Send as `X-CSRF-Token` on cookie writes; null with an API key.",
                },
                "email_verified": {
                    "type": ["boolean", "null"],
                    "description": "Whether the person confirmed their email address (needed to buy "
                    "credits); null for an API key without a user.",
                },
            }
        ),
        "EmailVerify": _obj({"token": {"type": "string", "minLength": 1, "maxLength": 200}}),
        "EmailVerification": _obj(
            {
                "object": {"const": "email_verification"},
                "email": {"type": "string"},
                "email_verified": {"type": "boolean"},
            }
        ),
        "PasswordResetRequest": _obj({"email": {"type": "string", "format": "email"}}),
        "PasswordResetAccepted": _obj(
            {
                "object": {"const": "password_reset"},
                "email": {"type": "string", "description": "The email as faktry keeps it (lower case)."},
            },
            description="The same whether or not the email has an account.",
        ),
        "PasswordResetConfirm": _obj(
            {
                "token": {"type": "string", "minLength": 1, "maxLength": 200},
                "new_password": {"type": "string", "minLength": 10},
            }
        ),
        "PasswordResetDone": _obj(
            {
                "object": {"const": "password_reset"},
                "email": {"type": "string"},
                "sessions_ended": {"const": True},
            }
        ),
    }


# -- responses and parameters ------------------------------------------------------------------


def _json(schema: Schema, description: str, **headers: Schema) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error_response(description: str) -> Schema:
    return _json(_ref("Error"), description)


def _rate_limited(description: str) -> Schema:
    """A 429: the error, and how many seconds to wait in ``Retry-After``."""
    retry_after = {"required": True, "schema": {"type": "integer", "minimum": 0}}
    return _json(_ref("Error"), description, **{"Retry-After": retry_after})


_RESPONSES = {
    "Unauthorized": _error_response(
        "No credentials, or a malformed, unknown or revoked API key, or an ended session "
        "(`unauthenticated`, `invalid_api_key`, `session_expired`)."
    ),
    "KeyThrottled": _rate_limited(
        "Over the API's request budget (see the `RateLimit-*` headers), or too many failed API-key "
        "checks for this key's prefix or from this address (`rate_limited`)."
    ),
    "CsrfFailed": _error_response(
        "Outside the caller's role or the API key's scopes (`insufficient_scope`, with `scope`), or a "
        "cookie-authenticated write without the right `X-CSRF-Token` (`csrf_failed`)."
    ),
    "InsufficientScope": _error_response(
        "Outside the caller's role or the API key's scopes (`insufficient_scope`, with `scope`: "
        "docs/api.md, Roles and scopes)."
    ),
    "NotFound": _error_response("No such resource for this tenant; another tenant's looks exactly the same."),
    "Invalid": _error_response("The request is invalid; `field` names the culprit."),
    "BodyTooLarge": _error_response(
        "The body is over this endpoint's limit (`body_too_large`, with `limit`); refused before it is read."
    ),
    "BodyTimeout": _error_response(
        "The body stalled, or arrived slower than the server's minimum rate (`body_timeout`); "
        "the connection is closed."
    ),
}


def _use(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _param(name: str, where: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


def _idempotency_key(max_length: int, description: str) -> Schema:
    return _param(
        "Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": max_length}, description
    )


def _page_params() -> list[Schema]:
    default = inspect.signature(pagination.parse_limit).parameters["default"].default
    return [
        _param("cursor", "query", {"type": "string"}, "The `next_cursor` of the previous page."),
        _param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": pagination.MAX_LIMIT, "default": default},
            "Page size.",
        ),
    ]


def _location(path: str) -> Schema:
    return {"description": f"The new resource: `{path}`.", "required": True, "schema": {"type": "string"}}


# -- paths -------------------------------------------------------------------------------------

_STAFF_WRITE_FORBIDDEN = (
    "The caller is not faktry staff (`staff_only`), or a cookie-authenticated write without the "
    "right `X-CSRF-Token` (`csrf_failed`)."
)

_READ: list[dict[str, list[str]]] = [{"apiKey": []}, {"session": []}]
_WRITE: list[dict[str, list[str]]] = [{"apiKey": []}, {"session": [], "csrf": []}]


def _op(
    summary: str,
    responses: Schema,
    *,
    tag: str,
    write: bool = False,
    public: bool = False,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    operation_id: str,
) -> Schema:
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
        # Every body is read against the clock and sized by its route (web/guard.py).
        responses = {"408": _use("BodyTimeout"), "413": _use("BodyTooLarge"), **responses}
    if public:
        op["security"] = []
    else:
        op["security"] = _WRITE if write else _READ
        responses = {**responses, "401": _use("Unauthorized")}
        responses.setdefault("429", _use("KeyThrottled"))
        # An operation that refuses for its own reasons too says so, scopes and CSRF included.
        responses.setdefault("403", _use("CsrfFailed" if write else "InsufficientScope"))
    op["responses"] = dict(sorted(responses.items()))
    return op


def _json_body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _files_paths() -> Schema:
    file_id = _param(
        "file_id", "path", {**_SEGMENT, "examples": ["fil_0123456789abcdef01234567"]}, "The file."
    )
    relpath = _param(
        "relpath",
        "path",
        {"type": "string", "pattern": "^[^/]", "examples": ["360p/index.m3u8"]},
        "A member's path inside a multi-file output, as the root playlist links it.",
    )
    upload_body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": _obj(
                    {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
                    description="The media as the `file` part. Its type is decided from its bytes.",
                )
            }
        },
    }
    content = {
        "200": {
            "description": "The bytes, with the file's content type.",
            "content": {
                "*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
            },
        },
        "206": {"description": "The requested byte range (`Range` requests on local storage)."},
        "302": {
            "description": "A short-lived download URL on object storage.",
            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
        },
        "304": {"description": "Not modified (conditional requests)."},
        "404": _use("NotFound"),
        "416": _error_response("The requested byte range is outside the file."),
    }
    return {
        "/v1/files": {
            "post": _op(
                "Upload a media file",
                {
                    "201": _json(
                        _ref("File"), "The file, probed and stored.", Location=_location("/v1/files/{id}")
                    ),
                    "413": _error_response(
                        "Over the upload size limit (`payload_too_large`, with `limit`) or the tier's "
                        "storage quota (`storage_quota_exceeded`)."
                    ),
                    "429": _rate_limited(
                        "Too many uploads under way at once for this account, this address or this "
                        "server (`too_many_uploads`), refused before the body is read; or too many "
                        "failed API-key checks (`rate_limited`)."
                    ),
                    "415": _error_response(
                        "The bytes are not a supported media format (`unsupported_format`)."
                    ),
                    "422": _error_response(
                        "No `file` part, an empty file, media that cannot be decoded or is longer than "
                        "the tier allows (`invalid_request`, `invalid_media`, `media_too_large`, "
                        "`media_too_long`)."
                    ),
                },
                tag="files",
                write=True,
                body=upload_body,
                operation_id="uploadFile",
            ),
            "get": _op(
                "List files, newest first",
                {"200": _json(_ref("FileList"), "One page of files."), "422": _use("Invalid")},
                tag="files",
                params=[
                    *_page_params(),
                    _param("kind", "query", {"enum": _UPLOAD_KINDS}, "Only files of this kind."),
                    _param(
                        "origin", "query", {"enum": ["upload", "output"]}, "Only uploads, or job outputs."
                    ),
                    _param(
                        "min_size",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "Only files of at least this many bytes (a multi-file output counts whole).",
                    ),
                    _param(
                        "max_size",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "Only files of fewer than this many bytes.",
                    ),
                ],
                operation_id="listFiles",
            ),
        },
        "/v1/files/{file_id}": {
            "get": _op(
                "Read a file",
                {"200": _json(_ref("File"), "The file."), "404": _use("NotFound")},
                tag="files",
                params=[file_id],
                operation_id="getFile",
            ),
            "delete": _op(
                "Delete a file (and the members of a multi-file output)",
                {
                    "204": {"description": "Deleted."},
                    "404": _use("NotFound"),
                    "409": _error_response(
                        "A member of a multi-file output; delete its root (`part_of_output`)."
                    ),
                },
                tag="files",
                write=True,
                params=[file_id],
                operation_id="deleteFile",
            ),
        },
        "/v1/files/{file_id}/content": {
            "get": _op(
                "Download a file (named after its source and job), or a multi-file output as one zip",
                {
                    **content,
                    "200": {
                        "description": "The bytes, with the file's content type; with `format=zip`, every "
                        "file of the output under one folder named after its source and job, streamed. "
                        "`Content-Disposition` names an output `<source>-<job>.<ext>`.",
                        "content": {
                            "*/*": {
                                "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                            },
                            "application/zip": {
                                "schema": {"type": "string", "contentMediaType": "application/zip"}
                            },
                        },
                    },
                    "422": _use("Invalid"),
                },
                tag="files",
                params=[
                    file_id,
                    _param("format", "query", {"enum": ["zip"]}, "The whole file as one zip archive."),
                ],
                operation_id="downloadFile",
            ),
        },
        "/v1/files/{file_id}/content/{relpath}": {
            "get": _op(
                "Download a member of a multi-file output (such as an HLS rendition)",
                content,
                tag="files",
                params=[file_id, relpath],
                operation_id="downloadFileMember",
            ),
        },
    }


def _upload_schemas() -> dict[str, Schema]:
    upload = {
        "id": {"type": "string", "pattern": "^upl_"},
        "object": {"const": "upload"},
        "protocol": {
            "enum": ["tus", "s3_multipart"],
            "description": "`tus`: send the bytes to `tus_url` with a tus client; `s3_multipart`: PUT "
            "them to the presigned `parts` URLs, then call `complete_url`.",
        },
        "status": {"enum": ["pending", "completed", "failed", "expired", "cancelled"]},
        "filename": {"type": "string", "maxLength": 255},
        "size": {
            "type": "integer",
            "minimum": 1,
            "description": "The declared size, reserved from the quota.",
        },
        "offset": {"type": "integer", "minimum": 0, "description": "Bytes received so far (tus)."},
        "file_id": {"type": ["string", "null"], "description": "The library file, once completed."},
        "error": {
            "anyOf": [_obj({"code": {"type": "string"}}), {"type": "null"}],
            "description": "Why a failed upload failed (`unsupported_format`, `invalid_media`, "
            "`size_mismatch`...).",
        },
        "created_at": _STAMP,
        "expires_at": {
            **_STAMP,
            "description": "When an upload still pending is expired and its bytes removed.",
        },
    }
    tus_url = {"tus_url": {"type": "string", "description": "Where a tus client sends the bytes."}}
    direct = {
        "part_size": {"type": "integer", "minimum": 5 * 1024**2},
        "parts": {
            "type": "array",
            "items": _obj(
                {
                    "number": {"type": "integer", "minimum": 1, "maximum": 10_000},
                    "url": {"type": "string", "description": "PUT this part's bytes here (S3, presigned)."},
                    "size": {"type": "integer", "minimum": 1},
                }
            ),
        },
        "complete_url": {"type": "string", "description": "`POST` here once every part is sent."},
    }
    return {
        "Upload": _obj({**upload, **tus_url}, list(upload), description="An upload arriving in pieces."),
        "UploadCreated": _obj(
            {**upload, **tus_url, **direct},
            list(upload),
            description="A new upload: a tus upload's `tus_url`, or a direct upload's part URLs, valid "
            "until it expires.",
        ),
        "UploadRequest": _obj(
            {
                "filename": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "examples": ["interview.mp4"],
                },
                "size": {"type": "integer", "minimum": 0, "examples": [734003200]},
                "content_type": {"type": "string", "maxLength": 100, "examples": ["video/mp4"]},
            },
            ["filename", "size"],
        ),
        "UploadComplete": _obj(
            {
                "parts": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 10_000,
                    "description": "Each part's number and the ETag S3 answered its PUT with; without "
                    "it, every part S3 holds.",
                    "items": _obj(
                        {
                            "number": {"type": "integer", "minimum": 1, "maximum": 10_000},
                            "etag": {"type": "string", "minLength": 1, "maxLength": 200},
                        }
                    ),
                }
            },
            [],
        ),
    }


_TUS_RESUMABLE = {"required": True, "schema": {"const": "1.0.0"}, "description": "The tus version."}


def _uploads_paths() -> Schema:
    upl_id = _param(
        "upl_id", "path", {**_SEGMENT, "examples": ["upl_0123456789abcdef01234567"]}, "The upload."
    )
    tus_id = _param(
        "tus_id", "path", {**_SEGMENT, "examples": ["upl_0123456789abcdef01234567"]}, "The upload."
    )
    tus_header = _param("Tus-Resumable", "header", {"const": "1.0.0"}, "The tus version.", required=True)
    gone = _error_response(
        "The upload expired, was terminated or failed, or is complete (`upload_expired`, "
        "`upload_terminated`, `upload_failed`, `upload_completed`)."
    )
    locked = _json(
        _ref("Error"),
        "Another request is sending this upload's bytes or completing it (`upload_locked`).",
        **{"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0}}},
    )
    precondition = _json(
        _ref("Error"),
        "No `Tus-Resumable: 1.0.0` (`tus_version_unsupported`).",
        **{"Tus-Version": {"required": True, "schema": {"type": "string"}}},
    )
    bad_header = _error_response(
        "A tus header is missing or malformed (`invalid_tus_request`, with `field`)."
    )
    rejected = _error_response(
        "The bytes are all in, but are not media faktry takes, or are longer than the tier allows, or "
        "are not the declared size: the upload is `failed` with that code (`unsupported_format`, "
        "`invalid_media`, `media_too_large`, `media_too_long`, `size_mismatch`), its bytes removed."
    )
    too_large = _error_response(
        "Over the upload size limit (`payload_too_large`, with `limit`) or the tier's storage quota "
        "(`storage_quota_exceeded`)."
    )
    expires = {
        "required": True,
        "schema": {"type": "string"},
        "description": "When the upload expires (RFC 7231).",
    }
    offset = {"required": True, "schema": {"type": "integer", "minimum": 0}, "description": "Bytes received."}
    return {
        "/v1/uploads": {
            "post": _op(
                "Start an upload of a large file: direct to S3, or tus on local storage",
                {
                    "201": _json(
                        _ref("UploadCreated"),
                        "The upload, its size reserved from the storage quota. On S3 storage, presigned "
                        "URLs for its parts (`protocol: s3_multipart`); elsewhere a tus upload "
                        "(`protocol: tus`, `tus_url`).",
                        Location=_location("/v1/uploads/{id}"),
                    ),
                    "413": too_large,
                    "422": _error_response(
                        "A field is missing or invalid, or the size is 0 (`invalid_media`)."
                    ),
                },
                tag="files",
                write=True,
                body=_json_body(_ref("UploadRequest")),
                operation_id="createUpload",
            ),
        },
        "/v1/uploads/{upl_id}": {
            "get": _op(
                "Read an upload: its status, offset, and file once completed",
                {"200": _json(_ref("Upload"), "The upload."), "404": _use("NotFound")},
                tag="files",
                params=[upl_id],
                operation_id="getUpload",
            ),
            "delete": _op(
                "Abort an upload: its parts and bytes removed, its reserved storage given back",
                {
                    "204": {"description": "Aborted (or ended already)."},
                    "404": _use("NotFound"),
                    "409": _error_response("The upload is a file now; delete the file (`upload_completed`)."),
                    "423": locked,
                },
                tag="files",
                write=True,
                params=[upl_id],
                operation_id="abortUpload",
            ),
        },
        "/v1/uploads/{upl_id}/complete": {
            "post": _op(
                "Complete an upload: its bytes become a library file",
                {
                    "200": _json(_ref("File"), "Completed already: the same file."),
                    "201": _json(
                        _ref("File"), "The file, probed and stored.", Location=_location("/v1/files/{id}")
                    ),
                    "404": _use("NotFound"),
                    "409": _error_response(
                        "Bytes are still missing (`upload_incomplete`, with `offset`): send them and "
                        "complete again; nothing was lost."
                    ),
                    "410": gone,
                    "413": too_large,
                    "422": rejected,
                    "423": locked,
                },
                tag="files",
                write=True,
                params=[upl_id],
                body=_json_body(_ref("UploadComplete"), required=False),
                operation_id="completeUpload",
            ),
        },
        "/v1/uploads/tus": {
            "post": _op(
                "tus: create an upload (`Upload-Length`, `Upload-Metadata` with `filename`, `filetype`). "
                "`OPTIONS` on this path tells the server's tus capabilities, without credentials; "
                "`HEAD` on the upload's URL its `Upload-Offset`",
                {
                    "201": {
                        "description": "Created: send the bytes to `Location` with PATCH.",
                        "headers": {
                            "Location": _location("/v1/uploads/tus/{id}"),
                            "Tus-Resumable": _TUS_RESUMABLE,
                            "Upload-Expires": expires,
                        },
                    },
                    "400": bad_header,
                    "412": precondition,
                    "413": too_large,
                    "422": _error_response("An empty file (`invalid_media`)."),
                },
                tag="files",
                write=True,
                params=[
                    tus_header,
                    _param(
                        "Upload-Length",
                        "header",
                        {"type": "integer", "minimum": 0},
                        "The size.",
                        required=True,
                    ),
                    _param(
                        "Upload-Metadata",
                        "header",
                        {"type": "string", "examples": ["filename aW50ZXJ2aWV3Lm1wNA=="]},
                        "Comma-separated `key base64(value)` pairs: `filename`, `filetype`.",
                    ),
                ],
                operation_id="createTusUpload",
            ),
        },
        "/v1/uploads/tus/{tus_id}": {
            "patch": _op(
                "tus: send bytes from `Upload-Offset`; the last byte completes the upload",
                {
                    "204": {
                        "description": "Kept: the new offset. The request that brought the last byte "
                        "carries `Faktry-File-Id`, the library file.",
                        "headers": {
                            "Upload-Offset": offset,
                            "Upload-Expires": expires,
                            "Tus-Resumable": _TUS_RESUMABLE,
                            "Faktry-File-Id": {"schema": {"type": "string"}, "description": "The new file."},
                        },
                    },
                    "400": bad_header,
                    "404": _use("NotFound"),
                    "409": _error_response(
                        "`Upload-Offset` is not the upload's (`offset_mismatch`, with `offset`): ask HEAD."
                    ),
                    "410": gone,
                    "412": precondition,
                    "413": _error_response("More bytes than the upload has left (`payload_too_large`)."),
                    "415": _error_response(
                        "Not `Content-Type: application/offset+octet-stream` (`unsupported_media_type`)."
                    ),
                    "422": rejected,
                    "423": locked,
                    "429": _rate_limited(
                        "Too many uploads under way at once for this account, this address or this "
                        "server (`too_many_uploads`); or too many failed API-key checks (`rate_limited`)."
                    ),
                    "460": _error_response(
                        "The body does not match `Upload-Checksum` (`checksum_mismatch`): none of it counts."
                    ),
                },
                tag="files",
                write=True,
                params=[
                    tus_id,
                    tus_header,
                    _param(
                        "Upload-Offset",
                        "header",
                        {"type": "integer", "minimum": 0},
                        "Where the bytes start.",
                        required=True,
                    ),
                    _param(
                        "Upload-Checksum",
                        "header",
                        {"type": "string", "examples": ["sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="]},
                        "The body's checksum: `sha1`, `md5` or `sha256`, and the base64 digest.",
                    ),
                ],
                body={
                    "required": True,
                    "content": {
                        "application/offset+octet-stream": {
                            "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                        }
                    },
                },
                operation_id="sendTusBytes",
            ),
            "delete": _op(
                "tus: terminate an upload (its bytes removed, its storage given back)",
                {
                    "204": {"description": "Terminated.", "headers": {"Tus-Resumable": _TUS_RESUMABLE}},
                    "404": _use("NotFound"),
                    "410": gone,
                    "412": precondition,
                    "423": locked,
                },
                tag="files",
                write=True,
                params=[tus_id, tus_header],
                operation_id="terminateTusUpload",
            ),
        },
    }


def _invalid_job(*, moderated: bool) -> Schema:
    return _error_response(
        "Invalid body, unknown job type, model or parameter, an input the type does not take or that "
        "is longer than the tier allows (`invalid_request`, `unknown_job_type`, `unknown_model`, "
        "`file_not_found`, `unsupported_input`, `media_too_long`)"
        + (
            "; a prompt blocked by moderation (`content_blocked`, with `category`); a reused "
            "`Idempotency-Key` with another body (`idempotency_key_reused`)."
            if moderated
            else "."
        )
    )


def _jobs_paths() -> Schema:
    job_id = _param("job_id", "path", {**_SEGMENT, "examples": ["job_0123456789abcdef01234567"]}, "The job.")
    job = _json(_ref("Job"), "The job.")
    return {
        "/v1/jobs": {
            "post": _op(
                "Submit a job",
                {
                    "202": _json(
                        _ref("Job"),
                        "Accepted and queued (or, for a repeated `Idempotency-Key`, the job it made).",
                        Location=_location("/v1/jobs/{id}"),
                    ),
                    "402": _error_response(
                        "Not enough credits for the job's price, or an account in debt; nothing was held "
                        "(`insufficient_credits`, `account_in_debt`)."
                    ),
                    "422": _invalid_job(moderated=True),
                    "429": _rate_limited("Over the tier's submit rate (`rate_limited`)."),
                    "503": _error_response(
                        "A borderline prompt while the moderation service cannot be reached; nothing "
                        "was held (`moderation_unavailable`)."
                    ),
                },
                tag="jobs",
                write=True,
                params=[
                    _idempotency_key(
                        200, "Repeat a submission safely: the same key and body return the same job."
                    )
                ],
                body=_json_body(_ref("JobSubmission")),
                operation_id="submitJob",
            ),
            "get": _op(
                "List jobs, newest first",
                {"200": _json(_ref("JobList"), "One page of jobs."), "422": _use("Invalid")},
                tag="jobs",
                params=[
                    *_page_params(),
                    _param("status", "query", {"enum": list(STATUSES)}, "Only jobs in this status."),
                ],
                operation_id="listJobs",
            ),
        },
        "/v1/jobs/batch": {
            "post": _op(
                "Submit up to 1,000 jobs at once: all of them, or none",
                {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["object", "data"],
                            "properties": {
                                "object": {"const": "list"},
                                "data": {"type": "array", "items": _ref("Job")},
                            },
                        },
                        "Every job accepted and queued, in the order sent, each with its own hold (or, "
                        "for a repeated `Idempotency-Key`, the jobs it made).",
                    ),
                    "402": _error_response(
                        "Not enough credits for the batch's total, or an account in debt; nothing was "
                        "held (`insufficient_credits`, `account_in_debt`)."
                    ),
                    "422": _error_response(
                        "A malformed batch, or one or more refused jobs (`batch_refused`, with `items`: "
                        "each refused job's `index`, `field`, `code` and `message`); nothing was "
                        "submitted."
                    ),
                    "429": _rate_limited("Over the tier's submit rate; a batch spends one per job."),
                },
                tag="jobs",
                write=True,
                params=[
                    _idempotency_key(
                        180, "Repeat a batch safely: the same key and body return the same jobs."
                    )
                ],
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["jobs"],
                        "additionalProperties": False,
                        "properties": {
                            "jobs": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 1000,
                                "items": _ref("JobSubmission"),
                            },
                            "webhook": openapi_webhooks.job_webhook(),
                        },
                    }
                ),
                operation_id="submitJobBatch",
            ),
        },
        "/v1/jobs/quote": {
            "post": _op(
                "Price a job without submitting it",
                {
                    "200": _json(_ref("Quote"), "The price and whether the credits cover it."),
                    "422": _invalid_job(moderated=False),
                },
                tag="jobs",
                write=True,
                body=_json_body(_ref("JobSubmission")),
                operation_id="quoteJob",
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "Read a job",
                {"200": job, "404": _use("NotFound")},
                tag="jobs",
                params=[job_id],
                operation_id="getJob",
            ),
        },
        "/v1/jobs/{job_id}/events": {
            "get": _op(
                "A job's history, oldest first",
                {"200": _json(_ref("JobEventList"), "Every event of the job."), "404": _use("NotFound")},
                tag="jobs",
                params=[job_id],
                operation_id="listJobEvents",
            ),
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a job",
                {
                    "202": _json(
                        _ref("Job"),
                        "A queued job is canceled at once; a running one gets `cancel_requested` "
                        "and stops within a heartbeat.",
                    ),
                    "404": _use("NotFound"),
                    "409": _error_response("The job has already finished (`job_finished`)."),
                },
                tag="jobs",
                write=True,
                params=[job_id],
                operation_id="cancelJob",
            ),
        },
    }


def _workflow_graph() -> Schema:
    """A workflow graph (docs/workflows.md). The schema gives its shape; `graph.parse` checks
    the rest (types, params, references, kinds, cycles) and answers every problem at once."""
    name = {"type": "string", "pattern": workflow_graph.NAME.pattern}
    reference = {
        "oneOf": [
            _obj({"input": {"type": "string", "description": "A run input's name."}}),
            _obj(
                {
                    "node": {"type": "string", "description": "A node's name."},
                    "output": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Which of its outputs (of all its items', for a mapped node); "
                        "without it, all of them (a list: map over the field).",
                    },
                },
                ["node"],
            ),
        ]
    }
    node = _obj(
        {
            "type": {"enum": list(jobtypes.JOB_TYPES)},
            "params": {"type": "object", "description": "The job type's params, as for `POST /v1/jobs`."},
            "input": {
                "type": "object",
                "description": "The job type's input fields: a value (a prompt, one of your file ids) or "
                "a reference to a run input or another node's outputs.",
                "additionalProperties": {"anyOf": [reference, {"not": {"type": "object"}}]},
            },
            "map": {"type": "string", "description": "An input field bound to a list: one job per item."},
        },
        ["type"],
    )
    run_input = _obj(
        {
            "kind": {"enum": list(workflow_graph.INPUT_KINDS), "default": "any"},
            "list": {"type": "boolean", "default": False, "description": "Many files (map over it)."},
        },
        [],
    )
    return _obj(
        {
            "inputs": {"type": "object", "propertyNames": name, "additionalProperties": run_input},
            "nodes": {
                "type": "object",
                "propertyNames": name,
                "minProperties": 1,
                "maxProperties": workflow_graph.MAX_NODES,
                "additionalProperties": node,
                "description": "At most the tier's `workflow_max_nodes`.",
            },
        },
        ["nodes"],
        examples=[
            {
                "inputs": {"photo": {"kind": "image"}},
                "nodes": {
                    "small": {
                        "type": "image.resize",
                        "params": {"width": 640, "height": 360},
                        "input": {"file_id": {"input": "photo"}},
                    }
                },
            }
        ],
    )


def _workflow_schemas() -> dict[str, Schema]:
    version = _obj({"version": {"type": "integer", "minimum": 1}, "created_at": _STAMP})
    workflow = _obj(
        {
            "id": {"type": "string", "pattern": "^wfl_"},
            "object": {"const": "workflow"},
            "name": {"type": "string", "maxLength": workflow_store.MAX_NAME},
            "description": {"type": "string", "maxLength": workflow_store.MAX_DESCRIPTION},
            "version": {"type": "integer", "minimum": 1, "description": "The current version."},
            "created_at": _STAMP,
            "updated_at": _STAMP,
            "graph": {**_ref("WorkflowGraph"), "description": "The version's graph (single reads)."},
            "versions": {"type": "array", "items": version, "description": "Newest first (single reads)."},
        },
        ["id", "object", "name", "description", "version", "created_at", "updated_at"],
    )
    node_quote = _obj(
        {
            "items": {"type": "integer", "minimum": 0, "description": "Jobs the node runs (its fan-out)."},
            "unit_price": {"type": "integer", "minimum": 0, "description": "One item (the dearest)."},
            "price": {"type": "integer", "minimum": 0},
        }
    )
    template = _obj(
        {
            "object": {"const": "workflow_template"},
            "id": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "graph": _ref("WorkflowGraph"),
        }
    )
    return {
        "WorkflowGraph": _workflow_graph(),
        "Workflow": workflow,
        "WorkflowList": _list_of(_ref("Workflow"), paged=True),
        "WorkflowQuote": _obj(
            {
                "object": {"const": "workflow_quote"},
                "price": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The run's hold: every node's price.",
                },
                "currency": {"const": "millicredits"},
                "nodes": {"type": "object", "additionalProperties": node_quote},
                "available": {"type": "integer", "minimum": 0},
                "sufficient": {
                    "type": "boolean",
                    "description": "Whether starting the run now would be accepted.",
                },
            }
        ),
        "WorkflowTemplateList": _list_of(template, paged=False),
    }


def _streams_paths() -> Schema:
    job_id = _param("job_id", "path", {**_SEGMENT, "examples": ["job_0123456789abcdef01234567"]}, "The job.")
    event_id = {"type": "string", "pattern": r"^[0-9]{1,18}(-[0-9]{1,18})?$", "examples": ["1234-56"]}
    resume = [
        _param(
            "Last-Event-ID",
            "header",
            event_id,
            "The `id` of the last event received: the stream resumes after it.",
        ),
        _param("last_event_id", "query", event_id, "The same, for clients that cannot send the header."),
    ]
    stream = {
        "description": (
            "Server-sent events (`text/event-stream`): a `retry:` field, then each event as `id:` "
            "(its resume position) and `data:` (one JSON object: `type`, `job.<kind>` or "
            "`workflow_run.<kind>`, `sequence` and the event's fields), with `: keep-alive` "
            'comments while nothing happens. See docs/api.md, "Event streams".'
        ),
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "One event of the stream.",
                    "properties": {
                        "id": {**event_id, "description": "Send it back as `Last-Event-ID` to resume."},
                        "data": {
                            "type": "string",
                            "description": "A JSON object: `type` (`job.succeeded`...), `sequence`, ...",
                        },
                    },
                }
            }
        },
    }
    full = _rate_limited("This server holds as many streams as it may; try again (`too_many_streams`).")
    return {
        "/v1/jobs/{job_id}/events/stream": {
            "get": _op(
                "A job's events as they happen, from its first",
                {"200": stream, "404": _use("NotFound"), "422": _use("Invalid"), "503": full},
                tag="jobs",
                params=[job_id, *resume],
                operation_id="streamJobEvents",
            ),
        },
        "/v1/events/stream": {
            "get": _op(
                "Every event of the tenant's jobs and workflow runs as they happen, from now",
                {"200": stream, "422": _use("Invalid"), "503": full},
                tag="jobs",
                params=resume,
                operation_id="streamEvents",
            ),
        },
    }


def _workflows_paths() -> Schema:
    workflow_id = _param(
        "workflow_id", "path", {**_SEGMENT, "examples": ["wfl_0123456789abcdef01234567"]}, "The workflow."
    )
    invalid = _error_response(
        "The body or the graph is invalid: every problem at once (`invalid_workflow`, with `problems`, "
        "each naming its `node` and `field`), or a bad field of the body (`invalid_request`, "
        "`unknown_field`)."
    )
    inputs = {
        "type": "object",
        "description": "Run input name -> a file id, or a list of file ids for a list input.",
        "additionalProperties": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        },
    }
    return {
        "/v1/workflows": {
            "post": _op(
                "Save a workflow (version 1)",
                {
                    "201": _json(_ref("Workflow"), "Saved.", Location=_location("/v1/workflows/{id}")),
                    "409": _error_response("You have a workflow of that name (`workflow_name_taken`)."),
                    "422": invalid,
                },
                tag="workflows",
                write=True,
                body=_json_body(
                    _obj(
                        {
                            "name": {"type": "string", "minLength": 1, "maxLength": workflow_store.MAX_NAME},
                            "description": {"type": "string", "maxLength": workflow_store.MAX_DESCRIPTION},
                            "graph": _ref("WorkflowGraph"),
                        },
                        ["name", "graph"],
                    )
                ),
                operation_id="createWorkflow",
            ),
            "get": _op(
                "List workflows, newest first",
                {"200": _json(_ref("WorkflowList"), "One page of workflows."), "422": _use("Invalid")},
                tag="workflows",
                params=_page_params(),
                operation_id="listWorkflows",
            ),
        },
        "/v1/workflows/quote": {
            "post": _op(
                "Price a run of a graph or a saved workflow for given inputs (nothing is held)",
                {
                    "200": _json(_ref("WorkflowQuote"), "The price, node by node, fan-out included."),
                    "404": _error_response("No such workflow, or no such version of it."),
                    "422": invalid,
                },
                tag="workflows",
                write=True,
                body=_json_body(
                    _obj(
                        {
                            "graph": _ref("WorkflowGraph"),
                            "workflow_id": {"type": "string"},
                            "version": {"type": "integer", "minimum": 1},
                            "inputs": inputs,
                        },
                        [],
                        description="Either `graph` or `workflow_id` (with `version`, else the current one).",
                    )
                ),
                operation_id="quoteWorkflow",
            ),
        },
        "/v1/workflows/{workflow_id}": {
            "get": _op(
                "Read a workflow: a version's graph (the current one by default) and every version",
                {
                    "200": _json(_ref("Workflow"), "The workflow."),
                    "404": _use("NotFound"),
                    "422": _use("Invalid"),
                },
                tag="workflows",
                params=[
                    workflow_id,
                    _param("version", "query", {"type": "integer", "minimum": 1}, "Which version's graph."),
                ],
                operation_id="getWorkflow",
            ),
            "delete": _op(
                "Delete a workflow and its versions (its runs stay in the history)",
                {"204": {"description": "Deleted."}, "404": _use("NotFound")},
                tag="workflows",
                write=True,
                params=[workflow_id],
                operation_id="deleteWorkflow",
            ),
        },
        "/v1/workflows/{workflow_id}/versions": {
            "post": _op(
                "Save a new version of a workflow and make it current (versions never change)",
                {
                    "201": _json(
                        _ref("Workflow"),
                        "The workflow at its new version.",
                        Location=_location("/v1/workflows/{id}?version={version}"),
                    ),
                    "404": _use("NotFound"),
                    "409": _error_response("Another version was saved meanwhile (`version_conflict`)."),
                    "422": invalid,
                },
                tag="workflows",
                write=True,
                params=[workflow_id],
                body=_json_body(
                    _obj(
                        {
                            "graph": _ref("WorkflowGraph"),
                            "description": {"type": "string", "maxLength": workflow_store.MAX_DESCRIPTION},
                        },
                        ["graph"],
                    )
                ),
                operation_id="addWorkflowVersion",
            ),
        },
        "/v1/workflow-templates": {
            "get": _op(
                "Ready-made workflows to save or adapt",
                {"200": _json(_ref("WorkflowTemplateList"), "Every template.")},
                tag="workflows",
                operation_id="listWorkflowTemplates",
            ),
        },
    }


def _workflow_run_schemas() -> dict[str, Schema]:
    """A run and its steps as `pipelines.workflows.runs.to_dict` writes them."""
    step_statuses = ["waiting", "queued", "running", "succeeded", "failed", "canceled", "skipped", "reused"]
    step = _obj(
        {
            "item": {
                "type": "integer",
                "minimum": 0,
                "description": "Its element of a mapped list; 0 otherwise.",
            },
            "status": {"enum": step_statuses},
            "attempt": {"type": "integer", "minimum": 1, "description": "The run attempt that last ran it."},
            "job_id": {"type": ["string", "null"], "description": "Its job, once created."},
            "outputs": {"type": "array", "items": {"type": "string"}, "description": "File ids, in order."},
            "cost": {"type": "integer", "minimum": 0, "description": "Millicredits charged (0 when reused)."},
            "error": {
                "anyOf": [
                    _obj({"code": {"type": "string"}, "message": {"type": ["string", "null"]}}),
                    {"type": "null"},
                ]
            },
            "reused_from": {
                "type": ["string", "null"],
                "description": "The earlier step whose outputs it took.",
            },
            "started_at": _NULLABLE_STAMP,
            "finished_at": _NULLABLE_STAMP,
        }
    )
    node = _obj(
        {
            "status": {"enum": step_statuses},
            "items": {"type": "integer", "minimum": 0},
            "cost": {"type": "integer", "minimum": 0},
            "steps": {"type": "array", "items": step},
        }
    )
    run_statuses = ["running", "succeeded", "failed", "canceled"]
    run = _obj(
        {
            "id": {"type": "string", "pattern": "^run_"},
            "object": {"const": "workflow_run"},
            "workflow_id": {"type": ["string", "null"], "description": "Null for an inline run."},
            "version": {"type": ["integer", "null"]},
            "status": {"enum": run_statuses},
            "attempt": {"type": "integer", "minimum": 1, "description": "1, and one more per retry."},
            "reuse": {"type": "boolean"},
            "inputs": {"type": "object"},
            "cost": _obj(
                {
                    "quoted": {"type": "integer", "minimum": 0, "description": "The latest attempt's hold."},
                    "charged": {"type": "integer", "minimum": 0, "description": "Charged for its steps."},
                }
            ),
            "error": {"anyOf": [_obj({"code": {"type": "string"}}), {"type": "null"}]},
            "created_at": _STAMP,
            "started_at": _NULLABLE_STAMP,
            "finished_at": _NULLABLE_STAMP,
            "urls": _obj({k: {"type": "string"} for k in ("self", "events", "cancel", "retry")}),
            "nodes": {
                "type": "object",
                "additionalProperties": node,
                "description": "Each node's steps (single reads, not lists).",
            },
        },
        [
            "id", "object", "workflow_id", "version", "status", "attempt", "reuse", "inputs", "cost",
            "error", "created_at", "started_at", "finished_at", "urls",
        ],
    )  # fmt: skip
    event = _obj(
        {
            "id": {"type": "integer", "description": "Increasing: the events' order."},
            "at": _STAMP,
            "kind": {
                "type": "string",
                "examples": [
                    "started",
                    "step_queued",
                    "step_succeeded",
                    "step_skipped",
                    "retried",
                    "succeeded",
                ],
            },
            "node": {"type": ["string", "null"]},
            "item": {"type": ["integer", "null"]},
            "data": {"type": "object"},
        }
    )
    return {
        "WorkflowRun": run,
        "WorkflowRunList": _list_of(_ref("WorkflowRun"), paged=True),
        "WorkflowRunEventList": _obj(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": event},
                "next_after": {
                    "type": ["integer", "null"],
                    "description": "Pass as `after` for the next page; null on the last page.",
                },
            }
        ),
    }


def _workflow_runs_paths() -> Schema:
    workflow_id = _param(
        "workflow_id", "path", {**_SEGMENT, "examples": ["wfl_0123456789abcdef01234567"]}, "The workflow."
    )
    run_id = _param(
        "run_id", "path", {**_SEGMENT, "examples": ["run_0123456789abcdef01234567"]}, "The workflow run."
    )
    run = _json(_ref("WorkflowRun"), "The run.")
    inputs = {
        "type": "object",
        "description": "Run input name -> a file id, or a list of file ids for a list input.",
        "additionalProperties": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        },
    }
    reuse = {
        "type": "boolean",
        "default": False,
        "description": "Reuse the outputs of a succeeded step of an earlier run with the same type, "
        "params and input files (by checksum), at no cost.",
    }
    started = _json(
        _ref("WorkflowRun"),
        "Started: the whole quote is held and the first steps are queued (or, for a repeated "
        "`Idempotency-Key`, the run it started).",
        Location=_location("/v1/workflow-runs/{id}"),
    )
    refused = {
        "402": _error_response(
            "Not enough credits for the run's quote, or an account in debt; nothing was held or started "
            "(`insufficient_credits`, `account_in_debt`)."
        ),
        "422": _error_response(
            "The graph or its inputs were refused, every problem at once (`invalid_workflow`, with "
            "`problems`, each naming its `node` and `field`), a bad field of the body, a blocked "
            "prompt, or an `Idempotency-Key` used with another body (`idempotency_key_reused`)."
        ),
        "429": _rate_limited("Over the tier's submit rate (`rate_limited`); a run spends one."),
        "503": _error_response(
            "A borderline prompt while the moderation service cannot be reached; nothing was held "
            "(`moderation_unavailable`)."
        ),
    }
    key = _idempotency_key(200, "Start a run safely: the same key and body return the same run.")
    empty = _json_body(_obj({}, []), required=False)
    return {
        "/v1/workflows/{workflow_id}/runs": {
            "post": _op(
                "Run a saved workflow (its current version, or `version`)",
                {
                    "202": started,
                    "404": _error_response("No such workflow, or no such version of it."),
                    **refused,
                },
                tag="workflows",
                write=True,
                params=[workflow_id, key],
                body=_json_body(
                    _obj(
                        {
                            "inputs": inputs,
                            "version": {"type": "integer", "minimum": 1},
                            "reuse": reuse,
                            "webhook": openapi_webhooks.job_webhook(),
                        },
                        [],
                    )
                ),
                operation_id="runWorkflow",
            ),
            "get": _op(
                "List a workflow's runs, newest first",
                {
                    "200": _json(_ref("WorkflowRunList"), "One page of runs (without their steps)."),
                    "404": _use("NotFound"),
                    "422": _use("Invalid"),
                },
                tag="workflows",
                params=[workflow_id, *_page_params()],
                operation_id="listWorkflowRuns",
            ),
        },
        "/v1/workflow-runs": {
            "post": _op(
                "Run a graph sent with the request",
                {"202": started, **refused},
                tag="workflows",
                write=True,
                params=[key],
                body=_json_body(
                    _obj(
                        {
                            "graph": _ref("WorkflowGraph"),
                            "inputs": inputs,
                            "reuse": reuse,
                            "webhook": openapi_webhooks.job_webhook(),
                        },
                        ["graph"],
                    )
                ),
                operation_id="runInlineWorkflow",
            ),
        },
        "/v1/workflow-runs/{run_id}": {
            "get": _op(
                "Read a run: its status, money, and each node's steps (job, outputs, cost, timings)",
                {"200": run, "404": _use("NotFound")},
                tag="workflows",
                params=[run_id],
                operation_id="getWorkflowRun",
            ),
        },
        "/v1/workflow-runs/{run_id}/events": {
            "get": _op(
                "A run's events, in order",
                {
                    "200": _json(_ref("WorkflowRunEventList"), "One page of events."),
                    "404": _use("NotFound"),
                    "422": _use("Invalid"),
                },
                tag="workflows",
                params=[
                    run_id,
                    _param(
                        "after", "query", {"type": "integer", "minimum": 0}, "Events after this event id."
                    ),
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": pagination.MAX_LIMIT, "default": 100},
                        "Page size.",
                    ),
                ],
                operation_id="listWorkflowRunEvents",
            ),
        },
        "/v1/workflow-runs/{run_id}/cancel": {
            "post": _op(
                "Cancel a run: waiting steps never start, queued and running jobs are canceled, every hold "
                "is released",
                {
                    "200": run,
                    "404": _use("NotFound"),
                    "409": _error_response("The run has already finished (`workflow_run_finished`)."),
                    "422": _use("Invalid"),
                },
                tag="workflows",
                write=True,
                params=[run_id],
                body=empty,
                operation_id="cancelWorkflowRun",
            ),
        },
        "/v1/workflow-runs/{run_id}/retry": {
            "post": _op(
                "Retry a failed run from its failed steps (succeeded steps keep their outputs and cost "
                "nothing again)",
                {
                    "202": _json(_ref("WorkflowRun"), "Running again, under a new hold for what reruns."),
                    "402": refused["402"],
                    "404": _use("NotFound"),
                    "409": _error_response("Only a failed run can be retried (`workflow_run_not_failed`)."),
                    "422": _error_response(
                        "An input file is gone, or the graph no longer checks (`invalid_workflow`)."
                    ),
                },
                tag="workflows",
                write=True,
                params=[run_id],
                body=empty,
                operation_id="retryWorkflowRun",
            ),
        },
    }


def _brand_schemas() -> dict[str, Schema]:
    """A brand as `pipelines.brands.store.to_dict` writes it, its body (`brand_schema.BODY`, the
    schema the API checks bodies against), and its JSON export."""
    parts = brand_schema.BODY["properties"]
    text = {"type": "string"}
    stored = {
        "id": {"type": "string", "pattern": "^brd_"},
        "object": {"const": "brand"},
        "name": parts["name"],
        "description": text,
        "tagline": text,
        "logo_file_id": {"type": ["string", "null"]},
        "colors": _obj(
            {
                role: {"type": ["string", "null"], "pattern": "^#[0-9a-f]{6}$"}
                for role in brand_schema.COLOR_ROLES
            }
        ),
        "typography": _obj(
            {
                "heading_font": {"type": ["string", "null"]},
                "body_font": {"type": ["string", "null"]},
                "pairings": {"type": "array", "items": _obj({"heading": text, "body": text, "use": text})},
            }
        ),
        "voice": _obj(
            {
                "mission": text,
                "vision": text,
                "values": {"type": "array", "items": text},
                "personality": text,
            }
        ),
        "audience": text,
        "personas": {
            "type": "array",
            "items": _obj(
                {
                    "name": text,
                    "role": text,
                    "description": text,
                    "goals": {"type": "array", "items": text},
                    "pain_points": {"type": "array", "items": text},
                }
            ),
        },
        "mood_file_ids": {"type": "array", "items": text},
        "design_notes": text,
        "created_at": _STAMP,
        "updated_at": _STAMP,
    }
    file_ref = _obj(
        {
            "id": text,
            "name": {"type": ["string", "null"], "description": "The file's name in the library."},
            "content_type": text,
            "url": text,
            "missing": {"type": "boolean", "description": "The file has been deleted from the library."},
        },
        ["id", "name", "missing"],
    )
    return {
        "Brand": _obj(stored, description="Brand guidelines (docs/brands.md)."),
        "BrandBody": copy.deepcopy(brand_schema.BODY),
        "BrandList": _list_of(_ref("Brand"), paged=True),
        "BrandExport": _obj(
            {
                **stored,
                "object": {"const": "brand_export"},
                "exported_at": _STAMP,
                "logo": {"anyOf": [file_ref, {"type": "null"}]},
                "mood_images": {"type": "array", "items": file_ref},
            }
        ),
    }


def _brands_paths() -> Schema:
    brand_id = _param(
        "brand_id", "path", {**_SEGMENT, "examples": ["brd_0123456789abcdef01234567"]}, "The brand."
    )
    invalid = _error_response(
        "A field is refused, named by `field` with its path (`colors.primary`, `personas.0.name`): "
        "an unknown field (`unknown_field`), a value the schema refuses (`invalid_request`), a logo "
        "or mood image that is not one of your library's files (`file_not_found`, the same for "
        "another tenant's file) or not an image (`not_an_image`)."
    )
    taken = _error_response("You have a brand of that name (`brand_name_taken`).")
    create_body = {**copy.deepcopy(brand_schema.BODY), "required": ["name"]}
    return {
        "/v1/brands": {
            "post": _op(
                "Create brand guidelines",
                {
                    "201": _json(_ref("Brand"), "Created.", Location=_location("/v1/brands/{id}")),
                    "409": taken,
                    "422": invalid,
                },
                tag="brands",
                write=True,
                body=_json_body(create_body),
                operation_id="createBrand",
            ),
            "get": _op(
                "List brands, newest first",
                {"200": _json(_ref("BrandList"), "One page of brands."), "422": _use("Invalid")},
                tag="brands",
                params=_page_params(),
                operation_id="listBrands",
            ),
        },
        "/v1/brands/{brand_id}": {
            "get": _op(
                "Read a brand",
                {"200": _json(_ref("Brand"), "The brand."), "404": _use("NotFound")},
                tag="brands",
                params=[brand_id],
                operation_id="getBrand",
            ),
            "patch": _op(
                "Change a brand: each field sent replaces the brand's, except `colors`, `typography` "
                "and `voice`, whose keys are merged in",
                {
                    "200": _json(_ref("Brand"), "The changed brand."),
                    "404": _use("NotFound"),
                    "409": taken,
                    "422": invalid,
                },
                tag="brands",
                write=True,
                params=[brand_id],
                body=_json_body(_ref("BrandBody")),
                operation_id="updateBrand",
            ),
            "delete": _op(
                "Delete a brand (its library files stay)",
                {"204": {"description": "Deleted."}, "404": _use("NotFound")},
                tag="brands",
                write=True,
                params=[brand_id],
                operation_id="deleteBrand",
            ),
        },
        "/v1/brands/{brand_id}/export": {
            "get": _op(
                "Export a brand: a Markdown brand book, or the whole brand as JSON with its files named",
                {
                    "200": {
                        "description": "The export, as an attachment.",
                        "headers": {
                            "Content-Disposition": {"required": True, "schema": {"type": "string"}},
                        },
                        "content": {
                            JSON: {"schema": _ref("BrandExport")},
                            "text/markdown": {"schema": {"type": "string"}},
                        },
                    },
                    "404": _use("NotFound"),
                    "422": _use("Invalid"),
                },
                tag="brands",
                params=[
                    brand_id,
                    _param(
                        "format", "query", {"enum": ["json", "md"], "default": "json"}, "JSON or Markdown."
                    ),
                ],
                operation_id="exportBrand",
            ),
        },
    }


def _gallery_schemas() -> dict[str, Schema]:
    """An entry as `pipelines.gallery.store.public_dict` writes it, and what staff removal
    answers."""
    public = {
        "object": {"const": "gallery_entry"},
        "id": {"type": "string", "pattern": "^gal_", "description": "The entry's own public id."},
        "kind": {"enum": list(gallery.KINDS)},
        "content_type": {"type": "string"},
        "media_url": {
            "type": "string",
            "description": "The output, public and cacheable: `/gallery/media/{id}`.",
        },
        "page_url": {"type": "string", "description": "The entry's public page: `/gallery/{id}`."},
        "category": {"enum": list(gallery.CATEGORIES)},
        "display_name": {"type": "string", "description": "The submitter, as they chose to be named."},
        "prompt": {"type": "string"},
        "job_type": {"enum": list(gallery.PUBLISHABLE)},
        "model": {"type": "string"},
        "params": {"type": "object", "description": "The generation parameters besides `model`."},
        "created_at": _STAMP,
    }
    return {
        "GalleryEntry": _obj(
            public, description="A published entry of the prompt gallery (docs/gallery.md)."
        ),
        "GalleryList": _list_of(_ref("GalleryEntry"), paged=True),
        "GalleryRemoval": _obj(
            {
                **public,
                "status": {"const": "removed"},
                "removed_reason": {"type": "string"},
                "removed_at": _STAMP,
            },
            description="A gallery entry staff removed.",
        ),
    }


def _gallery_paths() -> Schema:
    entry_id = _param(
        "entry_id", "path", {**_SEGMENT, "examples": ["gal_0123456789abcdef01234567"]}, "The gallery entry."
    )
    unknown = _error_response(
        "No published entry of that id (`gallery_entry_not_found`): unpublished, removed and unknown "
        "entries look the same."
    )
    publish_body = _obj(
        {
            "job_id": {"type": "string", "description": "A succeeded generation job of yours."},
            "category": {"enum": list(gallery.CATEGORIES)},
            "display_name": {
                "type": "string",
                "minLength": 1,
                "maxLength": gallery.MAX_DISPLAY_NAME,
                "description": "Shown publicly as the submitter.",
            },
        }
    )
    return {
        "/v1/gallery": {
            "get": _op(
                "The public prompt gallery: published entries, newest first (no credentials needed)",
                {"200": _json(_ref("GalleryList"), "One page of entries."), "422": _use("Invalid")},
                tag="gallery",
                public=True,
                params=[
                    *_page_params(),
                    _param("category", "query", {"enum": list(gallery.CATEGORIES)}, "Only this category."),
                    _param(
                        "model",
                        "query",
                        {"type": "string", "maxLength": gallery.MAX_MODEL},
                        "Only this model.",
                    ),
                    _param("kind", "query", {"enum": list(gallery.KINDS)}, "Only images, videos or audio."),
                ],
                operation_id="listGallery",
            ),
            "post": _op(
                "Publish a succeeded generation job to the gallery; its prompt passes moderation again",
                {
                    "201": _json(_ref("GalleryEntry"), "Published.", Location=_location("/v1/gallery/{id}")),
                    "404": _error_response("No such job of yours (`job_not_found`)."),
                    "409": _error_response(
                        "The job has not succeeded (`job_not_succeeded`), is in the gallery already "
                        "(`already_published`), or its output was deleted (`output_missing`)."
                    ),
                    "422": _error_response(
                        "A field is refused (`field` names it); the job is not a generation job with a "
                        "prompt and one image, video or audio output (`not_publishable`); or the prompt "
                        "was blocked by moderation (`content_blocked`, with `category`): nothing was "
                        "published."
                    ),
                    "503": _error_response(
                        "A borderline prompt while the moderation service cannot be reached "
                        "(`moderation_unavailable`); nothing was published."
                    ),
                },
                tag="gallery",
                write=True,
                body=_json_body(publish_body),
                operation_id="publishToGallery",
            ),
        },
        "/v1/gallery/{entry_id}": {
            "get": _op(
                "A published gallery entry (no credentials needed)",
                {"200": _json(_ref("GalleryEntry"), "The entry."), "404": unknown},
                tag="gallery",
                public=True,
                params=[entry_id],
                operation_id="getGalleryEntry",
            ),
            "delete": _op(
                "Unpublish one of your entries (published or removed by staff): the entry and its "
                "public copy go; the job and its output stay in your library",
                {"204": {"description": "Unpublished."}, "404": _use("NotFound")},
                tag="gallery",
                write=True,
                params=[entry_id],
                operation_id="unpublishGalleryEntry",
            ),
        },
        "/v1/admin/gallery/{entry_id}/remove": {
            "post": _op(
                "Remove a gallery entry for a policy violation, with the reason kept in the moderation "
                "log (staff only)",
                {
                    "200": _json(_ref("GalleryRemoval"), "Removed (or removed already: nothing changed)."),
                    "403": _error_response(_STAFF_WRITE_FORBIDDEN),
                    "404": _error_response("No such gallery entry (`gallery_entry_not_found`)."),
                    "422": _use("Invalid"),
                },
                tag="admin",
                write=True,
                params=[entry_id],
                body=_json_body(
                    _obj({"reason": {"type": "string", "minLength": 1, "maxLength": gallery.MAX_REASON}})
                ),
                operation_id="removeGalleryEntry",
            ),
        },
    }


def _project_schemas() -> dict[str, Schema]:
    """A project as `pipelines.projects.store.to_dict` writes it, its body
    (`project_schema.BODY`, the schema the API checks bodies against), what its timeline and
    quote answer."""
    text = {"type": "string"}
    nullable_text = {"type": ["string", "null"]}
    media = {
        "anyOf": [
            _obj({"file_id": text}),
            _obj(
                {"prompt": text, "kind": {"enum": list(project_schema.MEDIA_KINDS)}, "model": nullable_text}
            ),
            {"type": "null"},
        ]
    }
    scene = _obj(
        {
            "id": {"type": "string", "pattern": project_schema.SCENE_ID},
            "script": text,
            "media": media,
            "duration": {"type": "number", "minimum": 0.5, "maximum": 120},
            "transition": _obj(
                {
                    "type": {"enum": list(project_schema.TRANSITIONS)},
                    "duration": {"type": "number", "minimum": 0, "maximum": 2},
                }
            ),
        }
    )
    volume = {"type": "number", "minimum": 0, "maximum": 2}
    render = _obj(
        {
            "run_id": {"type": "string", "pattern": "^run_"},
            "status": {"enum": ["running", "succeeded", "failed", "canceled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "video_file_id": {**nullable_text, "description": "The MP4, once the run has succeeded."},
            "subtitles_file_id": {**nullable_text, "description": "Its SRT captions, when it has any."},
            "error": {
                "anyOf": [
                    _obj({"code": text, "message": nullable_text, "node": nullable_text}),
                    {"type": "null"},
                ]
            },
        },
        description="The last render: its workflow run, as `GET /v1/workflow-runs/{run_id}` shows in full.",
    )
    stored = {
        "id": {"type": "string", "pattern": "^prj_"},
        "object": {"const": "project"},
        "name": project_schema.BODY["properties"]["name"],
        "description": text,
        "idea": text,
        "style": _obj(
            {
                "notes": text,
                "caption": _obj(
                    {
                        "font": nullable_text,
                        "color": {"type": ["string", "null"], "pattern": "^#[0-9a-f]{6}$"},
                        "outline": {"type": ["string", "null"], "pattern": "^#[0-9a-f]{6}$"},
                        "size": {"type": "integer", "minimum": 0},
                        "burn": {"type": "boolean"},
                    }
                ),
            }
        ),
        "format": {"enum": list(project_schema.FORMATS)},
        "target_seconds": {"type": "integer", "minimum": 1},
        "brand_id": nullable_text,
        "voice": _obj({"model": nullable_text, "voice": nullable_text}),
        "music": {
            "anyOf": [
                _obj({"file_id": text, "volume": volume}),
                _obj({"prompt": text, "model": nullable_text, "volume": volume}),
                {"type": "null"},
            ]
        },
        "scenes": {"type": "array", "items": scene, "maxItems": project_schema.MAX_SCENES},
        "last_run_id": nullable_text,
        "render": {"anyOf": [render, {"type": "null"}]},
        "created_at": _STAMP,
        "updated_at": _STAMP,
    }
    file_item = {
        "anyOf": [
            {"type": "string", "description": "A file of your library."},
            _obj({"node": text, "output": {"type": "integer", "minimum": 0}}, description="A node's output."),
        ]
    }
    node_quote = _obj(
        {
            "items": {"type": "integer", "minimum": 0},
            "unit_price": {"type": "integer", "minimum": 0},
            "price": {"type": "integer", "minimum": 0},
        }
    )
    seconds = {"type": "number", "minimum": 0, "description": "The length as the scenes state it."}
    return {
        "Project": _obj(stored, description="A video project (docs/projects.md)."),
        "ProjectBody": copy.deepcopy(project_schema.BODY),
        "ProjectList": _list_of(_ref("Project"), paged=True),
        "ProjectTimeline": _obj(
            {
                "object": {"const": "project_timeline"},
                "project_id": text,
                "seconds": seconds,
                "file_ids": {
                    "type": "array",
                    "items": file_item,
                    "description": "The render's `input.file_ids`: the timeline's `file` indexes point here.",
                },
                "timeline": {
                    "type": "object",
                    "description": "The timeline document (docs/timeline.schema.json).",
                },
                "graph": _ref("WorkflowGraph"),
            }
        ),
        "ProjectQuote": _obj(
            {
                "object": {"const": "project_quote"},
                "project_id": text,
                "seconds": seconds,
                "price": {"type": "integer", "minimum": 0, "description": "What a render holds."},
                "currency": {"const": "millicredits"},
                "nodes": {"type": "object", "additionalProperties": node_quote},
                "available": {"type": "integer", "minimum": 0},
                "sufficient": {"type": "boolean", "description": "Whether rendering now would be accepted."},
            }
        ),
    }


def _projects_paths() -> Schema:
    project_id = _param(
        "project_id", "path", {**_SEGMENT, "examples": ["prj_0123456789abcdef01234567"]}, "The project."
    )
    invalid = _error_response(
        "A field is refused, named by `field` with its path (`scenes[1].media.file_id`): an unknown "
        "field (`unknown_field`), a value the schema refuses (`invalid_request`), a scene's media or the "
        "music given both or neither ways (`invalid_media`, `invalid_music`), two scenes with one id "
        "(`duplicate_scene_id`), a transition as long as a scene it joins (`transition_too_long`), a "
        "file that is not one of your library's (`file_not_found`, the same for another tenant's file) "
        "or of the wrong kind (`wrong_file_kind`), a model the catalog does not offer for it "
        "(`unknown_model`), a brand that is not yours (`brand_not_found`)."
    )
    not_renderable = _error_response(
        "The project cannot render as it is, named by `field`: no scenes (`no_scenes`), a scene "
        "without media (`scene_without_media`), a file gone from the library (`file_not_found`), a "
        "voice the speech model lacks; or the graph it compiles to is refused (`invalid_workflow`, "
        "with `problems` and the project `field` of the first)."
    )
    started = _json(
        _ref("WorkflowRun"),
        "Rendering: the run of the project's graph, its whole quote held (or, for a repeated "
        "`Idempotency-Key`, the run it started).",
        Location=_location("/v1/workflow-runs/{id}"),
    )
    empty = _json_body(_obj({}, []), required=False)
    return {
        "/v1/projects": {
            "post": _op(
                "Create a video project",
                {
                    "201": _json(_ref("Project"), "Created.", Location=_location("/v1/projects/{id}")),
                    "422": invalid,
                },
                tag="projects",
                write=True,
                body=_json_body({**copy.deepcopy(project_schema.BODY), "required": ["name"]}),
                operation_id="createProject",
            ),
            "get": _op(
                "List projects, newest first",
                {"200": _json(_ref("ProjectList"), "One page of projects."), "422": _use("Invalid")},
                tag="projects",
                params=_page_params(),
                operation_id="listProjects",
            ),
        },
        "/v1/projects/{project_id}": {
            "get": _op(
                "Read a project, with its last render",
                {"200": _json(_ref("Project"), "The project."), "404": _use("NotFound")},
                tag="projects",
                params=[project_id],
                operation_id="getProject",
            ),
            "patch": _op(
                "Change a project: each field sent replaces the project's, except `style` (and its "
                "`caption`) and `voice`, whose keys are merged in",
                {
                    "200": _json(_ref("Project"), "The changed project."),
                    "404": _use("NotFound"),
                    "422": invalid,
                },
                tag="projects",
                write=True,
                params=[project_id],
                body=_json_body(_ref("ProjectBody")),
                operation_id="updateProject",
            ),
            "delete": _op(
                "Delete a project (its renders and library files stay)",
                {"204": {"description": "Deleted."}, "404": _use("NotFound")},
                tag="projects",
                write=True,
                params=[project_id],
                operation_id="deleteProject",
            ),
        },
        "/v1/projects/{project_id}/timeline": {
            "get": _op(
                "The timeline a render of the project would play, and the workflow graph it would run",
                {
                    "200": _json(_ref("ProjectTimeline"), "The timeline, its files and the graph."),
                    "404": _use("NotFound"),
                    "422": not_renderable,
                },
                tag="projects",
                params=[project_id],
                operation_id="getProjectTimeline",
            ),
        },
        "/v1/projects/{project_id}/quote": {
            "post": _op(
                "The price of rendering the project now (nothing is held)",
                {
                    "200": _json(_ref("ProjectQuote"), "The price, node by node."),
                    "404": _use("NotFound"),
                    "422": not_renderable,
                },
                tag="projects",
                write=True,
                params=[project_id],
                body=empty,
                operation_id="quoteProject",
            ),
        },
        "/v1/projects/{project_id}/render": {
            "post": _op(
                "Render the project: start a workflow run of its graph",
                {
                    "202": started,
                    "402": _error_response(
                        "Not enough credits for the render's quote, or an account in debt; nothing was "
                        "held or started (`insufficient_credits`, `account_in_debt`)."
                    ),
                    "404": _use("NotFound"),
                    "422": _error_response(
                        "The project cannot render as it is (see the timeline's 422), a script or prompt "
                        "blocked by moderation, `reuse` not a boolean, or an `Idempotency-Key` used with "
                        "another project state (`idempotency_key_reused`)."
                    ),
                    "429": _rate_limited(
                        "Over the tier's submit rate (`rate_limited`); a render spends one."
                    ),
                    "503": _error_response(
                        "A borderline script or prompt while the moderation service cannot be reached; "
                        "nothing was held (`moderation_unavailable`)."
                    ),
                },
                tag="projects",
                write=True,
                params=[
                    project_id,
                    _idempotency_key(200, "Render safely: the same key and project return the same run."),
                ],
                body=_json_body(
                    _obj(
                        {
                            "reuse": {
                                "type": "boolean",
                                "default": True,
                                "description": "Reuse what an earlier render made from the same script, "
                                "prompt and files, at no cost; false makes everything again.",
                            },
                            "webhook": openapi_webhooks.job_webhook(),
                        },
                        [],
                    ),
                    required=False,
                ),
                operation_id="renderProject",
            ),
        },
    }


def _account_paths() -> Schema:
    archive_id = _param(
        "archive_id",
        "path",
        {**_SEGMENT, "examples": ["exp_0123456789abcdef01234567"]},
        "The export archive.",
    )
    return {
        "/v1/account/restriction": {
            "put": _op(
                "Restrict the account's processing, or lift the restriction (web session only)",
                {
                    "200": _json(
                        _obj(
                            {
                                "object": {"const": "restriction"},
                                "restricted": {"type": "boolean"},
                                "restricted_at": {"type": ["string", "null"], "format": "date-time"},
                                "unfinished_jobs": {"type": "integer", "minimum": 0},
                                "running_workflow_runs": {"type": "integer", "minimum": 0},
                            }
                        ),
                        "The restriction as it stands; work accepted before it runs on unless canceled.",
                    ),
                    "403": _error_response(
                        "Not from a web session, or no CSRF token (`session_required`, `csrf_failed`)."
                    ),
                    "422": _use("Invalid"),
                },
                tag="account",
                write=True,
                body=_json_body(_obj({"restricted": {"type": "boolean"}})),
                operation_id="setAccountRestriction",
            ),
        },
        "/v1/account": {
            "get": _op(
                "The caller's tenant, user, credits, storage and tier limits",
                {"200": _json(_ref("Account"), "The account.")},
                tag="account",
                operation_id="getAccount",
            ),
            "delete": _op(
                "Delete the account: its people, keys, files and jobs (web session and password only)",
                {
                    "204": {"description": "Deleted; the session is over. The pseudonymous ledger stays."},
                    "403": _error_response(
                        "Not from a web session, the password was not typed again, or it is wrong "
                        "(`session_required`, `password_required`, `wrong_password`; both name the "
                        "`password` field); nothing was deleted."
                    ),
                    "409": _error_response("Jobs are still running and are being stopped (`jobs_running`)."),
                    "422": _use("Invalid"),
                },
                tag="account",
                write=True,
                body=_json_body(
                    _obj(
                        {
                            "password": {"type": "string"},
                            "keep_gallery_public": {
                                "type": "boolean",
                                "default": False,
                                "description": "Keep your published gallery entries public after the "
                                "account is gone, attributed to their display name only (then ask "
                                "[email protected] to remove one). By default they are unpublished.",
                            },
                        },
                        ["password"],
                    )
                ),
                operation_id="deleteAccount",
            ),
        },
        "/v1/account/export": {
            "get": _op(
                "Everything faktry keeps about this account, as one JSON document",
                {"200": _json(_ref("Export"), "The export.")},
                tag="account",
                operation_id="exportAccount",
            ),
        },
        "/v1/account/exports": {
            "get": _op(
                "Your last export archives, newest first",
                {"200": _json(_ref("ExportArchiveList"), "The archives.")},
                tag="account",
                operation_id="listExportArchives",
            ),
            "post": _op(
                "Ask for an export archive: built in the background, downloadable until it expires. "
                "Allowed while the account's processing is restricted",
                {
                    "202": _json(
                        _ref("ExportArchive"),
                        "Queued: follow it at `Location`; your webhooks get `export.ready` when it is.",
                        Location=_location("/v1/account/exports/{id}"),
                    ),
                    "200": _json(_ref("ExportArchive"), "One is being built already: that one."),
                    "422": _use("Invalid"),
                },
                tag="account",
                write=True,
                body={
                    "required": False,
                    "content": {JSON: {"schema": _obj({})}},
                },
                operation_id="requestExportArchive",
            ),
        },
        "/v1/account/exports/{archive_id}": {
            "get": _op(
                "An export archive",
                {"200": _json(_ref("ExportArchive"), "The archive."), "404": _use("NotFound")},
                tag="account",
                params=[archive_id],
                operation_id="getExportArchive",
            ),
        },
        "/v1/account/exports/{archive_id}/download": {
            "get": _op(
                "Download an export archive (a zip) until it expires",
                {
                    "200": {
                        "description": "The zip, named `faktry-export-<date>-<id>.zip` (`README.txt` inside "
                        "says what is where).",
                        "content": {
                            "application/zip": {
                                "schema": {"type": "string", "contentMediaType": "application/zip"}
                            }
                        },
                    },
                    "302": {"description": "Where storage serves it (S3): a link valid for minutes."},
                    "404": _use("NotFound"),
                    "409": _error_response(
                        "Not built yet (`export_not_ready`), or it could not be built (`export_failed`)."
                    ),
                    "410": _error_response(
                        "It expired and was removed (`export_expired`): ask for a new one."
                    ),
                },
                tag="account",
                params=[archive_id],
                operation_id="downloadExportArchive",
            ),
        },
        "/v1/account/transactions": {
            "get": _op(
                "The credit ledger, newest first",
                {
                    "200": {
                        "description": "One page of transactions, or all of them as CSV (`format=csv` or "
                        "`Accept: text/csv`).",
                        "content": {
                            JSON: {"schema": _ref("TransactionList")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "422": _use("Invalid"),
                },
                tag="account",
                params=[
                    *_page_params(),
                    _param("format", "query", {"enum": ["csv"]}, "Export the whole ledger as CSV."),
                ],
                operation_id="listTransactions",
            ),
        },
    }


def _billing_paths() -> Schema:
    return {
        "/v1/billing/packs": {
            "get": _op(
                "The credit packs on sale",
                {"200": _json(_ref("CreditPackList"), "Every pack.")},
                tag="billing",
                operation_id="listCreditPacks",
            ),
        },
        "/v1/billing/checkout": {
            "post": _op(
                "Start buying a credit pack (Stripe Checkout)",
                {
                    "201": _json(_ref("CheckoutSession"), "The payment page; the credits arrive by webhook."),
                    "403": _error_response(
                        "The account's email address is not confirmed yet (`email_unverified`), or no CSRF "
                        "token (`csrf_failed`)."
                    ),
                    "409": _error_response(
                        "Payments are not set up on this faktry (`payments_disabled`); ask its operator."
                    ),
                    "422": _use("Invalid"),
                    "503": _error_response(
                        "The payment provider is unavailable "
                        "(`billing_unavailable`, `temporarily_unavailable`)."
                    ),
                },
                tag="billing",
                write=True,
                body=_json_body(_ref("CheckoutRequest")),
                operation_id="createCheckout",
            ),
        },
        "/v1/billing/checkout/{session_id}": {
            "get": _op(
                "Where a checkout of the caller stands",
                {
                    "200": _json(_ref("CheckoutStatus"), "Credited, paid or unpaid."),
                    "404": _error_response(
                        "No such checkout session, or another tenant's, or payments are off "
                        "(`checkout_not_found`)."
                    ),
                    "422": _use("Invalid"),
                },
                tag="billing",
                params=[
                    _param("session_id", "path", {"type": "string"}, "The `session_id` checkout returned.")
                ],
                operation_id="getCheckoutStatus",
            ),
        },
        "/v1/credits/history": {
            "get": _op(
                "The account's credits in plain lines, newest first",
                {
                    "200": _json(_ref("CreditHistory"), "One line per job, per credits added, per removal."),
                    "422": _use("Invalid"),
                },
                tag="billing",
                params=_page_params(),
                operation_id="listCreditHistory",
            ),
        },
        "/v1/billing/webhook": {
            "post": _op(
                "Stripe's webhook (authenticated by `Stripe-Signature` only)",
                {
                    "200": _json(
                        _obj({"status": {"enum": ["applied", "duplicate", "parked", "ignored"]}}),
                        "Applied once, whatever the number of deliveries.",
                    ),
                    "400": _error_response("A missing, wrong or stale signature (`invalid_signature`)."),
                    "413": _error_response("Far larger than any Stripe event (`payload_too_large`)."),
                },
                tag="billing",
                public=True,
                params=[
                    _param(
                        "Stripe-Signature",
                        "header",
                        {"type": "string", "examples": [f"t=1768469400,v1={'5257a869' * 8}"]},
                        "Stripe's signature of the raw body.",
                        required=True,
                    )
                ],
                body=_json_body({"type": "object", "description": "A Stripe event."}),
                operation_id="stripeWebhook",
            ),
        },
    }


def _auth_paths() -> Schema:
    key_id = _param("key_id", "path", {**_SEGMENT, "examples": ["key_0123456789abcdef01234567"]}, "The key.")
    invitation_id = _param(
        "invitation_id", "path", {**_SEGMENT, "examples": ["inv_0123456789abcdef01234567"]}, "The invitation."
    )
    member_id = _param(
        "user_id", "path", {**_SEGMENT, "examples": ["usr_0123456789abcdef01234567"]}, "The member."
    )
    session = _json(_ref("Session"), "The session.")
    throttled = _rate_limited("Too many attempts (`rate_limited`).")
    invalid_token = _error_response("The link's token is wrong, used already or expired (`invalid_token`).")
    cookie = {
        "description": "The `faktry_session` cookie (HttpOnly, SameSite=Lax).",
        "schema": {"type": "string"},
    }
    return {
        "/v1/keys": {
            "post": _op(
                "Create an API key",
                {
                    "201": _json(_ref("NewApiKey"), "The key; `key` is never shown again."),
                    "422": _use("Invalid"),
                },
                tag="keys",
                write=True,
                body=_json_body(_ref("NewApiKeyRequest"), required=False),
                operation_id="createApiKey",
            ),
            "get": _op(
                "List the tenant's API keys, newest first",
                {"200": _json(_ref("ApiKeyList"), "Every key, revoked ones included.")},
                tag="keys",
                operation_id="listApiKeys",
            ),
        },
        "/v1/members": {
            "get": _op(
                "The account's members and their roles",
                {"200": _json(_ref("MemberList"), "Everyone, oldest first.")},
                tag="keys",
                operation_id="listMembers",
            ),
        },
        "/v1/members/{user_id}": {
            "patch": _op(
                "Change a member's role (only an owner makes or changes an owner)",
                {
                    "200": _json(_ref("Member"), "The member with the new role."),
                    "403": _error_response(
                        "Not allowed: `insufficient_scope` (needs `members:write`), `owner_only`, or "
                        "`csrf_failed`."
                    ),
                    "404": _use("NotFound"),
                    "409": _error_response("The account's last owner cannot be demoted (`last_owner`)."),
                    "422": _use("Invalid"),
                },
                tag="keys",
                write=True,
                params=[member_id],
                body=_json_body(_obj({"role": {"enum": list(permissions.ROLES)}})),
                operation_id="changeMemberRole",
            ),
            "delete": _op(
                "Remove a member, or leave the account (your own id): their sessions end and their keys "
                "are revoked",
                {
                    "204": {"description": "Removed."},
                    "403": _error_response(
                        "Not allowed: `insufficient_scope` (removing someone else needs `members:write`), "
                        "`owner_only`, or `csrf_failed`."
                    ),
                    "404": _use("NotFound"),
                    "409": _error_response(
                        "The account's last owner cannot leave or be removed (`last_owner`)."
                    ),
                },
                tag="keys",
                write=True,
                params=[member_id],
                operation_id="removeMember",
            ),
        },
        "/v1/invitations": {
            "post": _op(
                "Invite someone by email to join the account with a role (only an owner invites an owner)",
                {
                    "201": _json(
                        _ref("Invitation"),
                        "Invited: a mail with the link is on its way.",
                        Location=_location("/v1/invitations/{id}"),
                    ),
                    "403": _error_response(
                        "`insufficient_scope` (needs `members:write`), `owner_only`, or `csrf_failed`."
                    ),
                    "422": _use("Invalid"),
                },
                tag="keys",
                write=True,
                body=_json_body(
                    _obj(
                        {
                            "email": {"type": "string", "format": "email"},
                            "role": {"enum": list(permissions.ROLES)},
                        }
                    )
                ),
                operation_id="invite",
            ),
            "get": _op(
                "The account's invitations, newest first",
                {"200": _json(_ref("InvitationList"), "The last 100.")},
                tag="keys",
                operation_id="listInvitations",
            ),
        },
        "/v1/invitations/{invitation_id}": {
            "delete": _op(
                "Revoke a pending invitation",
                {"200": _json(_ref("Invitation"), "The invitation, revoked."), "404": _use("NotFound")},
                tag="keys",
                write=True,
                params=[invitation_id],
                operation_id="revokeInvitation",
            ),
        },
        "/v1/invitations/accept": {
            "post": _op(
                "Accept an invitation with the token from its mail and a password of your own: you join the "
                "account with the invited role and are logged in",
                {
                    "201": _json(_ref("Session"), "Joined and logged in (a session cookie is set)."),
                    "404": _error_response("The token is not valid (`invitation_not_found`)."),
                    "409": _error_response(
                        "Used already (`invitation_accepted`), revoked (`invitation_revoked`), or the "
                        "address has a faktry account (`email_taken`)."
                    ),
                    "410": _error_response("It expired (`invitation_expired`)."),
                    "422": _use("Invalid"),
                },
                tag="session",
                public=True,
                body=_json_body(
                    _obj(
                        {
                            "token": {"type": "string"},
                            "password": {"type": "string", "minLength": 10},
                            "confirm_age_16": {"const": True},
                        }
                    )
                ),
                operation_id="acceptInvitation",
            ),
        },
        "/v1/audit-log": {
            "get": _op(
                "The account's security events, newest first (owners and admins: `audit:read`)",
                {"200": _json(_ref("AuditLog"), "One page of entries."), "422": _use("Invalid")},
                tag="keys",
                params=[
                    *_page_params(),
                    _param("action", "query", {"enum": list(AUDIT_ACTIONS)}, "Only this kind of event."),
                    _param(
                        "actor", "query", {"type": "string"}, "Only this person's: a user id or an email."
                    ),
                    _param("since", "query", {"type": "string", "format": "date-time"}, "Only events since."),
                ],
                operation_id="listAuditLog",
            ),
        },
        "/v1/keys/{key_id}": {
            "delete": _op(
                "Revoke an API key (at once, on every process)",
                {"200": _json(_ref("ApiKey"), "The revoked key."), "404": _use("NotFound")},
                tag="keys",
                write=True,
                params=[key_id],
                operation_id="revokeApiKey",
            ),
        },
        "/v1/signup": {
            "post": _op(
                "Sign up: a free account and its owner (16 or older); log in next",
                {
                    "202": _json(
                        _ref("SignupAccepted"),
                        "Accepted. If the email had no account, it has one now; if it had one, nothing "
                        "was created or changed. The answer is the same either way and starts no "
                        "session: log in with `POST /v1/session`. A new owner is mailed a link that "
                        "confirms the address (`POST /v1/email/verify`); the owner of a taken address "
                        "is told by mail that someone tried to sign up with it.",
                    ),
                    "422": _error_response(
                        "Missing age confirmation, a weak password, a bad email, an unknown field "
                        "(`age_confirmation_required`, `invalid_request`, `unknown_field`)."
                    ),
                    "429": throttled,
                },
                tag="session",
                public=True,
                body=_json_body(_ref("Signup")),
                operation_id="signUp",
            ),
        },
        "/v1/email/verify": {
            "post": _op(
                "Confirm the email address with the token of the verification mail's link",
                {
                    "200": _json(_ref("EmailVerification"), "Confirmed (also when it was already)."),
                    "400": invalid_token,
                    "422": _use("Invalid"),
                    "429": throttled,
                },
                tag="session",
                public=True,
                body=_json_body(_ref("EmailVerify")),
                operation_id="verifyEmail",
            ),
        },
        "/v1/email/verification": {
            "post": _op(
                "Mail the link that confirms the address again (at most once a minute)",
                {
                    "200": _json(_ref("EmailVerification"), "Already confirmed: nothing was sent."),
                    "202": _json(_ref("EmailVerification"), "A new link is on its way."),
                    "422": _use("Invalid"),
                    "429": throttled,
                },
                tag="session",
                write=True,
                operation_id="resendEmailVerification",
            ),
        },
        "/v1/password-reset": {
            "post": _op(
                "Ask for a password reset link by mail",
                {
                    "202": _json(
                        _ref("PasswordResetAccepted"),
                        "Accepted. The same answer whether or not the email has an account; only an "
                        "account's address is mailed a link (valid `password_reset_minutes`, once).",
                    ),
                    "422": _use("Invalid"),
                    "429": throttled,
                },
                tag="session",
                public=True,
                body=_json_body(_ref("PasswordResetRequest")),
                operation_id="requestPasswordReset",
            ),
        },
        "/v1/password-reset/confirm": {
            "post": _op(
                "Set a new password with the token of the reset mail's link; every session ends",
                {
                    "200": _json(_ref("PasswordResetDone"), "Set. Every session of the person ended."),
                    "400": invalid_token,
                    "422": _use("Invalid"),
                    "429": throttled,
                },
                tag="session",
                public=True,
                body=_json_body(_ref("PasswordResetConfirm")),
                operation_id="confirmPasswordReset",
            ),
        },
        "/v1/profile": {
            "get": _op(
                "The person's profile",
                {"200": _json(_ref("Profile"), "The profile."), "422": _use("Invalid")},
                tag="session",
                operation_id="getProfile",
            ),
            "patch": _op(
                "Change the person's profile",
                {"200": _json(_ref("Profile"), "The profile as saved."), "422": _use("Invalid")},
                tag="session",
                write=True,
                body=_json_body(_ref("ProfileChange")),
                operation_id="updateProfile",
            ),
        },
        "/v1/profile/password": {
            "post": _op(
                "Change the password (web session only); every other session ends",
                {
                    "200": {
                        **session,
                        "description": "Changed. Every session of the person ended; this browser has a "
                        "new one (a new cookie and CSRF token).",
                        "headers": {"Set-Cookie": cookie},
                    },
                    "403": _error_response(
                        "Not from a web session, the current password is wrong, or no CSRF token "
                        "(`session_required`, `password_required`, `csrf_failed`)."
                    ),
                    "422": _use("Invalid"),
                    "429": throttled,
                },
                tag="session",
                write=True,
                body=_json_body(_ref("PasswordChange")),
                operation_id="changePassword",
            ),
        },
        "/v1/session": {
            "post": _op(
                "Log in with email and password",
                {
                    "201": {**session, "description": "Logged in.", "headers": {"Set-Cookie": cookie}},
                    "401": _error_response("Wrong email or password (`invalid_credentials`)."),
                    "422": _use("Invalid"),
                    "429": throttled,
                },
                tag="session",
                public=True,
                body=_json_body(_ref("Login")),
                operation_id="logIn",
            ),
            "get": _op(
                "The current session and its CSRF token",
                {"200": session},
                tag="session",
                operation_id="getSession",
            ),
            "delete": _op(
                "Log out",
                {
                    "204": {
                        "description": "Logged out: the session ended, in every copy of its cookie, "
                        "and the cookie is cleared."
                    }
                },
                tag="session",
                write=True,
                operation_id="logOut",
            ),
        },
        "/v1/sessions": {
            "delete": _op(
                "Log out everywhere: end every session of the person, this one included",
                {
                    "204": {
                        "description": "Every web session of the person ended (with an API key: of the "
                        "key's person; the key keeps working)."
                    }
                },
                tag="session",
                write=True,
                operation_id="logOutEverywhere",
            ),
        },
    }


def _catalog_paths() -> Schema:
    return {
        "/v1/models": {
            "get": _op(
                "The generation models, their parameters and prices, and where each runs here",
                {"200": _json(_ref("ModelList"), "The models."), "422": _use("Invalid")},
                tag="models",
                params=[
                    _param(
                        "type", "query", {"enum": list(jobtypes.JOB_TYPES)}, "Only models of this job type."
                    )
                ],
                operation_id="listModels",
            ),
        },
        "/v1/admin/moderation": {
            "get": _op(
                "Flagged and blocked prompts and removed gallery entries of every tenant, newest first "
                "(staff only)",
                {
                    "200": _json(_ref("ModerationLog"), "One page of the moderation log."),
                    "403": _error_response("The caller is not faktry staff (`staff_only`)."),
                    "422": _use("Invalid"),
                },
                tag="admin",
                params=[
                    *_page_params(),
                    _param("category", "query", {"type": "string"}, "Only this category."),
                    _param(
                        "action", "query", {"enum": ["blocked", "flagged", "removed"]}, "Only this action."
                    ),
                    _param("tenant_id", "query", {"type": "string"}, "Only this tenant's prompts."),
                ],
                operation_id="listModerationLog",
            ),
        },
        "/v1/admin/queues": {
            "get": _op(
                "Each queue's depth, oldest age, running jobs, throughput and a scaling hint (staff only)",
                {
                    "200": _json(_ref("QueueList"), "One entry per queue."),
                    "403": _error_response("The caller is not faktry staff (`staff_only`)."),
                },
                tag="admin",
                operation_id="listQueues",
            ),
        },
        "/v1/admin/dead-letters": {
            "get": _op(
                "Failed jobs of every tenant, newest first, with their error (staff only)",
                {
                    "200": _json(_ref("DeadLetterList"), "One page of failed jobs."),
                    "403": _error_response("The caller is not faktry staff (`staff_only`)."),
                    "422": _use("Invalid"),
                },
                tag="admin",
                params=[
                    *_page_params(),
                    _param("tenant_id", "query", {"type": "string"}, "Only this tenant's jobs."),
                    _param("code", "query", {"type": "string"}, "Only jobs that failed with this code."),
                ],
                operation_id="listDeadLetters",
            ),
        },
        "/v1/admin/jobs/{job_id}/replay": {
            "post": _op(
                "Replay a failed job as a new job with a fresh hold (staff only)",
                {
                    "202": _json(_ref("DeadLetter"), "The new job; its metadata names the failed one."),
                    "402": _error_response("The tenant's credits do not cover the new hold."),
                    "403": _error_response(_STAFF_WRITE_FORBIDDEN),
                    "404": _use("NotFound"),
                    "409": _error_response("The job has not failed (`not_failed`)."),
                    "422": _use("Invalid"),
                },
                tag="admin",
                write=True,
                params=[_param("job_id", "path", {"type": "string"}, "The failed job.", required=True)],
                operation_id="replayJob",
            ),
        },
    }


def _tenants_paths() -> Schema:
    tenant_id = _param(
        "tenant_id", "path", {**_SEGMENT, "examples": ["ten_0123456789abcdef01234567"]}, "The tenant."
    )
    grant = _json(_ref("Grant"), "Granted: the new lot and the tenant's credits after it.")
    repeat = "A repeated `Idempotency-Key`: `lot` is null; nothing changed."
    return {
        "/v1/admin/tenants": {
            "get": _op(
                "Every tenant, newest first, with its owner, credits and storage (staff only)",
                {
                    "200": _json(_ref("TenantList"), "One page of tenants."),
                    "403": _error_response("The caller is not faktry staff (`staff_only`)."),
                    "422": _use("Invalid"),
                },
                tag="admin",
                params=[
                    *_page_params(),
                    _param(
                        "q",
                        "query",
                        {"type": "string"},
                        "A tenant id, or part of a tenant's name or of its owner's email (any case).",
                    ),
                    _param("tier", "query", {"type": "string"}, "Only tenants of this tier."),
                ],
                operation_id="listTenants",
            ),
        },
        "/v1/admin/tenants/{tenant_id}/credits": {
            "post": _op(
                "Grant credits to a tenant as a new lot, recorded in the ledger (staff only)",
                {
                    "200": {**grant, "description": repeat},
                    "201": grant,
                    "403": _error_response(_STAFF_WRITE_FORBIDDEN),
                    "404": _error_response("No such tenant, or a deleted one (`tenant_not_found`)."),
                    "422": _error_response(
                        "Credits that are not a number above 0 and at most "
                        f"{MAX_GRANT_CREDITS:,}, a reason that is not 1 to {MAX_GRANT_REASON} characters, "
                        "an unknown field (`invalid_request`), or an `Idempotency-Key` already used for "
                        "another tenant or amount (`idempotency_key_reused`)."
                    ),
                },
                tag="admin",
                write=True,
                params=[
                    tenant_id,
                    _idempotency_key(MAX_GRANT_KEY, "Repeat a grant safely: the same key grants once."),
                ],
                body=_json_body(_ref("GrantRequest")),
                operation_id="grantCredits",
            ),
        },
    }


def _meta_paths() -> Schema:
    return {
        "/v1/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object", "required": ["openapi", "info", "paths"]}, "OpenAPI 3.1.")},
                tag="meta",
                public=True,
                operation_id="getOpenApi",
            ),
        },
        "/v1/timeline.schema.json": {
            "get": _op(
                "The JSON Schema of a video.render timeline",
                {
                    "200": _json(
                        {"type": "object", "required": ["$schema", "properties"]}, "JSON Schema 2020-12."
                    )
                },
                tag="meta",
                public=True,
                operation_id="getTimelineSchema",
            ),
        },
    }


@cache
def build() -> dict[str, Any]:
    """The whole document (cached: do not mutate it), with an example request and answer
    for every operation (`web.openapi_examples`)."""
    document = _document()
    _refused_while_restricted(document)
    openapi_examples.add_examples(document)
    return document


#: The operations that start work, refused while the account's processing is restricted.
_STARTS_WORK = {
    "submitJob", "submitJobBatch", "runWorkflow", "runInlineWorkflow", "retryWorkflowRun", "renderProject",
    "replayJob",
}  # fmt: skip
_RESTRICTED = (
    "processing of the account is restricted at the person's request (`account_restricted`); nothing was held"
)


def _refused_while_restricted(document: dict[str, Any]) -> None:
    for path in document["paths"].values():
        for op in path.values():
            if op.get("operationId") not in _STARTS_WORK:
                continue
            said = op["responses"].get("409")
            if said is None:
                op["responses"]["409"] = _error_response(_RESTRICTED[0].upper() + _RESTRICTED[1:] + ".")
            else:
                op["responses"]["409"] = {
                    **said,
                    "description": f"{said['description'].rstrip('.')}; or {_RESTRICTED}.",
                }
            op["responses"] = dict(sorted(op["responses"].items()))


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "faktry",
            "version": "1",
            "description": "Media jobs on a queue: upload files, submit transcodes, thumbnails and "
            "resizes, follow them, download the outputs; pay with credits. Every operation comes "
            "with an example request (curl and Python, under `x-codeSamples`) and answer; "
            "`/docs` shows this document as a readable reference.",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": name}
            for name in (
                "files",
                "jobs",
                "workflows",
                "brands",
                "gallery",
                "projects",
                "models",
                "account",
                "billing",
                "webhooks",
                "keys",
                "session",
                "admin",
                "meta",
            )
        ],
        "paths": {
            **_files_paths(),
            **_uploads_paths(),
            **_jobs_paths(),
            **_streams_paths(),
            **_workflows_paths(),
            **_workflow_runs_paths(),
            **_brands_paths(),
            **_gallery_paths(),
            **_projects_paths(),
            **_account_paths(),
            **_billing_paths(),
            **openapi_webhooks.paths(sys.modules[__name__]),
            **_auth_paths(),
            **_catalog_paths(),
            **_tenants_paths(),
            **_meta_paths(),
        },
        "components": {
            "schemas": {
                **_schemas(),
                **_upload_schemas(),
                **_gallery_schemas(),
                **openapi_webhooks.schemas(_obj, _list_of, _STAMP, _NULLABLE_STAMP),
            },
            "responses": _RESPONSES,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": f"{KEY_PREFIX}<{VISIBLE_CHARS + SECRET_CHARS} characters>",
                    "description": "An API key: `Authorization: Bearer fk_live_...`.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "faktry_session",
                    "description": "The web session from `POST /v1/session`.",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "The session's `csrf_token`; required with the cookie on writes.",
                },
            },
        },
        "security": _READ,
    }
