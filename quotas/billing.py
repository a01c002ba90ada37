"""Buying credits and tiers with Stripe.

Two halves:

* Starting a payment. `Billing` is the port, `StripeBilling` its adapter: it creates a Stripe
  Checkout Session for a credit pack and turns every Stripe error into a faktry error. No
  transaction may be open while it talks to Stripe.
* Paying without Stripe. `TestModeBilling` is the port's local twin for trying the whole
  buy-and-return flow: its payment page is faktry's own, marked TEST MODE, and paying there
  delivers the signed event Stripe would to the same webhook code (``FAKTRY_PAYMENTS_TEST_MODE``).
* Applying what Stripe reports. `verify_webhook` checks an event's signature on the raw body;
  `apply_event` applies a verified event to the database exactly once, whatever the number of
  deliveries, their order or their concurrency. Each event id is recorded in ``stripe_events``
  (a concurrent duplicate hits the primary key); purchases are ledger lots with the idempotency
  key ``stripe:checkout:<session id>`` and the payment intent as their reference; a refund
  that arrives before its purchase is parked and applied right after the purchase's lot is
  created, and so is a subscription event that arrives before its customer is known.

Refunds are cumulative in Stripe (a charge carries ``amount_refunded`` so far): a refund takes
back the lot's share of it minus what was already taken back for that lot. What remains of the
lot is removed, the rest becomes a debt that blocks new jobs until credits bought later pay it.
A tier comes from the subscription's first price through ``FAKTRY_STRIPE_PRICE_TIERS``; a
subscription with a price the map does not know is ignored. Lowering the tier deletes nothing:
quota checks compare usage with the current tier's quota and refuse new uploads until usage is
back under it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import stripe
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import FaktryError, TransientError, ValidationError
from faktry.tenancy import Tenant
from quotas import ledger
from quotas.limits import DEFAULT_TIERS
from quotas.models import MILLI, Account, CreditLot, LedgerEntry, StripeEvent, Tier
from quotas.pricing import PriceList

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

log = logging.getLogger("faktry.billing")

# -- packs and tiers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditPack:
    id: str
    credits: int
    #: The price in the currency's smallest unit (cents).
    amount: int
    currency: str
    name: str

    @property
    def millicredits(self) -> int:
        return self.credits * MILLI

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "credit_pack",
            "name": self.name,
            "credits": self.credits,
            "amount": self.amount,
            "currency": self.currency,
        }


DEFAULT_PACKS: dict[str, CreditPack] = {
    "starter": CreditPack("starter", credits=100, amount=1_000, currency="eur", name="100 credits"),
    "creator": CreditPack("creator", credits=1_000, amount=8_000, currency="eur", name="1,000 credits"),
    "studio": CreditPack("studio", credits=10_000, amount=60_000, currency="eur", name="10,000 credits"),
}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def packs_from_json(text: str) -> dict[str, CreditPack]:
    """The packs of ``FAKTRY_CREDIT_PACKS`` (they replace the shipped ones), or the shipped ones."""
    if not text.strip():
        return dict(DEFAULT_PACKS)
    raw = json.loads(text)
    if not isinstance(raw, dict) or not raw:
        raise ValueError("FAKTRY_CREDIT_PACKS must be a JSON object of pack id to pack")
    packs: dict[str, CreditPack] = {}
    for pack_id, spec in raw.items():
        if not isinstance(spec, dict):
            raise ValueError(f"FAKTRY_CREDIT_PACKS: pack {pack_id!r} must be an object")
        credits, amount = spec.get("credits"), spec.get("amount")
        currency, name = spec.get("currency", "eur"), spec.get("name", f"{credits} credits")
        if not isinstance(credits, int) or not isinstance(amount, int):
            raise ValueError(f"FAKTRY_CREDIT_PACKS: pack {pack_id!r} needs whole credits and amount")
        if not _positive_int(credits) or not _positive_int(amount):
            raise ValueError(f"FAKTRY_CREDIT_PACKS: pack {pack_id!r} needs positive whole credits and amount")
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            raise ValueError(f"FAKTRY_CREDIT_PACKS: pack {pack_id!r} needs a three-letter currency")
        if not isinstance(name, str) or not name:
            raise ValueError(f"FAKTRY_CREDIT_PACKS: pack {pack_id!r} needs a name")
        packs[pack_id] = CreditPack(pack_id, credits, amount, currency.lower(), name)
    return packs


def price_tiers_from_json(text: str) -> dict[str, str]:
    """``FAKTRY_STRIPE_PRICE_TIERS``: Stripe price id → tier name (empty: no subscriptions)."""
    if not text.strip():
        return {}
    raw = json.loads(text)
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
    ):
        raise ValueError("FAKTRY_STRIPE_PRICE_TIERS must be a JSON object of Stripe price id to tier name")
    return dict(raw)


# -- errors ------------------------------------------------------------------------------------


class BillingDisabled(FaktryError):
    """Payments are off on this deployment (no Stripe key, no test mode): asking again will
    not help, so it is a 4xx."""

    code = "payments_disabled"
    status = 409


class BillingUnavailable(FaktryError):
    code = "billing_unavailable"
    status = 503


class InvalidSignature(FaktryError):
    code = "invalid_signature"
    status = 400


# -- starting a payment ------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutResult:
    url: str
    session_id: str


@dataclass(frozen=True)
class CheckoutState:
    """What the payment provider says of a checkout session."""

    session_id: str
    tenant_id: str
    paid: bool


class Billing(Protocol):
    """Starts payments. Raises `BillingDisabled` when not configured, `TransientError` when the
    payment provider may answer if asked again, `BillingUnavailable` otherwise."""

    def create_checkout(
        self, *, tenant_id: str, pack: CreditPack, customer_id: str | None, success_url: str, cancel_url: str
    ) -> CheckoutResult:
        """A hosted payment page for ``pack``; paying it grants the pack through the webhook."""
        ...

    def checkout_state(self, session_id: str) -> CheckoutState | None:
        """The session as the provider knows it, None when it knows no such session."""
        ...


class StripeBilling:
    """`Billing` on Stripe Checkout. The client is built at first use (after fork)."""

    def __init__(
        self, secret_key: str, api_base: str = "", *, timeout: float = 20.0, max_network_retries: int = 2
    ) -> None:
        self._secret_key = secret_key
        self._api_base = api_base
        self._timeout = timeout
        self._max_network_retries = max_network_retries
        self._client: stripe.StripeClient | None = None
        self._lock = threading.Lock()

    def _stripe(self) -> stripe.StripeClient:
        if not self._secret_key:
            raise BillingDisabled("payments are not configured on this faktry")
        with self._lock:
            if self._client is None:
                self._client = stripe.StripeClient(
                    self._secret_key,
                    base_addresses={"api": self._api_base} if self._api_base else None,
                    max_network_retries=self._max_network_retries,
                    http_client=stripe.RequestsClient(timeout=self._timeout),
                )
            return self._client

    def create_checkout(
        self, *, tenant_id: str, pack: CreditPack, customer_id: str | None, success_url: str, cancel_url: str
    ) -> CheckoutResult:
        client = self._stripe()
        metadata = {"tenant_id": tenant_id, "pack": pack.id, "credits": str(pack.credits)}
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": pack.currency,
                        "unit_amount": pack.amount,
                        "product_data": {"name": pack.name},
                    },
                }
            ],
            "client_reference_id": tenant_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer_id:
            params["customer"] = customer_id
        else:
            params["customer_creation"] = "always"
        try:
            created = client.v1.checkout.sessions.create(params=params)
        except stripe.StripeError as err:
            raise _translate(err) from err
        url, session_id = getattr(created, "url", None), getattr(created, "id", None)
        if not isinstance(url, str) or not isinstance(session_id, str):
            raise BillingUnavailable("the payment provider answered without a payment page")
        return CheckoutResult(url=url, session_id=session_id)

    def checkout_state(self, session_id: str) -> CheckoutState | None:
        if not session_id.startswith("cs_") or not session_id.isascii() or len(session_id) > 200:
            return None
        client = self._stripe()
        try:
            found = client.v1.checkout.sessions.retrieve(session_id)
        except stripe.InvalidRequestError:
            return None  # Stripe knows no such session (404)
        except stripe.StripeError as err:
            raise _translate(err) from err
        metadata = getattr(found, "metadata", None) or {}
        tenant_id = metadata.get("tenant_id") or getattr(found, "client_reference_id", None)
        if not isinstance(tenant_id, str):
            return None
        return CheckoutState(session_id, tenant_id, getattr(found, "payment_status", None) == "paid")


def _translate(err: stripe.StripeError) -> FaktryError:
    status = err.http_status or 0
    log.warning("stripe error: %s (status %s, code %s)", err.user_message or err, status, err.code)
    if isinstance(err, stripe.APIConnectionError | stripe.RateLimitError) or status >= 500 or status == 429:
        return TransientError("the payment provider is unavailable; try again shortly")
    return BillingUnavailable("the payment provider refused the request")


# -- the test-mode twin ------------------------------------------------------------------------

#: Test-mode checkout sessions live this long, as Stripe's do.
TEST_SESSION_SECONDS = 24 * 3600
TEST_SESSION_PREFIX = "cs_test_faktry_"


@dataclass(frozen=True)
class TestCheckout:
    """A test-mode checkout session: who buys which pack, at which price."""

    __test__ = False  # not a pytest test class

    session_id: str
    tenant_id: str
    pack: str
    credits: int
    amount: int
    currency: str

    @property
    def payment_intent(self) -> str:
        return "pi_test_" + hashlib.sha256(self.session_id.encode()).hexdigest()[:24]


class TestModeBilling:
    """`Billing`'s local twin (``FAKTRY_PAYMENTS_TEST_MODE``): the payment page is faktry's own
    ``/billing/test-checkout/<session id>``, marked TEST MODE, and paying there delivers the
    ``checkout.session.completed`` event Stripe would, signed with `webhook_secret_of_test_mode`, to
    the same webhook code, so credits arrive exactly as after a real purchase (and once).

    Nothing is stored until the payment: a session id carries its tenant, pack and price,
    signed with the deployment's secret key, so every web process can read it and nobody can
    forge one; it expires after `TEST_SESSION_SECONDS`. No customer is created, so a later
    switch to Stripe starts with a clean customer link."""

    __test__ = False  # not a pytest test class

    def __init__(self, secret_key: str, base_url: str) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt="faktry.billing.test-checkout")
        self._base_url = base_url.rstrip("/")

    def create_checkout(
        self, *, tenant_id: str, pack: CreditPack, customer_id: str | None, success_url: str, cancel_url: str
    ) -> CheckoutResult:
        fields = [tenant_id, pack.id, pack.credits, pack.amount, pack.currency, secrets.token_hex(4)]
        token = self._signer.dumps(fields)
        session_id = TEST_SESSION_PREFIX + token
        return CheckoutResult(
            url=f"{self._base_url}/billing/test-checkout/{session_id}", session_id=session_id
        )

    def read(self, session_id: str) -> TestCheckout | None:
        """The session behind ``session_id``, None when it is not one of ours or has expired."""
        if not session_id.startswith(TEST_SESSION_PREFIX):
            return None
        try:
            raw = self._signer.loads(session_id[len(TEST_SESSION_PREFIX) :], max_age=TEST_SESSION_SECONDS)
            tenant_id, pack, credits, amount, currency, _ = raw
        except (BadData, TypeError, ValueError):
            return None
        return TestCheckout(session_id, str(tenant_id), str(pack), int(credits), int(amount), str(currency))

    def checkout_state(self, session_id: str) -> CheckoutState | None:
        found = self.read(session_id)
        # Paid shows in the ledger (the payment and its credits are one transaction).
        return CheckoutState(session_id, found.tenant_id, paid=False) if found else None

    def completed_event(self, checkout: TestCheckout) -> dict[str, Any]:
        """``checkout.session.completed`` for ``checkout``, as Stripe shapes it; the same event
        id each time, so paying twice is one event."""
        metadata = {"tenant_id": checkout.tenant_id, "pack": checkout.pack, "credits": str(checkout.credits)}
        digest = hashlib.sha256(checkout.session_id.encode()).hexdigest()[:24]
        now = int(clock.now().timestamp())
        return {
            "id": f"evt_test_{digest}",
            "object": "event",
            "created": now,
            "livemode": False,
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": checkout.session_id,
                    "object": "checkout.session",
                    "mode": "payment",
                    "status": "complete",
                    "payment_status": "paid",
                    "amount_total": checkout.amount,
                    "currency": checkout.currency,
                    "client_reference_id": checkout.tenant_id,
                    "customer": None,
                    "metadata": metadata,
                    "payment_intent": checkout.payment_intent,
                    "livemode": False,
                    "created": now,
                }
            },
        }


def webhook_secret_of_test_mode(secret_key: str) -> str:
    """The webhook signing secret of test mode when ``FAKTRY_STRIPE_WEBHOOK_SECRET`` is not
    set: derived from the secret key, so every process of the deployment agrees on it."""
    digest = hmac.new(secret_key.encode(), b"faktry test-mode webhook secret", hashlib.sha256)
    return "whsec_test_" + digest.hexdigest()[:40]


def sign_webhook(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``: ``t=<unix time>,v1=<hex
    HMAC-SHA256 of "<t>.<body>">`` (`verify_webhook` checks it against real time)."""
    t = int(clock.wall()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def checkout_key(session_id: str) -> str:
    """The ledger's idempotency key of the credits a checkout session bought."""
    return f"stripe:checkout:{session_id}"


def credited(session: Session, tenant_id: str, session_id: str) -> int | None:
    """Millicredits the checkout session added to the tenant, None while it added none."""
    return session.scalar(
        select(LedgerEntry.available).where(
            LedgerEntry.idempotency_key == checkout_key(session_id), LedgerEntry.tenant_id == tenant_id
        )
    )


# -- what a credit buys ------------------------------------------------------------------------


def credit_examples(prices: PriceList) -> list[dict[str, Any]]:
    """Common jobs at this deployment's prices, for showing what credits buy: each with what
    one unit of it costs, in millicredits."""
    table = prices.table
    wanted = [
        ("video.transcode", "mp4_720p", "minute", "minutes of video transcoded to 720p MP4"),
        ("image.resize", None, "image", "images resized"),
        ("video.captions", None, "minute", "minutes of video captioned"),
    ]
    examples = []
    for job_type, preset, unit, label in wanted:
        rule = table.get(job_type) or {}
        raw = rule.get("per_minute") if unit == "minute" else rule.get("flat")
        cost = raw.get(preset) if isinstance(raw, dict) and preset else raw
        if _positive_int(cost):
            examples.append({"job_type": job_type, "preset": preset, "unit": unit, "label": label,
                             "millicredits": cost})  # fmt: skip
    return examples


def customer_id_of(session: Session, tenant_id: str) -> str | None:
    account = session.get(Account, tenant_id)
    return account.stripe_customer_id if account else None


def start_checkout(
    billing: Billing, *, tenant_id: str, pack: CreditPack, customer_id: str | None, base_url: str
) -> CheckoutResult:
    """A payment page for ``pack``. Call it with no transaction open: it waits for Stripe."""
    base = base_url.rstrip("/")
    return billing.create_checkout(
        tenant_id=tenant_id,
        pack=pack,
        customer_id=customer_id,
        # Stripe replaces {CHECKOUT_SESSION_ID} with the session's id.
        success_url=f"{base}/billing/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/billing/cancel",
    )


# -- applying what Stripe reports --------------------------------------------------------------

APPLIED = "applied"
DUPLICATE = "duplicate"
PARKED = "parked"
IGNORED = "ignored"

#: Subscription statuses that give the price's tier, and those that end it.
LIVE_SUBSCRIPTION = frozenset({"active", "trialing", "past_due"})
ENDED_SUBSCRIPTION = frozenset({"canceled", "unpaid", "incomplete_expired", "paused"})
FREE_TIER = "free"


def verify_webhook(payload: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """The event in ``payload`` (the raw request body, byte for byte) if ``header`` signs it
    with ``secret`` within the last 300 seconds; raises `InvalidSignature` otherwise (also
    when no secret is configured)."""
    if not secret:
        # As Stripe's SDK does: with no secret, no signature can be valid.
        log.warning("a Stripe webhook arrived but FAKTRY_STRIPE_WEBHOOK_SECRET is not set")
        raise InvalidSignature("no webhook signing secret is configured, so no signature can be verified")
    try:
        stripe.Webhook.construct_event(payload, header, secret)
        # The JSON exactly as Stripe sent it: the SDK's objects turn some fields into Decimals.
        data = json.loads(payload)
    except stripe.SignatureVerificationError as err:
        raise InvalidSignature(f"the Stripe-Signature does not match the body: {err.user_message}") from None
    except (ValueError, TypeError, AttributeError):
        raise InvalidSignature("the signed body is not a Stripe event") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("id"), str)
        or not isinstance(data.get("type"), str)
    ):
        raise InvalidSignature("the signed body is not a Stripe event")
    return data


