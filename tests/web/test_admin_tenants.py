"""``/v1/admin/tenants``: operators list every tenant with its balance and grant credits,
through the same ledger rule as ``faktry credits grant``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from faktry import clock
from faktry.db import transaction
from quotas import ledger
from quotas.models import CreditLot, LedgerEntry
from tests.web.helpers import upload

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(make_tenant):
    return make_tenant(admin=True)


@pytest.fixture
def sessions(app):
    return app.extensions["faktry"].sessions


def tenants(client, staff, **query: Any) -> Any:
    r = client.get("/v1/admin/tenants", headers=staff.headers, query_string={"limit": 100, **query})
    assert r.status_code == 200, r.json
    return r.json


def grant(client, who, tenant_id: str, body: Any, key: str | None = None) -> Any:
    headers = {**who.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/v1/admin/tenants/{tenant_id}/credits", headers=headers, json=body)


def account(client, tenant) -> Any:
    return client.get("/v1/account", headers=tenant.headers).json


def entries(sessions) -> int:
    with transaction(sessions) as s:
        return int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def test_staff_see_every_tenant_newest_first_with_owner_email_balance_and_storage(
    client, make_tenant, staff, sessions, png_image
):
    clock.advance(timedelta(seconds=1))
    spender = make_tenant(credits=5)
    clock.advance(timedelta(seconds=1))
    debtor = make_tenant("creator", credits=0)
    assert upload(client, spender, png_image).status_code == 201
    with transaction(sessions) as s:
        ledger.hold(s, spender.id, "job_admin_tenants_test", 1500)
        lot = ledger.add_credits(s, debtor.id, 1000, source="purchase", key="test:debtor")
        assert lot is not None
        ledger.take_back(s, debtor.id, lot, 3000, key="test:debtor:refund", memo="refunded")

    listing = tenants(client, staff)
    assert [t["id"] for t in listing["data"]] == [debtor.id, spender.id, staff.id]
    assert listing["next_cursor"] is None
    by_id = {t["id"]: t for t in listing["data"]}
    assert by_id[spender.id]["credits"] == {"available": 3500, "held": 1500, "debt": 0}
    assert by_id[debtor.id]["credits"] == {"available": 0, "held": 0, "debt": 2000}
    for who in (spender, debtor, staff):
        item, own = by_id[who.id], account(client, who)
        assert item["object"] == "tenant" and item["owner_email"] == who.email
        assert (item["name"], item["tier"], item["created_at"]) == (
            own["tenant"]["name"], own["tenant"]["tier"], own["tenant"]["created_at"],
        )  # fmt: skip
        assert item["credits"] == {k: own["credits"][k] for k in ("available", "held", "debt")}
        assert item["storage"] == {k: own["storage"][k] for k in ("used_bytes", "quota_bytes")}
    assert by_id[spender.id]["storage"]["used_bytes"] > 0
    assert by_id[debtor.id]["tier"] == "creator"


def test_q_finds_a_tenant_by_its_exact_id_or_by_part_of_its_owner_email_in_any_case(
    client, make_tenant, staff
):
    wanted, other = make_tenant(), make_tenant()
    by_email = tenants(client, staff, q=wanted.email.split("@")[0][5:].upper())
    assert [t["id"] for t in by_email["data"]] == [wanted.id]
    assert [t["id"] for t in tenants(client, staff, q=other.id)["data"]] == [other.id]
    assert tenants(client, staff, q=other.id[:-1])["data"] == []  # ids match whole
    assert tenants(client, staff, q="%")["data"] == []  # a LIKE wildcard is a plain character
    everyone = {t["id"] for t in tenants(client, staff, q="@EXAMPLE.com")["data"]}
    assert everyone == {wanted.id, other.id, staff.id}


def test_tier_keeps_only_tenants_of_that_tier(client, make_tenant, staff):
    studio = make_tenant("studio")
    make_tenant("creator")
    assert [t["id"] for t in tenants(client, staff, tier="studio")["data"]] == [studio.id]
    assert tenants(client, staff, tier="no-such-tier")["data"] == []


def test_pages_follow_the_cursor_without_gaps_or_repeats(client, make_tenant, staff):
    for _ in range(4):
        clock.advance(timedelta(seconds=1))
        make_tenant(credits=0)
    everyone = [t["id"] for t in tenants(client, staff)["data"]]
    seen, cursor = [], None
    while True:
        page = tenants(client, staff, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= 2
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everyone and len(seen) == 5


def test_people_who_are_not_staff_are_refused_both_endpoints_and_nothing_is_granted(client, tenant, sessions):
    before = entries(sessions)
    listing = client.get("/v1/admin/tenants", headers=tenant.headers)
    assert listing.status_code == 403 and listing.json["error"]["code"] == "staff_only"
    r = grant(client, tenant, tenant.id, {"credits": 10, "reason": "to myself"})
    assert r.status_code == 403 and r.json["error"]["code"] == "staff_only"
    assert entries(sessions) == before
    assert account(client, tenant)["credits"]["available"] == 1000 * 1000


def test_a_grant_writes_a_ledger_lot_and_the_balance_rises(client, tenant, staff, sessions, caplog):
    with caplog.at_level("INFO", logger="faktry.admin"):
        r = grant(client, staff, tenant.id, {"credits": 12.5, "reason": "  support ticket 42 "})
    assert r.status_code == 201, r.json
    # Who granted it is in the operators' log; the ledger keeps no staff identity.
    [line] = [rec.getMessage() for rec in caplog.records if rec.name == "faktry.admin"]
    assert staff.user_id in line and tenant.id in line and "12500 millicredits" in line
    body = r.json
    assert (body["object"], body["tenant_id"]) == ("grant", tenant.id)
    assert (body["lot"]["source"], body["lot"]["amount"], body["lot"]["remaining"]) == ("grant", 12500, 12500)
    assert body["credits"] == {"available": 1_012_500, "held": 0, "debt": 0}
    assert account(client, tenant)["credits"]["available"] == 1_012_500
    with transaction(sessions) as s:
        lot = s.get(CreditLot, body["lot"]["id"])
        assert lot is not None and (lot.tenant_id, lot.reference) == (tenant.id, "support ticket 42")
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.lot_id == lot.id)).one()
        assert (entry.kind, entry.available, entry.memo) == ("grant", 12500, "support ticket 42")
        assert ledger.check(s) == []


def test_the_same_idempotency_key_grants_once(client, tenant, make_tenant, staff, sessions):
    first = grant(client, staff, tenant.id, {"credits": 3, "reason": "outage"}, key="outage-7")
    assert first.status_code == 201, first.json
    again = grant(client, staff, tenant.id, {"credits": 3, "reason": "outage"}, key="outage-7")
    assert again.status_code == 200, again.json
    assert again.json["lot"] is None and again.json["credits"] == first.json["credits"]
    other = make_tenant()
    elsewhere = grant(client, staff, other.id, {"credits": 3, "reason": "outage"}, key="outage-7")
    assert elsewhere.status_code == 422
    assert elsewhere.json["error"]["code"] == "idempotency_key_reused"
    more = grant(client, staff, tenant.id, {"credits": 4, "reason": "outage"}, key="outage-7")
    assert more.status_code == 422 and more.json["error"]["code"] == "idempotency_key_reused"
    with transaction(sessions) as s:
        grants = s.scalars(select(LedgerEntry).where(LedgerEntry.memo == "outage")).all()
        assert [(e.tenant_id, e.available) for e in grants] == [(tenant.id, 3000)]
        assert ledger.check(s) == []
    assert account(client, tenant)["credits"]["available"] == 1_003_000


def test_a_cookie_session_grant_without_the_csrf_token_is_refused(client, make_tenant, tenant, sessions):
    operator = make_tenant(admin=True, password=PASSWORD)
    login = client.post("/v1/session", json={"email": operator.email, "password": PASSWORD})
    assert login.status_code == 201, login.json
    before = entries(sessions)
    url = f"/v1/admin/tenants/{tenant.id}/credits"
    refused = client.post(url, json={"credits": 1, "reason": "cookie"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf_failed"
    assert entries(sessions) == before
    token = login.json["csrf_token"]
    accepted = client.post(url, json={"credits": 1, "reason": "cookie"}, headers={"X-CSRF-Token": token})
    assert accepted.status_code == 201, accepted.json


def test_bad_amounts_reasons_and_bodies_are_refused_with_422_and_change_nothing(
    client, tenant, staff, sessions
):
    before = entries(sessions)
    bad = [
        ({"credits": 0, "reason": "r"}, "credits"),
        ({"credits": -5, "reason": "r"}, "credits"),
        ({"credits": "10", "reason": "r"}, "credits"),
        ({"credits": True, "reason": "r"}, "credits"),
        ({"credits": None, "reason": "r"}, "credits"),
        ({"credits": [1], "reason": "r"}, "credits"),
        ({"credits": 1_000_001, "reason": "r"}, "credits"),
        ({"credits": 10**400, "reason": "r"}, "credits"),
        ({"credits": 1e-9, "reason": "r"}, "credits"),  # less than a millicredit
        ({"reason": "r"}, "credits"),
        ({"credits": 1}, "reason"),
        ({"credits": 1, "reason": ""}, "reason"),
        ({"credits": 1, "reason": "   "}, "reason"),
        ({"credits": 1, "reason": "x" * 201}, "reason"),
        ({"credits": 1, "reason": "a\x00b"}, "body"),  # the app's JSON refuses NUL everywhere
        ({"credits": 1, "reason": 7}, "reason"),
        ({"credits": 1, "reason": "r", "tenant_id": "ten_x"}, "tenant_id"),
        ([1, 2], "body"),
    ]
    for body, field in bad:
        r = grant(client, staff, tenant.id, body)
        assert r.status_code == 422, (body, r.json)
        assert r.json["error"]["field"] == field, body
    long_key = grant(client, staff, tenant.id, {"credits": 1, "reason": "r"}, key="k" * 151)
    assert long_key.status_code == 422 and long_key.json["error"]["field"] == "idempotency_key"
    not_json = client.post(
        f"/v1/admin/tenants/{tenant.id}/credits",
        headers=staff.headers,
        data="credits=1",
        content_type="text/plain",
    )
    assert not_json.status_code == 422 and not_json.json["error"]["field"] == "body"
    assert entries(sessions) == before
    assert account(client, tenant)["credits"]["available"] == 1000 * 1000


def test_a_grant_to_an_unknown_tenant_is_404(client, staff, sessions):
    before = entries(sessions)
    r = grant(client, staff, "ten_doesnotexist", {"credits": 1, "reason": "nobody"})
    assert r.status_code == 404 and r.json["error"]["code"] == "tenant_not_found"
    assert entries(sessions) == before


def test_a_grant_pays_a_debt_first_and_the_ledger_check_holds(client, make_tenant, staff, sessions):
    debtor = make_tenant(credits=0)
    with transaction(sessions) as s:
        lot = ledger.add_credits(s, debtor.id, 1000, source="purchase", key="test:debt")
        assert lot is not None
        ledger.take_back(s, debtor.id, lot, 3000, key="test:debt:refund", memo="refunded")
    r = grant(client, staff, debtor.id, {"credits": 5, "reason": "goodwill"})
    assert r.status_code == 201, r.json
    assert r.json["credits"] == {"available": 3000, "held": 0, "debt": 0}
    assert r.json["lot"]["remaining"] == 3000
    listed = tenants(client, staff, q=debtor.id)["data"][0]
    assert listed["credits"] == r.json["credits"]
    with transaction(sessions) as s:
        assert ledger.check(s) == []
