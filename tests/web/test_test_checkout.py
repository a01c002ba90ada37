"""Payments without Stripe: off (the API refuses and says so), or the test checkout, which
pays through the very webhook code Stripe's events go through, once."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from faktry.db import transaction
from quotas import billing, ledger
from quotas.models import MILLI
from tests.stripe_fake import StripeFake

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


def configure(app: Any, **changes: Any) -> None:
    services = app.extensions["faktry"]
    services.settings = services.settings.replace(**changes)


def log_in(client: Any, handle: Any) -> str:
    r = client.post("/v1/session", json={"email": handle.email, "password": PASSWORD})
    assert r.status_code == 201
    return str(r.json["csrf_token"])


def balance(app: Any, tenant_id: str) -> int:
    with transaction(app.extensions["faktry"].sessions) as session:
        return ledger.balance(session, tenant_id).available


@pytest.fixture
def buyer(make_tenant: Any) -> Any:
    return make_tenant(credits=0, password=PASSWORD)


@pytest.fixture
def test_mode(app: Any) -> Any:
    configure(app, stripe_secret_key="", stripe_webhook_secret="", payments_test_mode=True)
    return app


def test_with_payments_off_the_packs_say_so_and_checkout_is_a_409_payments_disabled(
    app: Any, client: Any, buyer: Any
) -> None:
    configure(app, stripe_secret_key="", payments_test_mode=False)

    packs = client.get("/v1/billing/packs", headers=buyer.headers).json
    response = client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers)

    assert packs["payments"] == "off"
    assert response.status_code == 409
    assert response.json["error"]["code"] == "payments_disabled"
    assert "not set up" in response.json["error"]["message"]


def test_packs_say_what_a_credit_buys_at_this_deployments_prices(app: Any, client: Any, buyer: Any) -> None:
    configure(app, prices="")

    examples = client.get("/v1/billing/packs", headers=buyer.headers).json["examples"]

    transcode = next(e for e in examples if e["job_type"] == "video.transcode")
    assert (transcode["preset"], transcode["unit"], transcode["millicredits"]) == ("mp4_720p", "minute", 1000)


def test_the_test_checkout_is_marked_and_paying_it_grants_the_pack_once_and_returns_to_success(
    test_mode: Any, client: Any, buyer: Any
) -> None:
    csrf = log_in(client, buyer)
    assert client.get("/v1/billing/packs", headers=buyer.headers).json["payments"] == "test"
    started = client.post(
        "/v1/billing/checkout", json={"pack": "starter"}, headers={"X-CSRF-Token": csrf}
    ).json
    session_id = started["session_id"]
    path = started["url"].split("://", 1)[1].split("/", 1)[1]
    assert "/" + path == f"/billing/test-checkout/{session_id}"

    page = client.get("/" + path, headers=HTML)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "TEST MODE" in text and 'id="pay"' in text and 'href="/billing/cancel"' in text
    assert client.get(f"/v1/billing/checkout/{session_id}", headers=buyer.headers).json["status"] == "unpaid"

    paid = client.post("/" + path, data={"csrf": csrf})
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"/billing/success?session_id={session_id}"
    assert balance(test_mode, buyer.id) == 100 * MILLI
    status = client.get(f"/v1/billing/checkout/{session_id}", headers=buyer.headers).json
    assert (status["status"], status["credits_added"]) == ("credited", 100 * MILLI)

    # Paying again (a reload, a double click) grants nothing more.
    assert client.post("/" + path, data={"csrf": csrf}).status_code == 303
    assert balance(test_mode, buyer.id) == 100 * MILLI
    assert "paid already" in client.get("/" + path, headers=HTML).get_data(as_text=True)


def test_the_test_checkouts_event_is_signed_like_stripes_and_a_replay_at_the_webhook_grants_nothing(
    test_mode: Any, client: Any, buyer: Any
) -> None:
    settings = test_mode.extensions["faktry"].settings
    twin = billing.TestModeBilling(settings.secret_key, settings.public_url)
    started = client.post("/v1/billing/checkout", json={"pack": "creator"}, headers=buyer.headers).json
    checkout = twin.read(started["session_id"])
    assert checkout is not None and checkout.tenant_id == buyer.id
    payload = json.dumps(twin.completed_event(checkout)).encode()
    secret = billing.webhook_secret_of_test_mode(settings.secret_key)

    first = client.post(
        "/v1/billing/webhook",
        data=payload,
        headers={"Stripe-Signature": billing.sign_webhook(payload, secret)},
    )
    replay = client.post(
        "/v1/billing/webhook",
        data=payload,
        headers={"Stripe-Signature": billing.sign_webhook(payload, secret)},
    )
    forged = client.post(
        "/v1/billing/webhook",
        data=payload,
        headers={"Stripe-Signature": billing.sign_webhook(payload, "wrong")},
    )

    assert (first.json["status"], replay.json["status"]) == ("applied", "duplicate")
    assert forged.status_code == 400
    assert balance(test_mode, buyer.id) == 1000 * MILLI


def test_a_test_checkout_of_another_tenant_or_a_forged_id_is_not_found(
    test_mode: Any, client: Any, buyer: Any, make_tenant: Any
) -> None:
    other = make_tenant(credits=0)
    theirs = client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=other.headers).json
    csrf = log_in(client, buyer)

    assert client.get(f"/billing/test-checkout/{theirs['session_id']}", headers=HTML).status_code == 404
    assert (
        client.post(f"/billing/test-checkout/{theirs['session_id']}", data={"csrf": csrf}).status_code == 404
    )
    forged = billing.TEST_SESSION_PREFIX + "eyJ0Ijoi.forged.sig"
    assert client.get(f"/billing/test-checkout/{forged}", headers=HTML).status_code == 404
    assert (
        client.get(f"/v1/billing/checkout/{theirs['session_id']}", headers=buyer.headers).status_code == 404
    )
    assert balance(test_mode, other.id) == 0


def test_paying_the_test_checkout_needs_the_pages_csrf_token(test_mode: Any, client: Any, buyer: Any) -> None:
    log_in(client, buyer)
    started = client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers).json

    refused = client.post(f"/billing/test-checkout/{started['session_id']}", data={"csrf": "guess"})

    assert refused.status_code == 403
    assert balance(test_mode, buyer.id) == 0


def test_success_without_a_session_id_says_no_payment_was_made(client: Any, buyer: Any) -> None:
    log_in(client, buyer)

    text = client.get("/billing/success", headers=HTML).get_data(as_text=True)

    assert "No payment to show" in text and "nothing was charged" in text
    assert "went through" not in text


def test_success_with_a_session_id_asks_the_api_instead_of_claiming_the_payment_went_through(
    client: Any, buyer: Any
) -> None:
    log_in(client, buyer)

    text = client.get("/billing/success?session_id=cs_test_x", headers=HTML).get_data(as_text=True)

    assert 'data-session="cs_test_x"' in text
    assert "went through" not in text


def test_with_stripe_an_unknown_session_is_not_found_and_a_credited_one_says_so(
    app: Any, client: Any, buyer: Any, settings: Any
) -> None:
    fake = StripeFake(webhook_secret="whsec_h1").start()
    try:
        configure(
            app, stripe_secret_key=fake.secret_key, stripe_api_base=fake.url, stripe_webhook_secret="whsec_h1"
        )
        unknown = client.get("/v1/billing/checkout/cs_test_nothing", headers=buyer.headers)
        session_id = fake.checkout(buyer.id, pack="starter", credits=100, amount=1000)
        payload = json.dumps(fake.completed(session_id))
        headers = {"Stripe-Signature": billing.sign_webhook(payload.encode(), "whsec_h1")}
        assert client.post("/v1/billing/webhook", data=payload, headers=headers).json["status"] == "applied"
        known = client.get(f"/v1/billing/checkout/{session_id}", headers=buyer.headers).json
    finally:
        fake.stop()

    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "checkout_not_found"
    assert (known["status"], known["credits_added"]) == ("credited", 100 * MILLI)


def test_the_credits_page_says_where_payments_stand_and_buttons_follow_it(client: Any, buyer: Any) -> None:
    log_in(client, buyer)

    text = client.get("/credits", headers=HTML).get_data(as_text=True)

    # The script shows one of these from the packs' `payments` (see credits.js).
    assert re.search(r'id="payments-off"[^>]*hidden', text)
    assert "cannot be bought here" in text
    assert re.search(r'id="payments-test"[^>]*hidden', text)