@dataclass(frozen=True)
class _Context:
    packs: Mapping[str, CreditPack]
    price_tiers: Mapping[str, str]


_Handler = Callable[[Session, dict[str, Any], dict[str, Any], _Context], tuple[str, str | None]]


def apply_event(
    session: Session,
    event: Mapping[str, Any],
    *,
    packs: Mapping[str, CreditPack],
    price_tiers: Mapping[str, str],
) -> str:
    """Apply a verified Stripe event once. Returns ``applied``, ``duplicate`` (seen before, or
    its effect was already made by another event), ``parked`` (waits for an earlier event) or
    ``ignored``. Flushes, never commits; a failure leaves nothing behind once rolled back, so
    Stripe's next delivery tries again."""
    event_id, event_type = _text(event.get("id")), _text(event.get("type"))
    if event_id is None or event_type is None:
        raise ValidationError("not a Stripe event: id and type are required", field="body")
    if session.get(StripeEvent, event_id) is not None:
        return DUPLICATE
    record = StripeEvent(id=event_id, type=event_type, status=APPLIED, payload=json.dumps(event))
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        log.info("stripe event %s was delivered concurrently; the other delivery applies it", event_id)
        return DUPLICATE
    status, reference = _dispatch(session, dict(event), _Context(packs, price_tiers))
    record.reference = reference
    record.status = IGNORED if status == DUPLICATE else status
    session.flush()
    log.info("stripe event %s (%s): %s", event_id, event_type, status)
    return status


