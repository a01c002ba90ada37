"""Account events: ``credits.low`` when a hold takes the balance below the line, once;
``payment.completed`` for a purchase, in the transaction that added the credits."""

from __future__ import annotations

import json

from faktry.db import transaction
from pipelines.webhooks import outbox
from quotas import ledger
from quotas.models import MILLI
from tests.webhooks.conftest import drain


def test_credits_low_is_sent_when_a_hold_crosses_the_line_and_not_again_below_it(
    client, make_tenant, receiver, sessions, policy
):
    tenant = make_tenant(credits=12)
    client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "events": ["credits.low"]}, headers=tenant.headers
    )
    for job, price in (("job_a", 1 * MILLI), ("job_b", 2 * MILLI), ("job_c", 1 * MILLI)):
        with transaction(sessions) as session:
            ledger.hold(session, tenant.id, job, price)
            outbox.job_event(session, 1, job, tenant.id, "created", "queued", 0, {"price": price}, at_now())
    assert drain(sessions, policy) == ["delivered"]  # 12 → 11 (no), 11 → 9 (crossed), 9 → 8 (no)
    sent = json.loads(receiver.got[0].body)
    assert sent["type"] == "credits.low" and sent["data"]["available"] == 9 * MILLI


def test_a_purchase_sends_payment_completed_in_its_own_transaction(
    client, tenant, receiver, sessions, policy
):
    client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["payment.completed"]},
        headers=tenant.headers,
    )
    with transaction(sessions) as session, outbox.payments(session):
        ledger.add_credits(session, tenant.id, 50 * MILLI, source="purchase", key="stripe:checkout:cs_1")
        ledger.add_credits(session, tenant.id, 5 * MILLI, source="grant", key="grant:x")
    assert drain(sessions, policy) == ["delivered"]
    sent = json.loads(receiver.got[0].body)
    assert sent["type"] == "payment.completed" and sent["data"]["credits"] == 50


def at_now():
    from faktry import clock

    return clock.now()


def test_a_paid_stripe_checkout_sends_payment_completed(app, client, tenant, receiver, sessions, policy):
    from tests.stripe_fake import event, signed_headers

    services = app.extensions["faktry"]
    services.settings = services.settings.replace(stripe_webhook_secret="whsec_stripe_test_0123")
    client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["payment.completed"]},
        headers=tenant.headers,
    )
    checkout = {
        "id": "cs_test_hooks", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
        "payment_intent": "pi_hooks", "metadata": {"tenant_id": tenant.id, "credits": "25"},
    }  # fmt: skip
    payload = json.dumps(event("checkout.session.completed", checkout))
    r = client.post(
        "/v1/billing/webhook", data=payload, headers=signed_headers(payload, "whsec_stripe_test_0123")
    )
    assert r.status_code == 200 and r.json["status"] == "applied", r.json
    assert drain(sessions, policy) == ["delivered"]
    sent = json.loads(receiver.got[0].body)
    assert sent["type"] == "payment.completed"
    assert (sent["data"]["credits"], sent["data"]["reference"]) == (25, "pi_hooks")
