"""First run: `faktry up`'s defaults (starter credits, test payments) and the credits history
in plain lines."""

from __future__ import annotations

from typing import Any

import pytest

from faktry.cli import UP_SIGNUP_CREDITS, up_settings
from faktry.config import Settings
from faktry.db import transaction
from pipelines.models import Job
from quotas import ledger
from quotas.models import MILLI


def test_faktry_up_gives_sign_ups_starter_credits_and_test_payments_unless_told_otherwise() -> None:
    base = Settings()

    plain = up_settings(base, {})
    told = up_settings(base, {"FAKTRY_SIGNUP_CREDITS": "0", "FAKTRY_PAYMENTS_TEST_MODE": "0"})
    with_stripe = up_settings(base.replace(stripe_secret_key="sk_live_x"), {})
    moved = up_settings(base, {}, host="0.0.0.0", port=8123)

    assert (plain.signup_credits, plain.payments) == (UP_SIGNUP_CREDITS, "test")
    assert (told.signup_credits, told.payments) == (0, "off")
    assert with_stripe.payments == "stripe"
    assert (moved.host, moved.port, moved.public_url) == ("0.0.0.0", 8123, "http://0.0.0.0:8123")
    # `faktry web` reads the settings as they are: no starter credits, payments off.
    assert (base.signup_credits, base.payments) == (0, "off")


def test_a_sign_up_on_faktry_ups_settings_starts_with_the_starter_credits(app: Any, client: Any) -> None:
    services = app.extensions["faktry"]
    services.settings = up_settings(services.settings, {})

    person = {"email": "first@example.com", "password": "correct horse battery"}
    signed = client.post("/v1/signup", json={**person, "confirm_age_16": True})
    login = client.post("/v1/session", json=person)

    assert signed.status_code == 202, signed.json
    me = client.get("/v1/account", headers={"X-CSRF-Token": login.json["csrf_token"]}).json
    assert me["credits"]["available"] == UP_SIGNUP_CREDITS * MILLI


def _job(session: Any, tenant_id: str, job_type: str, *, charge: int | None, hold: int = 2 * MILLI) -> str:
    job = Job(tenant_id=tenant_id, type=job_type, queue="local.small", status="succeeded")
    session.add(job)
    session.flush()
    ledger.hold(session, tenant_id, job.id, hold)
    if charge is None:
        ledger.release(session, tenant_id, job.id)
    else:
        ledger.capture(session, tenant_id, job.id, charge)
    return str(job.id)


def test_history_has_one_plain_line_per_job_and_per_credits_added_with_no_negative_numbers(
    app: Any, client: Any, make_tenant: Any
) -> None:
    tenant = make_tenant(credits=10)
    with transaction(app.extensions["faktry"].sessions) as session:
        charged = _job(session, tenant.id, "video.transcode", charge=1500)
        released = _job(session, tenant.id, "image.resize", charge=None)

    body = client.get("/v1/credits/history", headers=tenant.headers).json
    lines = {line["id"]: line for line in body["data"]}

    assert len(body["data"]) == 3 and body["next_cursor"] is None
    assert (lines[charged]["kind"], lines[charged]["charge"], lines[charged]["charged"]) == (
        "job",
        "charged",
        1500,
    )
    assert lines[charged]["description"] == "Convert a video"  # the job type by its name
    assert (lines[released]["charge"], lines[released]["charged"]) == ("none", 0)
    [grant] = [line for line in body["data"] if line["kind"] == "grant"]
    assert grant["added"] == 10 * MILLI
    for line in body["data"]:
        assert min(line["added"], line["charged"], line["held"], line["removed"]) >= 0


def test_history_pages_with_a_cursor_without_losing_or_repeating_a_line(
    app: Any, client: Any, make_tenant: Any
) -> None:
    tenant = make_tenant(credits=50)
    with transaction(app.extensions["faktry"].sessions) as session:
        made = {_job(session, tenant.id, "image.resize", charge=100) for _ in range(4)}

    seen: list[str] = []
    cursor = None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        page = client.get(f"/v1/credits/history{query}", headers=tenant.headers).json
        seen += [line["id"] for line in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 5
    assert made <= set(seen)


@pytest.mark.parametrize("query", ["?page=2", "?limit=0", "?limit=101", "?cursor=nonsense"])
def test_history_refuses_unknown_parameters_and_bad_paging_with_422(
    client: Any, tenant: Any, query: str
) -> None:
    response = client.get(f"/v1/credits/history{query}", headers=tenant.headers)

    assert response.status_code == 422
    assert response.json["error"]["field"] in {"page", "limit", "cursor"}


def test_history_shows_only_the_callers_own_lines(client: Any, make_tenant: Any) -> None:
    mine, theirs = make_tenant(credits=1), make_tenant(credits=2)

    lines = client.get("/v1/credits/history", headers=mine.headers).json["data"]

    assert [line["added"] for line in lines] == [1 * MILLI]
    assert theirs.id not in str(lines)