def retry_parked(session: Session, *, packs: Mapping[str, CreditPack], price_tiers: Mapping[str, str]) -> int:
    """Try parked events again; returns how many no longer wait. Parked events are normally
    applied as soon as what they wait for arrives; this sweep catches a refund that raced its
    purchase on PostgreSQL without naming its tenant."""
    ctx = _Context(packs, price_tiers)
    ids = list(session.scalars(select(StripeEvent.id).where(StripeEvent.status == PARKED).limit(500)))
    done = 0
    for event_id in ids:
        if _replay(session, event_id, ctx):
            done += 1
    return done


def _dispatch(session: Session, event: dict[str, Any], ctx: _Context) -> tuple[str, str | None]:
    handler = _HANDLERS.get(str(event.get("type")))
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if handler is None or not isinstance(obj, dict):
        return IGNORED, None
    return handler(session, event, obj, ctx)


def _replay(session: Session, event_id: str, ctx: _Context) -> bool:
    """Apply a parked event again; True when it no longer waits."""
    row = session.scalars(
        select(StripeEvent).where(StripeEvent.id == event_id).execution_options(populate_existing=True)
    ).first()
    if row is None or row.status != PARKED:
        return False
    status, reference = _dispatch(session, json.loads(row.payload), ctx)
    if status == PARKED:
        return False
    row.status = IGNORED if status == DUPLICATE else status
    row.reference = reference
    session.flush()
    log.info("parked stripe event %s (%s): %s", row.id, row.type, status)
    return True


