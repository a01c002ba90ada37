"""Stripe billing: Checkout against the local stand-in, webhooks signed like Stripe's, on SQLite
and PostgreSQL. After every scenario the ledger must prove itself (`ledger.check`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from faktry.config import Settings
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import Tenant
from quotas import billing, ledger
from quotas.limits import (
    DEFAULT_TIERS,
    GIB,
    StorageQuotaExceeded,
    commit_reservation,
    reserve_storage,
    tier_limits,
)
from quotas.models import MILLI, Account, StripeEvent, Tier
from tests.stripe_fake import StripeFake, signed_headers, subscription_event

WEBHOOK_SECRET = "whsec_faktry_test_5f0c1a7e9d2b4c6a8e0f"
PRICE_TIERS = {"price_creator_monthly": "creator", "price_studio_monthly": "studio"}


class Shop:
    """The app wired to the Stripe stand-in, and ways to look at what billing did."""

    def __init__(self, app: Any, fake: StripeFake, sessions: sessionmaker[Session]) -> None:
        self.app = app
        self.fake = fake
        self.sessions = sessions
        self.client: FlaskClient = app.test_client()

    def configure(self, **changes: Any) -> None:
        services = self.app.extensions["faktry"]
        services.settings = services.settings.replace(**changes)

    def deliver(self, event: dict[str, Any], *, client: FlaskClient | None = None) -> Any:
        payload = json.dumps(event)
        return (client or self.client).post(
            "/v1/billing/webhook", data=payload, headers=signed_headers(payload, WEBHOOK_SECRET)
        )

    def deliver_together(self, events: list[dict[str, Any]]) -> list[Any]:
        """Deliver every event at the same moment, each from its own thread and client."""
        start = threading.Barrier(len(events))

        def deliver(event: dict[str, Any]) -> Any:
            client = self.app.test_client()
            start.wait(timeout=10)
            return self.deliver(event, client=client)

        with ThreadPoolExecutor(len(events)) as pool:
            return list(pool.map(deliver, events))

    def status_of(self, event: dict[str, Any]) -> str:
        response = self.deliver(event)
        assert response.status_code == 200, response.json
        return str(response.json["status"])

    def buy(self, tenant_id: str, **pack: Any) -> str:
        """A paid checkout of ``pack``, delivered; returns the checkout session's id."""
        session_id = self.fake.checkout(tenant_id, **pack)
        assert self.status_of(self.fake.completed(session_id)) == "applied"
        return session_id

    def balance(self, tenant_id: str) -> ledger.Balance:
        with transaction(self.sessions) as session:
            return ledger.balance(session, tenant_id)

    def tier(self, tenant_id: str) -> str:
        with transaction(self.sessions) as session:
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            return tenant.tier

    def events(self) -> dict[str, str]:
        with transaction(self.sessions) as session:
            return {row.id: row.status for row in session.execute(select(StripeEvent.id, StripeEvent.status))}


@pytest.fixture
def shop(app: Any, settings: Settings, stripe_fake: StripeFake) -> Iterator[Shop]:
    engine = make_engine(settings.resolved_database_url)
    shop = Shop(app, stripe_fake, make_sessionmaker(engine))
    with transaction(shop.sessions) as session:
        # The migration seeds the tiers; the PostgreSQL fixture empties every table between tests.
        for name, limits in DEFAULT_TIERS.items():
            if session.get(Tier, name) is None:
                session.add(Tier(name=name, **limits))
    shop.configure(
        stripe_secret_key=stripe_fake.secret_key,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_fake.url,
        stripe_price_tiers=json.dumps(PRICE_TIERS),
    )
    yield shop
    with transaction(shop.sessions) as session:
        problems = ledger.check(session)
    engine.dispose()
    assert problems == []


@pytest.fixture
def buyer(make_tenant: Callable[..., Any]) -> Any:
    """A tenant with no credits yet."""
    return make_tenant(credits=0)


# -- checkout ----------------------------------------------------------------------------------


