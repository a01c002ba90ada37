"""``/v1/billing``: Stripe Checkout for credit packs, and Stripe's webhook.

The webhook is not authenticated by an API key or a session: only by its ``Stripe-Signature``,
checked on the raw body. A bad, stale or missing signature is refused with 400 and changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from faktry.config import Settings
from faktry.db import transaction
from faktry.errors import PayloadTooLarge, ValidationError
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


def _setup() -> BillingSetup:
    settings = services().settings
    setup: BillingSetup | None = current_app.extensions.get("faktry_billing")
    if setup is None or setup.settings is not settings:
        setup = BillingSetup(
            settings=settings,
            port=billing.StripeBilling(settings.stripe_secret_key, settings.stripe_api_base),
            packs=billing.packs_from_json(settings.credit_packs),
            price_tiers=billing.price_tiers_from_json(settings.stripe_price_tiers),
        )
        current_app.extensions["faktry_billing"] = setup
    return setup


@blueprint.get("/billing/packs")
@authenticated
def list_packs() -> Any:
    return {"object": "list", "data": [pack.to_dict() for pack in _setup().packs.values()]}


@blueprint.post("/billing/checkout")
@authenticated
def create_checkout() -> Any:
    setup = _setup()
    pack_id = json_object(allowed={"pack"}, optional=True).get("pack")
    pack = setup.packs.get(pack_id) if isinstance(pack_id, str) else None
    if pack is None:
        raise ValidationError(f"pack must be one of: {', '.join(setup.packs)}", field="pack")
    sess = db()
    tenant_id = principal().tenant_id
    customer_id = billing.customer_id_of(sess, tenant_id)
    # No transaction stays open while Stripe answers (on SQLite it would hold the write lock).
    sess.commit()
    result = billing.start_checkout(
        setup.port,
        tenant_id=tenant_id,
        pack=pack,
        customer_id=customer_id,
        base_url=setup.settings.public_url,
    )
    return {"object": "checkout_session", "url": result.url, "session_id": result.session_id}, 201


@blueprint.post("/billing/webhook")
def stripe_webhook() -> Any:
    setup = _setup()
    payload = request.get_data()  # read whole before the view, within FAKTRY_MAX_BODY_BYTES
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge("not a Stripe event: too large", details={"limit": MAX_WEBHOOK_BYTES})
    event = billing.verify_webhook(
        payload, request.headers.get("Stripe-Signature"), setup.settings.stripe_webhook_secret
    )
    with transaction(services().sessions) as session, outbox.payments(session):
        status = billing.apply_event(session, event, packs=setup.packs, price_tiers=setup.price_tiers)
    # A subscription may have changed a tier: this process sees it at once, the others
    # within their tier cache's few seconds.
    services().policy.tiers.forget()
    return {"status": status}