# -- purchases ---------------------------------------------------------------------------------


def _checkout_completed(
    session: Session, event: dict[str, Any], checkout: dict[str, Any], ctx: _Context
) -> tuple[str, str | None]:
    session_id = _text(checkout.get("id"))
    metadata = _dict(checkout.get("metadata"))
    tenant_id = _text(metadata.get("tenant_id")) or _text(checkout.get("client_reference_id"))
    if session_id is None or tenant_id is None or session.get(Tenant, tenant_id) is None:
        log.warning("checkout session %s names no known tenant", session_id)
        return IGNORED, session_id
    account = ledger.lock_account(session, tenant_id)
    customer = _text(checkout.get("customer"))
    if customer is not None:
        _link_customer(session, account, customer, ctx)
    if checkout.get("mode", "payment") != "payment" or checkout.get("payment_status") != "paid":
        return IGNORED, session_id  # unpaid yet: checkout.session.async_payment_succeeded follows
    credits = _pack_credits(metadata, ctx.packs)
    if credits is None:
        log.warning("checkout session %s: no credits in its metadata and no known pack", session_id)
        return IGNORED, session_id
    payment_intent = _text(checkout.get("payment_intent"))
    lot = ledger.add_credits(
        session,
        tenant_id,
        credits * MILLI,
        source="purchase",
        key=checkout_key(session_id),
        reference=payment_intent,
        memo=f"Stripe Checkout {session_id} ({metadata.get('pack', '?')})",
        bought_at=_created(event),
    )
    if lot is None:
        return DUPLICATE, payment_intent
    if payment_intent is not None:
        waiting = session.scalars(
            select(StripeEvent.id)
            .where(StripeEvent.status == PARKED, StripeEvent.reference == payment_intent)
            .order_by(StripeEvent.received_at, StripeEvent.id)
        )
        for event_id in list(waiting):
            _replay(session, event_id, ctx)
    return APPLIED, payment_intent


