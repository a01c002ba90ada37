"""``/v1/billing``: buying credit packs (Stripe Checkout, or faktry's own test checkout), Stripe's
webhook, and ``/v1/credits/history``: what the credits went to, in plain lines.

The webhook is not authenticated by an API key or a session: only by its ``Stripe-Signature``,
checked on the raw body. A bad, stale or missing signature is refused with 400 and changes
nothing. In test mode (``FAKTRY_PAYMENTS_TEST_MODE`` without a Stripe key) the test checkout's
Pay delivers its event through `receive_webhook`, the very code the webhook runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from faktry.config import Settings
from faktry.db import transaction
from faktry.errors import NotFound, PayloadTooLarge, ValidationError
from faktry.tenancy import refuse_if_unverified
from pipelines import pagination
from pipelines.credit_history import lines as credit_history_lines
from pipelines.webhooks import outbox
from quotas import billing
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.bodies import json_object

#: Stripe's events are a few kilobytes; anything much larger is not one.
MAX_WEBHOOK_BYTES = 512 * 1024


@dataclass(frozen=True)
class BillingSetup:
    """What billing needs, read from the settings at first use (after fork)."""

    settings: Settings
    port: billing.Billing
    packs: dict[str, billing.CreditPack]
    price_tiers: dict[str, str]
    #: The secret webhook signatures are checked with (generated in test mode if unset).
    webhook_secret: str

    @property
    def test_mode(self) -> billing.TestModeBilling | None:
        return self.port if isinstance(self.port, billing.TestModeBilling) else None


def setup() -> BillingSetup:
    settings = services().settings
    made: BillingSetup | None = current_app.extensions.get("faktry_billing")
    if made is None or made.settings is not settings:
        port: billing.Billing
        webhook_secret = settings.stripe_webhook_secret
        if settings.payments == "test":
            port = billing.TestModeBilling(settings.secret_key, settings.public_url)
            webhook_secret = webhook_secret or billing.webhook_secret_of_test_mode(settings.secret_key)
        else:
            port = billing.StripeBilling(settings.stripe_secret_key, settings.stripe_api_base)
        made = BillingSetup(
            settings=settings,
            port=port,
            packs=billing.packs_from_json(settings.credit_packs),
            price_tiers=billing.price_tiers_from_json(settings.stripe_price_tiers),
            webhook_secret=webhook_secret,
        )
        current_app.extensions["faktry_billing"] = made
    return made


@blueprint.get("/billing/packs")
@authenticated
def list_packs() -> Any:
    """The packs, how they are paid here (``payments``: ``stripe``, ``test`` or ``off``, when
    buying is refused), and what a credit buys at this deployment's prices (``examples``)."""
    made = setup()
    return {
        "object": "list",
        "data": [pack.to_dict() for pack in made.packs.values()],
        "payments": made.settings.payments,
        "examples": billing.credit_examples(services().policy.prices),
    }


@blueprint.post("/billing/checkout")
@authenticated
def create_checkout() -> Any:
    made = setup()
    pack_id = json_object(allowed={"pack"}, optional=True).get("pack")
    pack = made.packs.get(pack_id) if isinstance(pack_id, str) else None
    if pack is None:
        raise ValidationError(f"pack must be one of: {', '.join(made.packs)}", field="pack")
    if made.settings.payments == "off":
        raise billing.BillingDisabled(
            "payments are not set up on this faktry, so credits cannot be bought here; "
            "ask its operator for credits"
        )
    sess = db()
    tenant_id = principal().tenant_id
    refuse_if_unverified(sess, tenant_id)
    customer_id = billing.customer_id_of(sess, tenant_id)
    # No transaction stays open while Stripe answers (on SQLite it would hold the write lock).
    sess.commit()
    result = billing.start_checkout(
        made.port,
        tenant_id=tenant_id,
        pack=pack,
        customer_id=customer_id,
        base_url=made.settings.public_url,
    )
    return {"object": "checkout_session", "url": result.url, "session_id": result.session_id}, 201


@blueprint.get("/billing/checkout/<session_id>")
@authenticated
def checkout_status(session_id: str) -> Any:
    """Where a checkout session of the caller stands: ``credited`` (the credits are in the
    balance), ``paid`` (paid, the credits arrive with the provider's webhook) or ``unpaid``
    (not paid, or canceled). A session of another tenant, or none, is a 404."""
    made = setup()
    _no_query(set())
    tenant_id = principal().tenant_id
    sess = db()
    added = billing.credited(sess, tenant_id, session_id)
    if added is not None:
        return _checkout_status(session_id, "credited", added)
    sess.commit()  # no transaction open while the provider answers
    state = made.port.checkout_state(session_id) if made.settings.payments != "off" else None
    if state is None or state.tenant_id != tenant_id:
        raise NotFound("no checkout session with this id", code="checkout_not_found")
    return _checkout_status(session_id, "paid" if state.paid else "unpaid", None)


def _checkout_status(session_id: str, status: str, added: int | None) -> dict[str, Any]:
    return {"object": "checkout_status", "session_id": session_id, "status": status, "credits_added": added}


@blueprint.post("/billing/webhook")
def stripe_webhook() -> Any:
    payload = request.get_data()  # read whole before the view, within FAKTRY_MAX_BODY_BYTES
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge("not a Stripe event: too large", details={"limit": MAX_WEBHOOK_BYTES})
    return {"status": receive_webhook(payload, request.headers.get("Stripe-Signature"))}


def receive_webhook(payload: bytes, signature: str | None) -> str:
    """Verify a Stripe event's signature and apply it once, in a transaction of its own;
    returns what `billing.apply_event` did. Raises `billing.InvalidSignature`."""
    made = setup()
    event = billing.verify_webhook(payload, signature, made.webhook_secret)
    with transaction(services().sessions) as session, outbox.payments(session):
        status = billing.apply_event(session, event, packs=made.packs, price_tiers=made.price_tiers)
    # A subscription may have changed a tier: this process sees it at once, the others
    # within their tier cache's few seconds.
    services().policy.tiers.forget()
    return status


# -- history -----------------------------------------------------------------------------------


@blueprint.get("/credits/history")
@authenticated
def credit_history() -> Any:
    """The account's credits in plain lines, newest first (`pipelines.credit_history`)."""
    _no_query({"limit", "cursor"})
    limit = pagination.parse_limit(request.args.get("limit"))
    cursor = request.args.get("cursor")
    after = pagination.decode(cursor) if cursor else None
    names = services().policy.catalog.labels.job_types
    data, next_cursor = credit_history_lines(db(), principal().tenant_id, limit, after, names)
    return {"object": "list", "data": data, "next_cursor": next_cursor}


def _no_query(allowed: set[str]) -> None:
    unknown = sorted(name for name in request.args if name not in allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "no query parameters"
        raise ValidationError(
            f"unknown query parameter {unknown[0]!r}; this endpoint takes: {takes}",
            field=unknown[0],
            code="unknown_field",
        )
