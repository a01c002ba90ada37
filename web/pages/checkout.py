"""The test checkout: faktry's own stand-in for Stripe's hosted payment page, served only in
payments test mode (``FAKTRY_PAYMENTS_TEST_MODE`` without a Stripe key) and marked TEST MODE.

Pay builds the ``checkout.session.completed`` event Stripe would send, signs it with the
webhook secret, and hands it to the Stripe webhook's own code (`web.api.billing.receive_webhook`),
signature check included; then it goes to ``/billing/success?session_id=…`` as Stripe does.
Paying again, or a replayed event, adds nothing: the ledger keys purchases by session id.
Cancel goes to ``/billing/cancel``. A session of another tenant is a 404, as on the API.
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, redirect, request, session

from faktry.tenancy import constant_time_equal
from quotas import billing
from web.api.billing import receive_webhook, setup
from web.auth import db
from web.pages import blueprint, person, render


def _checkout(session_id: str) -> billing.TestCheckout | None:
    test_mode = setup().test_mode
    found = test_mode.read(session_id) if test_mode is not None else None
    return found if found is not None and found.tenant_id == g.user.tenant_id else None


def _missing() -> Any:
    return render("error.html", title="Not found", message="There is no such test checkout."), 404


@blueprint.get("/billing/test-checkout/<session_id>")
@person
def test_checkout(session_id: str) -> Any:
    found = _checkout(session_id)
    if found is None:
        return _missing()
    made = setup()
    pack = made.packs.get(found.pack)
    paid = billing.credited(db(), found.tenant_id, session_id) is not None
    return render(
        "checkout_test.html",
        title="Test checkout",
        active="credits",
        checkout=found,
        pack_name=pack.name if pack else f"{found.credits:,} credits",
        price=f"{found.amount / 100:,.2f} {found.currency.upper()}",
        paid=paid,
    )


@blueprint.post("/billing/test-checkout/<session_id>")
@person
def pay_test_checkout(session_id: str) -> Any:
    sent = request.form.get("csrf", "")
    if not sent or not constant_time_equal(sent, str(session.get("csrf", ""))):
        return render("error.html", title="Expired page", message="This page expired: open it again."), 403
    found = _checkout(session_id)
    if found is None:
        return _missing()
    test_mode = setup().test_mode
    assert test_mode is not None
    db().commit()  # the webhook code runs a transaction of its own
    payload = json.dumps(test_mode.completed_event(found)).encode()
    receive_webhook(payload, billing.sign_webhook(payload, setup().webhook_secret))
    return redirect(f"/billing/success?session_id={session_id}", code=303)