def _pack_credits(metadata: dict[str, Any], packs: Mapping[str, CreditPack]) -> int | None:
    """The credits the session sold: written in its metadata when it was created (so a later
    change of the packs does not change what was paid for), else the pack's."""
    raw = metadata.get("credits")
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        return int(raw)
    pack = packs.get(str(metadata.get("pack")))
    return pack.credits if pack else None


def _charge_refunded(
    session: Session, event: dict[str, Any], charge: dict[str, Any], ctx: _Context
) -> tuple[str, str | None]:
    payment_intent = _text(charge.get("payment_intent"))
    amount, refunded = _whole(charge.get("amount")), _whole(charge.get("amount_refunded"))
    if payment_intent is None or amount is None or refunded is None or amount <= 0:
        return IGNORED, payment_intent
    refunded = min(refunded, amount)
    # Lock the tenant before looking for the lot, so a purchase applied concurrently either
    # is visible here or finds this refund parked.
    tenant_id = _tenant_of_charge(session, charge)
    if tenant_id is not None:
        ledger.lock_account(session, tenant_id)
    lot = session.scalars(
        select(CreditLot)
        .where(CreditLot.reference == payment_intent, CreditLot.source == "purchase")
        .order_by(CreditLot.created_at, CreditLot.id)
        .execution_options(populate_existing=True)
    ).first()
    if lot is None:
        return PARKED, payment_intent
    if lot.tenant_id != tenant_id:
        ledger.lock_account(session, lot.tenant_id)
    prefix = f"stripe:refund:{lot.id}:"
    taken = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.debt - LedgerEntry.available), 0)).where(
            LedgerEntry.idempotency_key.startswith(prefix, autoescape=True)
        )
    )
    due = lot.amount * refunded // amount - int(taken or 0)
    if due <= 0:
        return DUPLICATE, payment_intent
    ledger.take_back(
        session,
        lot.tenant_id,
        lot,
        due,
        key=f"{prefix}{refunded}",
        memo=f"Stripe refund of {charge.get('id', payment_intent)}",
    )
    return APPLIED, payment_intent