def test_checkout_returns_the_stand_ins_payment_page_and_sent_the_packs_price_credits_and_tenant(
    shop: Shop, buyer: Any
) -> None:
    response = shop.client.post("/v1/billing/checkout", json={"pack": "creator"}, headers=buyer.headers)

    assert response.status_code == 201, response.json
    assert response.json["url"] == f"{shop.fake.url}/pay/{response.json['session_id']}"
    assert response.json["session_id"].startswith("cs_test_")
    [sent] = shop.fake.requests
    assert sent.path == "/v1/checkout/sessions"
    assert sent.headers["Authorization"] == f"Bearer {shop.fake.secret_key}"
    metadata = {"tenant_id": buyer.id, "pack": "creator", "credits": "1000"}
    assert sent.params == {
        "mode": "payment",
        "line_items": [
            {
                "quantity": "1",
                "price_data": {
                    "currency": "eur",
                    "unit_amount": "8000",
                    "product_data": {"name": "1,000 credits"},
                },
            }
        ],
        "client_reference_id": buyer.id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "customer_creation": "always",
        "success_url": "http://127.0.0.1:8000/billing/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:8000/billing/cancel",
    }


def test_paying_the_checkout_grants_the_pack_and_the_next_checkout_reuses_the_stripe_customer(
    shop: Shop, buyer: Any
) -> None:
    started = shop.client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers)
    session_id = started.json["session_id"]

    assert shop.status_of(shop.fake.completed(session_id)) == "applied"

    assert shop.balance(buyer.id).available == 100 * MILLI
    customer = shop.fake.customer_of(session_id)
    with transaction(shop.sessions) as session:
        account = session.get(Account, buyer.id)
        assert account is not None and account.stripe_customer_id == customer
    again = shop.client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers)
    assert again.status_code == 201
    assert shop.fake.requests[-1].params["customer"] == customer
    assert "customer_creation" not in shop.fake.requests[-1].params


def test_the_packs_are_listed_and_can_be_replaced_in_the_settings(shop: Shop, buyer: Any) -> None:
    shipped = shop.client.get("/v1/billing/packs", headers=buyer.headers)
    assert [p["id"] for p in shipped.json["data"]] == list(billing.DEFAULT_PACKS)

    shop.configure(
        credit_packs=json.dumps({"tiny": {"credits": 5, "amount": 99, "currency": "USD", "name": "Tiny"}})
    )

    assert shop.client.get("/v1/billing/packs", headers=buyer.headers).json["data"] == [
        {"id": "tiny", "object": "credit_pack", "name": "Tiny", "credits": 5, "amount": 99, "currency": "usd"}
    ]
    assert (
        shop.client.post("/v1/billing/checkout", json={"pack": "tiny"}, headers=buyer.headers).status_code
        == 201
    )
    assert shop.fake.requests[-1].params["line_items"][0]["price_data"]["unit_amount"] == "99"


@pytest.mark.parametrize("body", [{"pack": "platinum"}, {"pack": 3}, {}, None])
def test_an_unknown_pack_is_refused_with_422_naming_the_field(shop: Shop, buyer: Any, body: Any) -> None:
    response = shop.client.post("/v1/billing/checkout", json=body, headers=buyer.headers)

    assert response.status_code == 422
    assert response.json["error"]["field"] == "pack"
    assert shop.fake.requests == []


def test_checkout_needs_an_api_key_or_a_session(shop: Shop) -> None:
    assert shop.client.post("/v1/billing/checkout", json={"pack": "starter"}).status_code == 401
    assert shop.client.get("/v1/billing/packs").status_code == 401


def test_checkout_without_a_stripe_key_answers_409_payments_disabled(shop: Shop, buyer: Any) -> None:
    shop.configure(stripe_secret_key="")

    response = shop.client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "payments_disabled"


def test_a_stripe_server_error_is_retried_with_the_same_idempotency_key(shop: Shop, buyer: Any) -> None:
    shop.fake.fail_next = [500]

    response = shop.client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers)

    assert response.status_code == 201
    first, second = shop.fake.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


