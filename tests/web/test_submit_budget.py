"""A submit counts its call against the API budget and spends the tier's submit rate in one
Redis round trip (`web.ratelimits.spend_with_submit`), with the answers each would give on
its own: the budget refuses first and then spends no submit; a submit over the tier's rate is
still a counted call; an answer given before the submit's count (a malformed batch) is
counted against the tenant when it goes out."""

from __future__ import annotations

import pytest

from tests.quotas.test_account_api import set_tier
from tests.web.helpers import upload


@pytest.fixture
def budget_of_3(settings, runtime):
    from web import create_app
    from workers.broker import BrokerSender

    app = create_app(settings.replace(api_requests_per_minute=3), sender=BrokerSender(runtime.broker))
    app.testing = True
    return app


def _job(client, tenant, png_image) -> dict:
    file_id = upload(client, tenant, png_image).json["id"]
    return {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}


def test_submits_count_against_the_budget_whether_or_not_the_tiers_rate_allows_them(
    budget_of_3, client, make_tenant, make_tier, settings, png_image
):
    tenant = make_tenant(credits=100)
    set_tier(settings, tenant, make_tier(submits_per_minute=2))
    body = _job(client, tenant, png_image)  # through the default app: its own budget
    small = budget_of_3.test_client()
    answers = [small.post("/v1/jobs", json=body, headers=tenant.headers) for _ in range(4)]
    # Two submits, the third over the tier's rate (a counted call), the fourth over the budget.
    assert [a.status_code for a in answers] == [202, 202, 429, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert "jobs a minute" in answers[2].json["error"]["message"]
    assert "API calls a minute" in answers[3].json["error"]["message"]
    assert answers[3].headers["Retry-After"] == answers[3].headers["RateLimit-Reset"]


def test_a_submit_refused_by_the_budget_leaves_the_tiers_rate_whole(
    budget_of_3, client, make_tenant, make_tier, settings, png_image
):
    tenant = make_tenant(credits=100)
    set_tier(settings, tenant, make_tier(submits_per_minute=5))
    body = _job(client, tenant, png_image)
    small = budget_of_3.test_client()
    for _ in range(3):
        assert small.get("/v1/jobs", headers=tenant.headers).status_code == 200
    refused = small.post("/v1/jobs", json=body, headers=tenant.headers)
    assert refused.status_code == 429 and "API calls a minute" in refused.json["error"]["message"]
    # The tier's five submits are all still there: a whole burst can be spent at once.
    limiter = budget_of_3.extensions["faktry"].ratelimiter
    assert limiter.hit(f"submit:{tenant.id}", per_minute=5, cost=5) is None


def test_a_malformed_batch_is_counted_against_the_tenant_when_it_is_answered(
    budget_of_3, make_tenant, png_image
):
    tenant = make_tenant(credits=100)
    small = budget_of_3.test_client()
    refused = small.post("/v1/jobs/batch", json={"jobs": "not a list"}, headers=tenant.headers)
    assert 400 <= refused.status_code < 500 and refused.status_code != 429
    assert refused.headers["RateLimit-Remaining"] == "2"
    assert small.get("/v1/jobs", headers=tenant.headers).headers["RateLimit-Remaining"] == "1"