def _tenant_of_charge(session: Session, charge: dict[str, Any]) -> str | None:
    tenant_id = _text(_dict(charge.get("metadata")).get("tenant_id"))
    if tenant_id is not None and session.get(Tenant, tenant_id) is not None:
        return tenant_id
    customer = _text(charge.get("customer"))
    if customer is None:
        return None
    return session.scalar(select(Account.tenant_id).where(Account.stripe_customer_id == customer))


# -- customers and subscriptions ---------------------------------------------------------------


def _link_customer(session: Session, account: Account, customer: str, ctx: _Context) -> None:
    """Remember the tenant's Stripe customer (the first one it paid with stays), then apply the
    subscription events that were waiting for it."""
    if account.stripe_customer_id is None:
        owner = session.scalar(select(Account.tenant_id).where(Account.stripe_customer_id == customer))
        if owner is not None:
            log.warning("stripe customer %s belongs to tenant %s already", customer, owner)
            return
        try:
            with session.begin_nested():
                account.stripe_customer_id = customer
        except IntegrityError:
            log.warning("stripe customer %s was linked to another tenant concurrently", customer)
            return
    elif account.stripe_customer_id != customer:
        log.info("tenant %s pays as %s and keeps %s", account.tenant_id, customer, account.stripe_customer_id)
        return
    waiting = session.execute(
        select(StripeEvent.id, StripeEvent.payload).where(
            StripeEvent.status == PARKED,
            StripeEvent.reference == customer,
            StripeEvent.type.startswith("customer.subscription."),
        )
    ).all()
    # Oldest first, so that the newest state is the one that stays.
    for event_id, _ in sorted(waiting, key=lambda row: (_created_at(json.loads(row[1])), row[0])):
        _replay(session, event_id, ctx)


