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
from functools import cache
from typing import Any, get_args

from faktry.tenancy import KEY_PREFIX, SECRET_CHARS, VISIBLE_CHARS
from pipelines import jobtypes, pagination
from pipelines.media import detect
from pipelines.models import STATUSES
from pipelines.services import MAX_METADATA_BYTES

JSON = "application/json"
Schema = dict[str, Any]

# What a werkzeug ``<name>`` (string converter) segment can hold: anything but a slash.
_SEGMENT = {"type": "string", "pattern": "^[^/]+$"}
_STAMP = {"type": "string", "format": "date-time"}
_NULLABLE_STAMP = {"type": ["string", "null"], "format": "date-time"}
_UPLOAD_KINDS = list(get_args(detect.Kind))
# Job outputs add HLS playlists (their segments count as video).
_FILE_KINDS = [*_UPLOAD_KINDS, "playlist"]


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
        "limit": {"type": "integer", "description": "The limit that was exceeded, in bytes (413)."},
        "known_types": {"type": "array", "items": {"type": "string"}},
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
    multi_file = {
        "root_id": {"type": ["string", "null"], "description": "The root (master playlist) of the output."},
        "relpath": {"type": ["string", "null"], "description": "The path inside the output."},
        "file_count": {"type": "integer", "minimum": 1},
        "total_size": {"type": "integer", "minimum": 0},
    }
    return _obj(
        {**properties, **multi_file},
        list(properties),
        description="A media file. Members of multi-file outputs (HLS) and their roots carry "
        + ", ".join(f"`{name}`" for name in multi_file)
        + ".",
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
            "input": _obj({"file_id": {"type": ["string", "null"]}}),
            "params": {"type": "object", "description": "As submitted, with defaults applied."},
            "metadata": {"type": "object"},
            "result": {"type": "object", "description": "Facts the job reports besides files."},
            "error": {"oneOf": [error, {"type": "null"}]},
            "cancel_requested": {"type": "boolean"},
            "outputs": {"type": "array", "items": _ref("JobOutput")},
            "created_at": _STAMP,
            "started_at": _NULLABLE_STAMP,
            "finished_at": _NULLABLE_STAMP,
            "urls": urls,
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


def _submissions() -> dict[str, Schema]:
    """One request schema per job type, its ``params`` taken from the job type itself."""
    out: dict[str, Schema] = {}
    for name, job_type in jobtypes.JOB_TYPES.items():
        params = copy.deepcopy(job_type.params_schema)
        required = ["type", "input"] + (["params"] if params.get("required") else [])
        out[_submission_name(name)] = _obj(
            {
                "type": {"const": name},
                "input": _ref("JobInput"),
                "params": params,
                "metadata": {
                    "type": "object",
                    "description": f"Yours to keep with the job: at most {MAX_METADATA_BYTES} bytes of JSON.",
                },
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
        "active": {"type": "boolean"},
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
        "JobInput": _obj(
            {"file_id": {"type": "string", "description": "An uploaded file of a kind the type takes."}}
        ),
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
        "Job": _job(),
        "JobList": _list_of(_ref("Job"), paged=True),
        "JobEvent": _job_event(),
        "JobEventList": _list_of(_ref("JobEvent"), paged=False),
        "Account": _obj(
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
                "user": {
                    "oneOf": [
                        _obj(
                            {
                                "id": {"type": "string"},
                                "email": {"type": "string"},
                                "is_staff": {"type": "boolean"},
                            }
                        ),
                        {"type": "null", "description": "An API key that belongs to no user."},
                    ]
                },
                "storage": _obj({"used_bytes": {"type": "integer", "minimum": 0}}),
                "auth": {"enum": ["api_key", "session"], "description": "How this request authenticated."},
            }
        ),
        "ApiKey": _obj(key_properties),
        "NewApiKey": _obj({**key_properties, "key": plain_key}),
        "ApiKeyList": _list_of(_ref("ApiKey"), paged=False),
        "NewApiKeyRequest": _obj({"name": {"type": "string", "maxLength": 100, "default": ""}}, []),
        "Login": _obj({"email": {"type": "string", "format": "email"}, "password": {"type": "string"}}),
        "Session": _obj(
            {
                "object": {"const": "session"},
                "user_id": {"type": ["string", "null"], "description": "Null for an API key without a user."},
                "tenant_id": {"type": "string"},
                "csrf_token": {"type": "string", "description": "Send as `X-CSRF-Token` on cookie writes."},
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


_RESPONSES = {
    "Unauthorized": _error_response(
        "No credentials, or a malformed, unknown or revoked API key, or an ended session "
        "(`unauthenticated`, `invalid_api_key`, `session_expired`)."
    ),
    "CsrfFailed": _error_response(
        "A cookie-authenticated write without the right `X-CSRF-Token` (`csrf_failed`)."
    ),
    "NotFound": _error_response("No such resource for this tenant; another tenant's looks exactly the same."),
    "Invalid": _error_response("The request is invalid; `field` names the culprit."),
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
    if public:
        op["security"] = []
    else:
        op["security"] = _WRITE if write else _READ
        responses = {**responses, "401": _use("Unauthorized")}
        if write:
            responses["403"] = _use("CsrfFailed")
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
                        "The upload is over the size limit (`payload_too_large`; `limit`)."
                    ),
                    "415": _error_response(
                        "The bytes are not a supported media format (`unsupported_format`)."
                    ),
                    "422": _error_response(
                        "No `file` part, an empty file, or media that cannot be decoded "
                        "(`invalid_request`, `invalid_media`, `media_too_large`)."
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
                "Download a file", content, tag="files", params=[file_id], operation_id="downloadFile"
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
                    "422": _error_response(
                        "Invalid body, unknown job type or parameter, an input the type does not take, "
                        "or a reused `Idempotency-Key` with another body (`invalid_request`, "
                        "`unknown_job_type`, `file_not_found`, `unsupported_input`, "
                        "`idempotency_key_reused`)."
                    ),
                },
                tag="jobs",
                write=True,
                params=[
                    _param(
                        "Idempotency-Key",
                        "header",
                        {"type": "string", "minLength": 1, "maxLength": 200},
                        "Repeat a submission safely: the same key and body return the same job.",
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


def _account_paths() -> Schema:
    key_id = _param("key_id", "path", {**_SEGMENT, "examples": ["key_0123456789abcdef01234567"]}, "The key.")
    session = _json(_ref("Session"), "The session.")
    cookie = {
        "description": "The `faktry_session` cookie (HttpOnly, SameSite=Lax).",
        "schema": {"type": "string"},
    }
    return {
        "/v1/account": {
            "get": _op(
                "The caller's tenant, user and storage used",
                {"200": _json(_ref("Account"), "The account.")},
                tag="account",
                operation_id="getAccount",
            ),
        },
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
        "/v1/session": {
            "post": _op(
                "Log in with email and password",
                {
                    "201": {**session, "description": "Logged in.", "headers": {"Set-Cookie": cookie}},
                    "401": _error_response("Wrong email or password (`invalid_credentials`)."),
                    "422": _use("Invalid"),
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
                {"204": {"description": "Logged out; the cookie is cleared."}},
                tag="session",
                write=True,
                operation_id="logOut",
            ),
        },
        "/v1/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object", "required": ["openapi", "info", "paths"]}, "OpenAPI 3.1.")},
                tag="meta",
                public=True,
                operation_id="getOpenApi",
            ),
        },
    }


@cache
def build() -> dict[str, Any]:
    """The whole document (cached: do not mutate it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "faktry",
            "version": "1",
            "description": "Media jobs on a queue: upload files, submit transcodes, thumbnails and "
            "resizes, follow them, download the outputs.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in ("files", "jobs", "account", "keys", "session", "meta")],
        "paths": {**_files_paths(), **_jobs_paths(), **_account_paths()},
        "components": {
            "schemas": _schemas(),
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