@pytest.mark.parametrize(
    ("failures", "code"),
    [
        ([429], "temporarily_unavailable"),
        ([500, 500, 500], "temporarily_unavailable"),
        ([400], "billing_unavailable"),
    ],
)
def test_stripe_failures_become_faktry_errors_with_503(
    shop: Shop, buyer: Any, failures: list[int], code: str
) -> None:
    shop.fake.fail_next = list(failures)

    response = shop.client.post("/v1/billing/checkout", json={"pack": "starter"}, headers=buyer.headers)

    assert response.status_code == 503
    assert response.json["error"]["code"] == code
    assert len(shop.fake.requests) == len(failures)  # 429 and 400 are not retried, 500 twice


# -- webhook signatures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forgery", ["tampered_body", "wrong_secret", "stale_timestamp", "missing_header", "garbage_header"]
)
def test_a_webhook_without_a_valid_signature_is_refused_with_400_and_changes_nothing(
    shop: Shop, buyer: Any, forgery: str
) -> None:
    event = shop.fake.completed(shop.fake.checkout(buyer.id))
    payload = json.dumps(event)
    body, headers = payload, signed_headers(payload, WEBHOOK_SECRET)
    if forgery == "tampered_body":
        body = payload.replace('"credits": "1000"', '"credits": "9999"')
        assert body != payload
    elif forgery == "wrong_secret":
        headers = signed_headers(payload, "whsec_someone_else")
    elif forgery == "stale_timestamp":
        headers = signed_headers(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    elif forgery == "missing_header":
        del headers["Stripe-Signature"]
    else:
        headers["Stripe-Signature"] = "t=yesterday,v1=trust-me"

    response = shop.client.post("/v1/billing/webhook", data=body, headers=headers)

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert shop.balance(buyer.id).available == 0
    assert shop.events() == {}
    # The genuine delivery is not taken for a duplicate of the forged one.
    assert shop.status_of(event) == "applied"


def test_a_signature_inside_the_tolerance_and_a_rotated_secret_are_accepted(shop: Shop, buyer: Any) -> None:
    payload = json.dumps(shop.fake.completed(shop.fake.checkout(buyer.id)))
    headers = signed_headers(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 240)
    old = signed_headers(payload, "whsec_retired", timestamp=int(time.time()) - 240)["Stripe-Signature"]
    headers["Stripe-Signature"] += "," + old.split(",")[1]

    response = shop.client.post("/v1/billing/webhook", data=payload, headers=headers)

    assert response.status_code == 200
    assert response.json == {"status": "applied"}


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"object": "event", "data": {}}'])
def test_a_signed_body_that_is_not_a_stripe_event_is_refused_with_400(shop: Shop, body: str) -> None:
    response = shop.client.post(
        "/v1/billing/webhook", data=body, headers=signed_headers(body, WEBHOOK_SECRET)
    )

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert shop.events() == {}


def test_webhooks_are_refused_with_400_while_no_signing_secret_is_configured(shop: Shop, buyer: Any) -> None:
    shop.configure(stripe_webhook_secret="")

    response = shop.deliver(shop.fake.completed(shop.fake.checkout(buyer.id)))

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert shop.balance(buyer.id).available == 0


# -- exactly once ------------------------------------------------------------------------------


def test_a_checkout_delivered_twice_grants_its_credits_once(shop: Shop, buyer: Any) -> None:
    event = shop.fake.completed(shop.fake.checkout(buyer.id))

    assert shop.status_of(event) == "applied"
    assert shop.status_of(event) == "duplicate"

    balance = shop.balance(buyer.id)
    assert balance.available == 1000 * MILLI
    assert len(balance.lots) == 1


@pytest.mark.parametrize("redelivery", ["same_event", "new_event_each_time"])
def test_a_checkout_delivered_concurrently_from_eight_threads_grants_its_credits_once(
    shop: Shop, buyer: Any, redelivery: str
) -> None:
    session_id = shop.fake.checkout(buyer.id)
    first = shop.fake.completed(session_id)
    events = [first if redelivery == "same_event" else shop.fake.completed(session_id) for _ in range(8)]
    responses = shop.deliver_together(events)

    results = [(r.status_code, r.json.get("status")) for r in responses]
    assert sorted(results) == [(200, "applied")] + [(200, "duplicate")] * 7
    balance = shop.balance(buyer.id)
    assert balance.available == 1000 * MILLI
    assert len(balance.lots) == 1