def _subscription_changed(
    session: Session, event: dict[str, Any], subscription: dict[str, Any], ctx: _Context
) -> tuple[str, str | None]:
    customer = _text(subscription.get("customer"))
    if customer is None:
        return IGNORED, None
    tier = _tier_of(str(event.get("type")), subscription, ctx.price_tiers)
    if tier is None:
        return IGNORED, customer
    tenant_id = session.scalar(select(Account.tenant_id).where(Account.stripe_customer_id == customer))
    if tenant_id is None:
        return PARKED, customer  # the checkout that tells who this customer is comes later
    ledger.lock_account(session, tenant_id)
    if _newer_subscription_event(session, customer, event):
        return IGNORED, customer  # delivered out of order: a newer state is in place
    if tier not in DEFAULT_TIERS and session.get(Tier, tier) is None:
        # A configuration error: fail, so Stripe delivers it again once the tier exists.
        raise RuntimeError(f"FAKTRY_STRIPE_PRICE_TIERS names tier {tier!r}, which does not exist")
    tenant = session.get(Tenant, tenant_id, populate_existing=True)
    assert tenant is not None
    if tenant.tier != tier:
        log.info("tenant %s moves from tier %s to %s", tenant_id, tenant.tier, tier)
        tenant.tier = tier
    session.flush()
    return APPLIED, customer


def _tier_of(event_type: str, subscription: dict[str, Any], price_tiers: Mapping[str, str]) -> str | None:
    """The tier the subscription gives, or None to ignore it (a price the map does not know,
    a first payment not made yet)."""
    items = _dict(subscription.get("items")).get("data")
    item = _dict(items[0]) if isinstance(items, list) and items else {}
    price = item.get("price") or item.get("plan")
    price_id = _text(price.get("id")) if isinstance(price, dict) else _text(price)
    tier = price_tiers.get(price_id or "")
    if tier is None:
        return None
    status = subscription.get("status")
    if event_type == "customer.subscription.deleted" or status in ENDED_SUBSCRIPTION:
        return FREE_TIER
    return tier if status in LIVE_SUBSCRIPTION else None


def _newer_subscription_event(session: Session, customer: str, event: dict[str, Any]) -> bool:
    created = _created_at(event)
    applied = session.scalars(
        select(StripeEvent.payload).where(
            StripeEvent.reference == customer,
            StripeEvent.status == APPLIED,
            StripeEvent.type.startswith("customer.subscription."),
            StripeEvent.id != event.get("id"),
        )
    )
    return any(_created_at(json.loads(payload)) > created for payload in applied)


_HANDLERS: dict[str, _Handler] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "charge.refunded": _charge_refunded,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
}


# -- reading Stripe's JSON ---------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _created_at(event: Mapping[str, Any]) -> int:
    return _whole(event.get("created")) or 0


def _created(event: Mapping[str, Any]) -> datetime:
    """When Stripe made the event (a purchase's lot expires a year after it)."""
    created = _whole(event.get("created"))
    return datetime.fromtimestamp(created, UTC) if created else clock.now()
