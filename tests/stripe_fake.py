"""A local stand-in for the slice of Stripe that faktry uses, served over loopback.

`StripeFake` answers ``POST /v1/checkout/sessions`` the way Stripe does for the real SDK
(form-encoded nested parameters in, a ``checkout.session`` object out), records every request
for assertions, and can be told to fail the next requests with a given status. It also plays
Stripe's side of a payment: `StripeFake.completed`, `StripeFake.refunded` and `subscription_event`
build webhook events with Stripe's shapes, and `signed_headers` signs a body the way Stripe
signs its webhooks (``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, jsonify, redirect, request
from markupsafe import escape
from werkzeug.serving import BaseWSGIServer, make_server

from faktry import clock

API_VERSION = "2026-10-28.endive"


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _now() -> int:
    return int(clock.now().timestamp())


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Payment:
    """A checkout session and, once paid, its payment intent and charge."""

    session: dict[str, Any]
    payment_intent: str | None = None
    charge: str | None = None
    amount_refunded: int = 0


@dataclass
class StripeFake:
    secret_key: str = "sk_test_faktry_fake"
    requests: list[Recorded] = field(default_factory=list)
    #: Statuses (500, 429, 400...) to answer the next requests with, in order.
    fail_next: list[int] = field(default_factory=list)
    url: str = ""
    #: Where the hosted checkout page delivers ``checkout.session.completed`` when the customer
    #: pays, signed with ``webhook_secret`` (as Stripe delivers to a configured endpoint).
    webhook_url: str = ""
    webhook_secret: str = ""
    _payments: dict[str, _Payment] = field(default_factory=dict)
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the server ----------------------------------------------------------------------------

    def start(self) -> StripeFake:
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _app(self) -> Flask:
        app = Flask("stripe_fake")

        @app.post("/v1/checkout/sessions")
        def create_session() -> Any:
            params = nested(list(request.form.items(multi=True)))
            with self._lock:
                self.requests.append(Recorded("POST", request.path, params, dict(request.headers)))
                failure = self.fail_next.pop(0) if self.fail_next else None
            if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
                return _error(401, "invalid_request_error", "Invalid API Key provided")
            if failure is not None:
                kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(failure, "api_error")
                return _error(failure, kind, f"injected failure {failure}")
            for required in ("mode", "success_url", "line_items"):
                if required not in params:
                    return _error(400, "invalid_request_error", f"Missing required param: {required}.")
            session = self._session_from(params)
            with self._lock:
                self._payments[session["id"]] = _Payment(session)
            return jsonify(session)

        @app.get("/pay/<session_id>")
        def hosted_checkout(session_id: str) -> Any:
            # Stripe's hosted page, reduced to its two outcomes: pay, or go back.
            payment = self._payments.get(session_id)
            if payment is None:
                return _error(404, "invalid_request_error", "No such checkout session.")
            total = payment.session["amount_total"] / 100
            return (
                f"<!doctype html><title>Checkout</title><h1>Pay {total:.2f} "
                f"{payment.session['currency'].upper()}</h1>"
                f'<form method="post"><button id="pay">Pay</button></form>'
                f'<a id="back" href="{escape(payment.session["cancel_url"] or "")}">Back</a>'
            )

        @app.post("/pay/<session_id>")
        def pay(session_id: str) -> Any:
            if session_id not in self._payments:
                return _error(404, "invalid_request_error", "No such checkout session.")
            payload = json.dumps(self.completed(session_id))
            answer = requests.post(
                self.webhook_url,
                data=payload,
                headers=signed_headers(payload, self.webhook_secret),
                timeout=10,
            )
            answer.raise_for_status()
            success = self._payments[session_id].session["success_url"]
            return redirect(success.replace("{CHECKOUT_SESSION_ID}", session_id), code=303)

        @app.route("/<path:anything>", methods=["GET", "POST", "DELETE"])
        def unknown(anything: str) -> Any:
            return _error(404, "invalid_request_error", f"Unrecognized request URL (/{anything}).")

        return app

    def _session_from(self, params: dict[str, Any]) -> dict[str, Any]:
        session_id = _id("cs_test")
        items = params["line_items"]
        total = sum(int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items)
        return {
            "id": session_id,
            "object": "checkout.session",
            "url": f"{self.url}/pay/{session_id}",
            "mode": params["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "currency": items[0]["price_data"]["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "customer": params.get("customer"),
            "customer_creation": params.get("customer_creation"),
            "metadata": params.get("metadata", {}),
            "payment_intent": None,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "livemode": False,
            "created": _now(),
        }

    # -- Stripe's side of a payment ------------------------------------------------------------

    def checkout(
        self,
        tenant_id: str,
        *,
        pack: str = "creator",
        credits: int = 1000,
        amount: int = 8000,
        currency: str = "eur",
        customer: str | None = None,
    ) -> str:
        """A checkout session as faktry would have created it (without an HTTP call)."""
        metadata = {"tenant_id": tenant_id, "pack": pack, "credits": str(credits)}
        params = {
            "mode": "payment",
            "line_items": [
                {"quantity": "1", "price_data": {"currency": currency, "unit_amount": str(amount)}}
            ],
            "client_reference_id": tenant_id,
            "metadata": metadata,
            "success_url": "http://faktry.test/billing/success",
            "cancel_url": "http://faktry.test/billing/cancel",
        }
        if customer:
            params["customer"] = customer
        session = self._session_from(params)
        self._payments[session["id"]] = _Payment(session)
        return str(session["id"])

    def completed(
        self,
        session_id: str,
        *,
        payment_status: str = "paid",
        customer: str | None = None,
        event_type: str = "checkout.session.completed",
        created: int | None = None,
    ) -> dict[str, Any]:
        """The customer paid: the ``checkout.session.completed`` event (same ids on every call)."""
        payment = self._payments[session_id]
        session = payment.session
        payment.payment_intent = payment.payment_intent or _id("pi")
        payment.charge = payment.charge or _id("ch")
        session.update(
            status="complete",
            payment_status=payment_status,
            payment_intent=payment.payment_intent,
            customer=session["customer"] or customer or _id("cus"),
            customer_details={"email": "buyer@example.com", "name": "A Buyer"},
        )
        return event(event_type, dict(session), created=created)

    def customer_of(self, session_id: str) -> str:
        customer = self._payments[session_id].session["customer"]
        assert customer, "complete the session first"
        return str(customer)

    def refunded(
        self, session_id: str, amount: int | None = None, *, created: int | None = None
    ) -> dict[str, Any]:
        """A refund of ``amount`` (all that is left by default): ``charge.refunded``, whose charge
        carries the cumulative ``amount_refunded``, as Stripe's does."""
        payment = self._payments[session_id]
        assert payment.charge, "complete the session first"
        session = payment.session
        total = int(session["amount_total"])
        payment.amount_refunded = min(
            total, payment.amount_refunded + (amount or total - payment.amount_refunded)
        )
        charge = {
            "id": payment.charge,
            "object": "charge",
            "amount": total,
            "amount_captured": total,
            "amount_refunded": payment.amount_refunded,
            "captured": True,
            "currency": session["currency"],
            "customer": session["customer"],
            # Stripe copies the payment intent's metadata (faktry's payment_intent_data) here.
            "metadata": dict(session["metadata"]),
            "paid": True,
            "payment_intent": payment.payment_intent,
            "refunded": payment.amount_refunded == total,
            "status": "succeeded",
            "livemode": False,
            "created": session["created"],
        }
        return event("charge.refunded", charge, created=created)