def test_an_unpaid_checkout_grants_nothing_until_its_async_payment_succeeds(shop: Shop, buyer: Any) -> None:
    session_id = shop.fake.checkout(buyer.id)

    assert shop.status_of(shop.fake.completed(session_id, payment_status="unpaid")) == "ignored"
    assert shop.balance(buyer.id).available == 0

    succeeded = shop.fake.completed(session_id, event_type="checkout.session.async_payment_succeeded")
    assert shop.status_of(succeeded) == "applied"
    assert shop.balance(buyer.id).available == 1000 * MILLI


def test_events_billing_does_not_handle_are_acknowledged_and_ignored(shop: Shop, buyer: Any) -> None:
    session_id = shop.fake.checkout(buyer.id)
    other = shop.fake.completed(session_id) | {"type": "invoice.paid"}

    assert shop.status_of(other) == "ignored"
    assert shop.status_of(other) == "duplicate"


# -- refunds -----------------------------------------------------------------------------------


def _refund_scenario(shop: Shop, tenant_id: str, *, reverse: bool, charge_metadata: bool) -> list[str]:
    session_id = shop.fake.checkout(tenant_id)
    paid = shop.fake.completed(session_id)
    refunds = [shop.fake.refunded(session_id, 2000), shop.fake.refunded(session_id, 2000)]  # 25 %, then 50 %
    if not charge_metadata:
        for refund in refunds:
            refund["data"]["object"]["metadata"] = {}
    order = [*reversed(refunds), paid] if reverse else [paid, *refunds]
    return [shop.status_of(event) for event in order]


@pytest.mark.parametrize("charge_metadata", [True, False])
def test_refunds_delivered_before_their_purchase_end_in_the_same_state_as_in_order(
    shop: Shop, make_tenant: Callable[..., Any], charge_metadata: bool
) -> None:
    in_order, out_of_order = make_tenant(credits=0), make_tenant(credits=0)

    statuses = _refund_scenario(shop, in_order.id, reverse=False, charge_metadata=charge_metadata)
    reversed_statuses = _refund_scenario(shop, out_of_order.id, reverse=True, charge_metadata=charge_metadata)

    assert statuses == ["applied", "applied", "applied"]
    assert reversed_statuses == ["parked", "parked", "applied"]
    expected, got = shop.balance(in_order.id), shop.balance(out_of_order.id)
    assert (got.available, got.held, got.debt) == (expected.available, expected.held, expected.debt)
    assert expected.available == 500 * MILLI
    assert "parked" not in shop.events().values()


def test_a_full_refund_delivered_concurrently_with_its_purchase_always_ends_at_zero(
    shop: Shop, make_tenant: Callable[..., Any]
) -> None:
    for _ in range(4):
        tenant = make_tenant(credits=0)
        session_id = shop.fake.checkout(tenant.id)
        responses = shop.deliver_together([shop.fake.completed(session_id), shop.fake.refunded(session_id)])

        assert [r.status_code for r in responses] == [200, 200]
        balance = shop.balance(tenant.id)
        assert (balance.available, balance.debt) == (0, 0)
    assert "parked" not in shop.events().values()


def test_partial_refunds_are_cumulative_so_their_order_and_repetition_do_not_matter(
    shop: Shop, buyer: Any
) -> None:
    session_id = shop.buy(buyer.id)
    quarter = shop.fake.refunded(session_id, 2000)
    three_quarters = shop.fake.refunded(session_id, 4000)

    assert shop.status_of(three_quarters) == "applied"
    assert shop.status_of(quarter) == "duplicate"  # already covered by the later, larger total
    assert shop.status_of(three_quarters) == "duplicate"

    assert shop.balance(buyer.id).available == 250 * MILLI


