"""Webhooks: events pushed to a tenant's endpoints, signed, retried, logged.

- `models`: endpoints, the outbox of messages, the attempt log, per-job signing keys.
- `outbox`: an event's messages, written in the event's transaction, kicked after commit.
- `delivery`: one delivery (claim, send, record) and the sweep of due messages.
- `safehttp`: the HTTP client that refuses internal addresses and bounds every exchange.
- `signing`: Standard Webhooks signatures.
- `endpoints`: the services behind ``/v1/webhook-endpoints``.

docs/webhooks.md is the receiver's guide.
"""
