"""The webhook part of the OpenAPI document (`web.openapi_doc.build` merges it in): the
``/v1/webhook-endpoints`` operations, the per-job signing key, and their schemas, as
`pipelines.webhooks.endpoints` writes them."""

from __future__ import annotations

from typing import Any

from pipelines.webhooks import outbox
from pipelines.webhooks.endpoints import MAX_ENDPOINTS

Schema = dict[str, Any]

_EVENTS = {"type": "array", "items": {"enum": list(outbox.EVENT_TYPES)}, "uniqueItems": True}


def job_webhook() -> Schema:
    """The ``webhook`` of a job, batch or workflow run request."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {
                "type": "string",
                "maxLength": 2000,
                "description": "An http(s) URL, not an internal address.",
            },
            "events": {**_EVENTS, "description": "The event types to send; empty or absent means all."},
        },
        "description": "Send this job's (or run's) events to `url` too, signed with your job-webhook "
        "secret (`GET /v1/webhook-signing-key`; docs/webhooks.md).",
    }


def schemas(obj: Any, list_of: Any, stamp: Schema, nullable_stamp: Schema) -> dict[str, Schema]:
    endpoint = {
        "id": {"type": "string", "pattern": "^whe_"},
        "object": {"const": "webhook_endpoint"},
        "url": {"type": "string"},
        "description": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}},
        "enabled": {"type": "boolean"},
        "disabled_reason": {"enum": ["gone", "failing", None]},
        "failing_since": nullable_stamp,
        "created_at": stamp,
        "updated_at": stamp,
    }
    secret = {
        "secret": {"type": "string", "pattern": "^whsec_"},
        "previous_secret": {"type": ["string", "null"], "description": "Still signing until it expires."},
        "previous_expires_at": nullable_stamp,
    }
    attempt = obj(
        {
            "at": stamp,
            "status_code": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "latency_ms": {"type": "integer"},
            "response_body": {"type": "string", "description": "The first KiB of the answer."},
        }
    )
    message = {
        "id": {"type": "string", "pattern": "^msg_", "description": "The `webhook-id` of every delivery."},
        "object": {"const": "webhook_message"},
        "endpoint_id": {"type": "string"},
        "type": {"type": "string"},
        "seq": {"type": "integer"},
        "subject_id": {"type": ["string", "null"]},
        "status": {"enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer"},
        "next_attempt_at": nullable_stamp,
        "created_at": stamp,
        "delivered_at": nullable_stamp,
        "payload": {"type": "object"},
        "log": {"type": "array", "items": attempt},
    }
    return {
        "WebhookEndpoint": obj(endpoint),
        "WebhookEndpointCreated": obj({**endpoint, **secret}),
        "WebhookEndpointList": list_of(obj(endpoint), paged=True),
        "WebhookEndpointBody": obj(
            {
                "url": {"type": "string", "maxLength": 2000},
                "description": {"type": "string", "maxLength": 500},
                "events": _EVENTS,
                "enabled": {"type": "boolean"},
            },
            [],
        ),
        "WebhookSecret": obj(secret),
        "WebhookRotation": obj(
            {"overlap_seconds": {"type": "number", "minimum": 0, "maximum": 604800, "default": 86400}}, []
        ),
        "WebhookMessage": obj(message),
        "WebhookMessageList": list_of(obj(message), paged=True),
        "WebhookRedelivery": obj({"redelivering": {"type": "integer", "minimum": 0}}),
    }


def paths(h: Any) -> Schema:
    """``h`` is `web.openapi_doc` (its helpers)."""
    endpoint_id = h._param(
        "endpoint_id", "path", {**h._SEGMENT, "examples": ["whe_0123456789abcdef01234567"]}, "The endpoint."
    )
    message_id = h._param("message_id", "path", {**h._SEGMENT}, "The message (`webhook-id`).")
    invalid = h._error_response(
        "A field is refused, named by `field`: an unknown field (`unknown_field`), a URL that is not "
        "http(s) (`invalid_url`) or points at an internal address (`url_not_allowed`), an unknown "
        f"event type (`invalid_request`), more than {MAX_ENDPOINTS} endpoints."
    )
    found = {"404": h._use("NotFound")}
    tag = "webhooks"
    base = "/v1/webhook-endpoints"
    one = f"{base}/{{endpoint_id}}"
    rotation = h._json_body(h._ref("WebhookRotation"), required=False)
    return {
        base: {
            "post": h._op(
                "Create a webhook endpoint; the answer shows its signing secret",
                {
                    "201": h._json(
                        h._ref("WebhookEndpointCreated"), "Created.", Location=h._location(f"{one}")
                    ),
                    "422": invalid,
                },
                tag=tag,
                write=True,
                body=h._json_body(h._ref("WebhookEndpointBody")),
                operation_id="createWebhookEndpoint",
            ),
            "get": h._op(
                "List webhook endpoints, newest first",
                {"200": h._json(h._ref("WebhookEndpointList"), "One page."), "422": h._use("Invalid")},
                tag=tag,
                params=h._page_params(),
                operation_id="listWebhookEndpoints",
            ),
        },
        one: {
            "get": h._op(
                "Read a webhook endpoint",
                {"200": h._json(h._ref("WebhookEndpoint"), "The endpoint."), **found},
                tag=tag,
                params=[endpoint_id],
                operation_id="getWebhookEndpoint",
            ),
            "patch": h._op(
                "Change a webhook endpoint (enabling it clears `disabled_reason`)",
                {"200": h._json(h._ref("WebhookEndpoint"), "The changed endpoint."), "422": invalid, **found},
                tag=tag,
                write=True,
                params=[endpoint_id],
                body=h._json_body(h._ref("WebhookEndpointBody")),
                operation_id="updateWebhookEndpoint",
            ),
            "delete": h._op(
                "Delete a webhook endpoint and its delivery log",
                {"204": {"description": "Deleted."}, **found},
                tag=tag,
                write=True,
                params=[endpoint_id],
                operation_id="deleteWebhookEndpoint",
            ),
        },
        f"{one}/secret": {
            "get": h._op(
                "Read the endpoint's signing secret (and the previous one while it overlaps)",
                {"200": h._json(h._ref("WebhookSecret"), "The secret."), **found},
                tag=tag,
                params=[endpoint_id],
                operation_id="getWebhookEndpointSecret",
            ),
        },
        f"{one}/rotate-secret": {
            "post": h._op(
                "Rotate the signing secret; the old one keeps signing for `overlap_seconds`",
                {
                    "200": h._json(h._ref("WebhookSecret"), "The new secret."),
                    "422": h._use("Invalid"),
                    **found,
                },
                tag=tag,
                write=True,
                params=[endpoint_id],
                body=rotation,
                operation_id="rotateWebhookEndpointSecret",
            ),
        },
        f"{one}/test": {
            "post": h._op(
                "Send a `webhook.test` event to the endpoint",
                {
                    "202": h._json(h._ref("WebhookMessage"), "The message, on its way."),
                    "422": h._error_response("The endpoint is disabled (`field`: `enabled`)."),
                    **found,
                },
                tag=tag,
                write=True,
                params=[endpoint_id],
                operation_id="sendWebhookTest",
            ),
        },
        f"{one}/messages": {
            "get": h._op(
                "The endpoint's messages, newest first, each with its attempt log",
                {
                    "200": h._json(h._ref("WebhookMessageList"), "One page."),
                    "422": h._use("Invalid"),
                    **found,
                },
                tag=tag,
                params=[
                    endpoint_id,
                    *h._page_params(),
                    h._param("status", "query", {"enum": ["pending", "delivered", "failed"]}, "Only these."),
                    h._param("subject_id", "query", {"type": "string"}, "Only a job's or run's events."),
                ],
                operation_id="listWebhookMessages",
            ),
        },
        f"{one}/messages/{{message_id}}": {
            "get": h._op(
                "Read one message and its attempt log",
                {"200": h._json(h._ref("WebhookMessage"), "The message."), **found},
                tag=tag,
                params=[endpoint_id, message_id],
                operation_id="getWebhookMessage",
            ),
        },
        f"{one}/messages/{{message_id}}/redeliver": {
            "post": h._op(
                "Send one message again (a new round of attempts, the same `webhook-id`)",
                {"202": h._json(h._ref("WebhookRedelivery"), "On its way."), **found},
                tag=tag,
                write=True,
                params=[endpoint_id, message_id],
                operation_id="redeliverWebhookMessage",
            ),
        },
        f"{one}/redeliver": {
            "post": h._op(
                "Send again every message of the endpoint since a time",
                {
                    "202": h._json(h._ref("WebhookRedelivery"), "On their way."),
                    "422": h._use("Invalid"),
                    **found,
                },
                tag=tag,
                write=True,
                params=[endpoint_id],
                body=h._json_body(
                    _since(h),
                ),
                operation_id="redeliverWebhookMessages",
            ),
        },
        "/v1/webhook-messages": {
            "get": h._op(
                "The log per event: messages to every endpoint (per-job webhooks included), newest "
                "first, each with its attempts",
                {"200": h._json(h._ref("WebhookMessageList"), "One page."), "422": h._use("Invalid")},
                tag=tag,
                params=[
                    *h._page_params(),
                    h._param("subject_id", "query", {"type": "string"}, "A job's or run's messages."),
                    h._param("seq", "query", {"type": "integer", "minimum": 0}, "One event's messages."),
                    h._param("type", "query", {"type": "string", "maxLength": 60}, "One event type's."),
                ],
                operation_id="listAllWebhookMessages",
            ),
        },
        "/v1/webhook-messages/{message_id}": {
            "get": h._op(
                "Read one message (to any of your endpoints) and its attempt log",
                {"200": h._json(h._ref("WebhookMessage"), "The message."), **found},
                tag=tag,
                params=[message_id],
                operation_id="getAnyWebhookMessage",
            ),
        },
        "/v1/webhook-messages/{message_id}/redeliver": {
            "post": h._op(
                "Send one message (to any of your endpoints) again",
                {"202": h._json(h._ref("WebhookRedelivery"), "On its way."), **found},
                tag=tag,
                write=True,
                params=[message_id],
                operation_id="redeliverAnyWebhookMessage",
            ),
        },
        "/v1/webhook-signing-key": {
            "get": h._op(
                "Read the secret that signs your per-job webhooks (made on first use)",
                {"200": h._json(h._ref("WebhookSecret"), "The secret.")},
                tag=tag,
                operation_id="getWebhookSigningKey",
            ),
        },
        "/v1/webhook-signing-key/rotate": {
            "post": h._op(
                "Rotate the per-job webhook secret; the old one keeps signing for `overlap_seconds`",
                {"200": h._json(h._ref("WebhookSecret"), "The new secret."), "422": h._use("Invalid")},
                tag=tag,
                write=True,
                body=rotation,
                operation_id="rotateWebhookSigningKey",
            ),
        },
    }


def _since(h: Any) -> Schema:
    return h._obj({"since": {"type": "string", "format": "date-time"}})