def test_a_refund_after_partial_spend_takes_back_the_rest_and_the_spent_part_becomes_debt(
    shop: Shop, buyer: Any
) -> None:
    session_id = shop.buy(buyer.id, pack="starter", credits=100, amount=1000)
    with transaction(shop.sessions) as session:
        ledger.hold(session, buyer.id, "job_spent_before_refund", 30 * MILLI)
    with transaction(shop.sessions) as session:
        ledger.capture(session, buyer.id, "job_spent_before_refund", 30 * MILLI)

    assert shop.status_of(shop.fake.refunded(session_id)) == "applied"

    balance = shop.balance(buyer.id)
    assert (balance.available, balance.debt) == (0, 30 * MILLI)
    with pytest.raises(ledger.AccountInDebt) as refused, transaction(shop.sessions) as session:
        ledger.hold(session, buyer.id, "job_after_refund", 1)
    assert refused.value.status == 402

    shop.buy(buyer.id, pack="creator", credits=1000, amount=8000)

    balance = shop.balance(buyer.id)
    assert (balance.available, balance.debt) == (970 * MILLI, 0)
    with transaction(shop.sessions) as session:
        ledger.hold(session, buyer.id, "job_after_paying_the_debt", 1)


def test_credits_held_by_a_running_job_at_refund_time_become_debt_that_their_release_pays(
    shop: Shop, buyer: Any
) -> None:
    session_id = shop.buy(buyer.id, pack="starter", credits=100, amount=1000)
    with transaction(shop.sessions) as session:
        ledger.hold(session, buyer.id, "job_running_at_refund", 40 * MILLI)

    assert shop.status_of(shop.fake.refunded(session_id)) == "applied"
    assert shop.balance(buyer.id).debt == 40 * MILLI

    with transaction(shop.sessions) as session:
        ledger.release(session, buyer.id, "job_running_at_refund")
    balance = shop.balance(buyer.id)
    assert (balance.available, balance.held, balance.debt) == (0, 0, 0)


def test_a_refund_that_raced_its_purchase_is_applied_by_the_parked_event_sweep(
    shop: Shop, buyer: Any
) -> None:
    session_id = shop.fake.checkout(buyer.id)
    paid = shop.fake.completed(session_id)
    refund = shop.fake.refunded(session_id)
    refund["data"]["object"]["metadata"] = {}
    assert shop.status_of(refund) == "parked"
    # The purchase committed without seeing the parked refund (a race on PostgreSQL).
    payment_intent = paid["data"]["object"]["payment_intent"]
    with transaction(shop.sessions) as session:
        ledger.add_credits(
            session, buyer.id, 1000 * MILLI, source="purchase", key="race", reference=payment_intent
        )

    with transaction(shop.sessions) as session:
        assert billing.retry_parked(session, packs=billing.DEFAULT_PACKS, price_tiers=PRICE_TIERS) == 1
    with transaction(shop.sessions) as session:
        assert billing.retry_parked(session, packs=billing.DEFAULT_PACKS, price_tiers=PRICE_TIERS) == 0

    assert shop.balance(buyer.id).available == 0
    assert shop.events()[refund["id"]] == "applied"


# -- subscriptions -----------------------------------------------------------------------------


def _customer(shop: Shop, tenant_id: str) -> str:
    return shop.fake.customer_of(shop.buy(tenant_id))


def test_subscription_events_change_the_tier_through_the_price_map(shop: Shop, buyer: Any) -> None:
    customer = _customer(shop, buyer.id)
    now = int(time.time())

    def sub(kind: str, price: str, at: int, **extra: Any) -> str:
        event = subscription_event(
            f"customer.subscription.{kind}", customer=customer, price=price, created=at, **extra
        )
        return shop.status_of(event)

    assert sub("created", "price_creator_monthly", now) == "applied"
    assert shop.tier(buyer.id) == "creator"
    assert sub("updated", "price_studio_monthly", now + 1) == "applied"
    assert shop.tier(buyer.id) == "studio"
    assert sub("updated", "price_nobody_knows", now + 2) == "ignored"
    assert shop.tier(buyer.id) == "studio"
    assert sub("deleted", "price_studio_monthly", now + 3) == "applied"
    assert shop.tier(buyer.id) == "free"