def subscription_event(
    event_type: str,
    *,
    customer: str,
    price: str,
    status: str = "active",
    subscription_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A ``customer.subscription.created|updated|deleted`` event for one price."""
    now = created or _now()
    subscription = {
        "id": subscription_id or _id("sub"),
        "object": "subscription",
        "customer": customer,
        "status": "canceled" if event_type.endswith(".deleted") else status,
        "cancel_at_period_end": False,
        "created": now,
        "currency": "eur",
        "items": {
            "object": "list",
            "data": [
                {
                    "id": _id("si"),
                    "object": "subscription_item",
                    "quantity": 1,
                    "current_period_start": now,
                    "current_period_end": now + 30 * 86400,
                    "price": {
                        "id": price,
                        "object": "price",
                        "active": True,
                        "currency": "eur",
                        "unit_amount": 2900,
                        "unit_amount_decimal": "2900",
                        "recurring": {"interval": "month", "interval_count": 1},
                        "type": "recurring",
                    },
                }
            ],
            "has_more": False,
        },
        "metadata": {},
        "livemode": False,
    }
    return event(event_type, subscription, created=created)


def event(event_type: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": _id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created or _now(),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def signature(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``."""
    # Real time, not faktry's clock: the SDK checks the tolerance against time.time().
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed_headers(payload: str, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Stripe-Signature": signature(payload, secret, timestamp),
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``line_items[0][price_data][currency]=eur`` → ``{"line_items": [{"price_data": {...}}]}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def _error(status: int, kind: str, message: str) -> Any:
    response = jsonify({"error": {"type": kind, "message": message}})
    response.status_code = status
    response.headers["Request-Id"] = _id("req")
    return response
