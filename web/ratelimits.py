"""The API's request budget and the ``RateLimit-*`` headers on every ``/v1`` answer.

Every API call spends one token of a bucket shared by all web processes through Redis
(`quotas.ratelimit.RateLimiter.take`): the caller's tenant once it has authenticated, the
client's address for a call with no credentials (sign-up, log-in, the OpenAPI document). A
bucket holds ``FAKTRY_API_REQUESTS_PER_MINUTE`` tokens and earns them back at that rate; an
empty one is answered ``429 rate_limited`` with ``Retry-After``. Each answer says where its
bucket stands (the IETF draft's three fields, one header each):

- ``RateLimit-Limit``: the bucket's size (calls that may come at once);
- ``RateLimit-Remaining``: calls left now;
- ``RateLimit-Reset``: seconds until the bucket is full again (on a 429: until a call is
  allowed, as ``Retry-After``).

An answer to credentials that did not authenticate counts against the address. Redis is a
fast path here: while it is away calls go through uncounted and without the headers. The
submit rate of each tier (web/api/jobs.py) is a separate, smaller budget on top; a submit
counts its call and spends its rate in one round trip (`spend_with_submit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g, request, session

from faktry.errors import RateLimited
from quotas.ratelimit import Budget
from web import services
from web.errors import without

V = TypeVar("V", bound=Callable[..., Any])


def _spend(key: str, *, refuse: bool) -> None:
    per_minute = services().settings.api_requests_per_minute
    if per_minute <= 0 or "ratelimit" in g:
        return
    budget: Budget | None = None
    with without("redis", "%s: API request not counted", key):
        budget = services().ratelimiter.take(_budget_key(key), per_minute=per_minute)
    if budget is not None:
        _keep(budget, refuse=refuse)


def _keep(budget: Budget, *, refuse: bool) -> None:
    g.ratelimit = budget
    if refuse and not budget.allowed:
        raise RateLimited(
            f"at most {budget.limit} API calls a minute; try again in {budget.reset} seconds",
            retry_after=max(1, budget.reset),
        )


def spend_for_tenant(tenant_id: str) -> None:
    """Count an authenticated call (from `web.auth.authenticated`); raises `RateLimited`
    when the tenant's bucket is empty. A view marked `counted_with_submit` is counted by
    its own `spend_with_submit` instead."""
    _spend(_tenant(tenant_id), refuse=True)


def counted_with_submit(view: V) -> V:
    """Mark a submitting view whose call is counted together with its submit rate, in one
    round trip (`spend_with_submit`), instead of before the view (`web.auth.authenticated`).
    An answer it gives before that (a refused account, a malformed batch) is counted when
    it goes out."""
    view.faktry_counted_with_submit = True  # type: ignore[attr-defined]
    return view


def spend_with_submit(tenant_id: str, *, per_minute: int, cost: int) -> float | None:
    """Spend ``cost`` of the tenant's submit rate (``per_minute``), and count the call
    against its API budget unless it was counted already: one round trip
    (`quotas.ratelimit.RateLimiter.take_then_hit`). Raises `RateLimited` when the budget is
    empty (then no submit is spent); returns the submit's wait, None when it is allowed.
    Raises Redis's errors for the caller to decide."""
    limiter = services().ratelimiter
    budget_per_minute = services().settings.api_requests_per_minute
    if budget_per_minute <= 0 or "ratelimit" in g:
        return limiter.hit(f"submit:{tenant_id}", per_minute=per_minute, cost=cost)
    budget, wait = limiter.take_then_hit(
        _budget_key(_tenant(tenant_id)),
        per_minute=budget_per_minute,
        then=f"submit:{tenant_id}",
        then_per_minute=per_minute,
        cost=cost,
    )
    _keep(budget, refuse=True)
    return wait


def _budget_key(key: str) -> str:
    """The rate limiter's key of a budget (`_tenant`, `_address`)."""
    return f"api:{key}"


def _tenant(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def _address() -> str:
    return f"address:{request.remote_addr or ''}"


def _is_api() -> bool:
    return request.path.startswith("/v1/")


def _before() -> None:
    if not _is_api():
        return
    # A call with credentials is counted once they are checked (per tenant).
    if "Authorization" not in request.headers and not session.get("sid"):
        _spend(_address(), refuse=True)


def _headers(response: Response) -> Response:
    if not _is_api():
        return response
    if "ratelimit" not in g:
        who = g.get("principal")
        if who is not None:  # a view that counts its call with its submit answered before that
            _spend(_tenant(who.tenant_id), refuse=False)
        else:
            _spend(_address(), refuse=False)  # credentials that did not authenticate
    budget: Budget | None = g.get("ratelimit")
    if budget is not None:
        response.headers["RateLimit-Limit"] = str(budget.limit)
        response.headers["RateLimit-Remaining"] = str(budget.remaining)
        response.headers["RateLimit-Reset"] = str(budget.reset)
    return response


def install(app: Flask) -> None:
    """After `web.guard.install` (a body's size is checked before anything is counted)."""
    app.before_request(_before)
    app.after_request(_headers)
