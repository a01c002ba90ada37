"""Roles and scoped keys in a browser: an owner makes a key that may only read, with an
expiry, and the key does what its scopes say; the owner changes a member's role on the
members page; a viewer sees only the pages of their role and is told why a page is not
theirs; the last owner cannot leave."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import requests
from playwright.sync_api import expect

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import User, hash_secret
from tests.browser.conftest import PASSWORD, Person, assert_accessible, assert_fits, log_in, shot


def _member(site, owner: Person, role: str) -> Person:
    engine = make_engine(site.settings.resolved_database_url)
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    with transaction(make_sessionmaker(engine)) as session:
        session.add(
            User(
                tenant_id=owner.tenant_id,
                email=email,
                role=role,
                password_hash=hash_secret(PASSWORD, rounds=4),
            )
        )
    engine.dispose()
    return Person(email, PASSWORD, owner.tenant_id)


def test_a_read_only_key_with_an_expiry(page, site, make_person):
    owner = make_person(credits=5)
    log_in(page, owner, next_path="/keys")
    form = page.locator("#key-form")
    form.get_by_label("Name").fill("dashboard")
    form.locator("#key-scopes-box summary").click()
    for box in form.locator('[name="scopes"]').all():
        box.uncheck()
    form.get_by_label("jobs:read").check()
    form.get_by_label("files:read").check()
    expires = (clock.now() + timedelta(days=30)).date().isoformat()
    form.get_by_label("Expires on (optional)").fill(expires)
    form.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key-value")).to_have_value(re.compile("^fk_"))
    key = page.locator("#new-key-value").input_value()
    assert key.startswith("fk_")
    row = page.locator("#keys tr").filter(has_text="dashboard")
    expect(row.locator("td.scopes")).to_have_text("files:read, jobs:read")
    expect(row).to_contain_text("active until")
    assert_accessible(page)
    shot(page, "keys-scoped")

    headers = {"Authorization": f"Bearer {key}"}
    assert requests.get(f"{site.base}/v1/jobs", headers=headers, timeout=10).status_code == 200
    refused = requests.post(f"{site.base}/v1/jobs", json={"type": "media.probe"}, headers=headers, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert refused.json()["error"]["scope"] == "jobs:write"

    # The audit log says who made it.
    page.goto("/audit-log")
    page.get_by_label("Event").select_option("key_created")
    page.locator("#audit-filters").get_by_role("button", name="Filter").click()
    row = page.locator("#audit tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(owner.email)
    expect(row).to_contain_text("dashboard")
    assert_accessible(page)


def test_roles_on_the_members_page_and_what_a_viewer_sees(page, chromium, site, make_person):
    owner = make_person(credits=5)
    viewer = _member(site, owner, "viewer")
    log_in(page, owner, next_path="/members")
    table = page.locator("#members")
    expect(table.locator("tbody tr")).to_have_count(2)
    page.get_by_label(f"Role of {viewer.email}").select_option("developer")
    expect(page.locator("#members-status")).to_have_text(f"{viewer.email} is now developer.")
    page.get_by_label(f"Role of {viewer.email}").select_option("viewer")
    expect(page.locator("#members-status")).to_have_text(f"{viewer.email} is now viewer.")
    # The last owner cannot leave.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Leave the account").click()
    expect(page.locator("#members-status")).to_contain_text("last owner")
    assert_accessible(page)

    other = chromium.new_context(base_url=site.base, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        seen = other.new_page()
        seen.set_default_timeout(20_000)
        log_in(seen, viewer, next_path="/jobs")
        nav = seen.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Jobs")).to_be_visible()
        for hidden in ("API keys", "Webhooks"):
            expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
        seen.goto("/keys")
        expect(seen.locator("main")).to_contain_text("does not include this page")
        expect(seen.locator("main")).to_contain_text("keys:read")
        seen.goto("/members")
        expect(seen.locator("#members tbody tr")).to_have_count(2)
        expect(seen.locator("#members select")).to_have_count(0)  # a viewer changes no role
        assert_fits(seen)
        shot(seen, "members-as-viewer")
        # Leaving works for anyone but the last owner.
        seen.once("dialog", lambda dialog: dialog.accept())
        seen.get_by_role("button", name="Leave the account").click()
        seen.wait_for_url("**/login**")
    finally:
        other.close()
    page.reload()
    expect(page.locator("#members tbody tr")).to_have_count(1)


def test_invite_someone_who_accepts_from_the_mail_and_joins_with_the_role(
    page, chromium, site, make_person, smtp
):
    from tests.browser.test_account_mail_pages import _mail, _path

    owner = make_person(credits=5)
    invited = f"invited-{uuid.uuid4().hex[:8]}@example.com"
    log_in(page, owner, next_path="/members")
    form = page.locator("#invite-form")
    form.get_by_label("Email").fill(invited)
    form.get_by_label("Role").select_option("billing")
    form.get_by_role("button", name="Send the invitation").click()
    expect(form.locator("[role=status]")).to_have_text(f"Invitation sent to {invited}.")
    expect(page.locator("#invitations tbody tr").filter(has_text=invited)).to_contain_text("pending until")
    assert_accessible(page)

    mail = _mail(smtp, invited, "invites you")
    assert owner.email in mail.subject and "billing" in mail.text
    other = chromium.new_context(base_url=site.base, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        joiner = other.new_page()
        joiner.set_default_timeout(20_000)
        joiner.goto(_path(mail.link("/invitations/accept")))
        expect(joiner.locator("#invited-email")).to_have_text(invited)
        expect(joiner.locator("#invited-role")).to_have_text("billing")
        assert_fits(joiner)
        joiner.get_by_label("Password").fill("a long enough password")
        joiner.get_by_label("I am 16 years of age or older").check()
        joiner.get_by_role("button", name="Accept and join").click()
        joiner.wait_for_url("**/jobs")
        nav = joiner.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Credits")).to_be_visible()  # billing's
        expect(nav.get_by_role("link", name="API keys")).to_have_count(0)
        # The link works once.
        joiner.goto(_path(mail.link("/invitations/accept")))
        expect(joiner.locator("#invitation-problem")).to_contain_text("accepted already")
    finally:
        other.close()
    page.reload()
    expect(page.locator("#members tbody tr").filter(has_text=invited)).to_contain_text("billing")
    expect(page.locator("#invitations tbody tr").filter(has_text=invited)).to_contain_text("accepted")
    _mail(smtp, owner.email, "a member joined")