@pytest.mark.parametrize("status", ["canceled", "unpaid"])
def test_a_canceled_or_unpaid_subscription_returns_the_tenant_to_free(
    shop: Shop, buyer: Any, status: str
) -> None:
    customer = _customer(shop, buyer.id)
    now = int(time.time())
    created = subscription_event(
        "customer.subscription.created", customer=customer, price="price_studio_monthly", created=now
    )
    ended = subscription_event(
        "customer.subscription.updated",
        customer=customer,
        price="price_studio_monthly",
        status=status,
        created=now + 1,
    )

    assert shop.status_of(created) == "applied"
    assert shop.status_of(ended) == "applied"
    assert shop.tier(buyer.id) == "free"


def test_subscription_events_out_of_order_keep_the_newest_state(shop: Shop, buyer: Any) -> None:
    customer = _customer(shop, buyer.id)
    now = int(time.time())
    created = subscription_event(
        "customer.subscription.created", customer=customer, price="price_creator_monthly", created=now
    )
    upgraded = subscription_event(
        "customer.subscription.updated", customer=customer, price="price_studio_monthly", created=now + 5
    )

    assert shop.status_of(upgraded) == "applied"
    assert shop.status_of(created) == "ignored"
    assert shop.tier(buyer.id) == "studio"


def test_a_subscription_event_before_its_customer_is_known_waits_for_the_checkout(
    shop: Shop, buyer: Any
) -> None:
    customer = "cus_not_seen_yet"
    now = int(time.time())
    created = subscription_event(
        "customer.subscription.created", customer=customer, price="price_creator_monthly", created=now
    )
    upgraded = subscription_event(
        "customer.subscription.updated", customer=customer, price="price_studio_monthly", created=now + 5
    )

    assert shop.status_of(upgraded) == "parked"
    assert shop.status_of(created) == "parked"
    assert shop.tier(buyer.id) == "free"

    session_id = shop.fake.checkout(buyer.id, customer=customer)
    assert shop.status_of(shop.fake.completed(session_id)) == "applied"

    assert shop.tier(buyer.id) == "studio"
    assert shop.events()[created["id"]] == shop.events()[upgraded["id"]] == "applied"  # oldest first


def test_a_downgrade_below_usage_blocks_new_uploads_and_deletes_nothing(shop: Shop, buyer: Any) -> None:
    customer = _customer(shop, buyer.id)
    now = int(time.time())
    shop.status_of(
        subscription_event(
            "customer.subscription.created", customer=customer, price="price_studio_monthly", created=now
        )
    )
    with transaction(shop.sessions) as session:
        quota = tier_limits(session, shop.tier(buyer.id)).storage_quota_bytes
        commit_reservation(session, reserve_storage(session, buyer.id, 2 * GIB, quota).id)

    shop.status_of(
        subscription_event(
            "customer.subscription.deleted", customer=customer, price="price_studio_monthly", created=now + 1
        )
    )

    assert shop.tier(buyer.id) == "free"
    with pytest.raises(StorageQuotaExceeded), transaction(shop.sessions) as session:
        reserve_storage(session, buyer.id, 1, tier_limits(session, "free").storage_quota_bytes)
    with transaction(shop.sessions) as session:
        account = session.get(Account, buyer.id)
        assert account is not None and account.storage_used_bytes == 2 * GIB


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"p": {"credits": 0, "amount": 100}}',
        '{"p": {"credits": 10, "amount": "100"}}',
        '{"p": {"credits": 10, "amount": 100, "currency": "euro"}}',
    ],
)
def test_credit_packs_that_make_no_sense_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="FAKTRY_CREDIT_PACKS"):
        billing.packs_from_json(text)


def test_price_tiers_must_map_price_ids_to_tier_names() -> None:
    assert billing.price_tiers_from_json("") == {}
    assert billing.price_tiers_from_json('{"price_1": "studio"}') == {"price_1": "studio"}
    with pytest.raises(ValueError, match="FAKTRY_STRIPE_PRICE_TIERS"):
        billing.price_tiers_from_json('{"price_1": 3}')
