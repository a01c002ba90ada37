"""The pages the account mails lead to, in a real browser on a deployed faktry whose mail goes
to a real SMTP server on loopback: sign up, ask for the link again from the profile, open the
verification mail's link and confirm;
forget the password, ask for a link from the log-in page, set a new password with it (every
other session ends) and log in with it."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, assert_fits
from tests.mail.conftest import Received, Smtp

NEW_PASSWORD = "a new and long passphrase"


def _mail(smtp: Smtp, to: str, subject: str, seconds: float = 30) -> Received:
    deadline = time.monotonic() + seconds
    while True:
        found = [m for m in smtp.to(to) if subject in m.subject]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no mail {subject!r} to {to}: {[m.subject for m in smtp.got]}"
        time.sleep(0.1)


def _path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def test_the_verification_link_of_the_signup_mail_confirms_the_address(page: Any, site: Any, smtp: Smtp):
    email = f"verify-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_label("I am 16 years of age or older").check()
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/library")

    first = _mail(smtp, email, "Confirm your email address")
    # The profile says the address is not confirmed and sends the link again.
    page.goto("/profile")
    page.get_by_role("button", name="Send the link again").click()
    expect(page.locator("#verification-form [role=status]")).to_contain_text("on its way")
    deadline = time.monotonic() + 30
    while len(smtp.to(email)) < 2:
        assert time.monotonic() < deadline, "the second verification mail never came"
        time.sleep(0.1)
    mail = smtp.to(email)[-1]
    assert mail.token("/verify-email") != first.token("/verify-email")
    page.goto(_path(mail.link("/verify-email")))
    assert_accessible(page)
    assert_fits(page)
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page.locator("#verify-done")).to_be_visible()
    # The link works once.
    page.goto(_path(mail.link("/verify-email")))
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.goto("/profile")
    expect(page.locator("#profile-form")).to_be_visible()
    expect(page.locator("#verification-form")).to_have_count(0)


def test_a_forgotten_password_is_reset_from_the_login_page_and_ends_other_sessions(
    page: Any, site: Any, smtp: Smtp, make_person: Any
):
    person = make_person()
    elsewhere = api_session(site, person)
    assert elsewhere.get(f"{site.base}/v1/session").status_code == 200

    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/password-reset")
    assert_accessible(page)
    page.get_by_label("Email").fill(person.email)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("#reset-sent")).to_be_visible()

    mail = _mail(smtp, person.email, "Reset your faktry password")
    page.goto(_path(mail.link("/password-reset/confirm")))
    assert_accessible(page)
    assert_fits(page)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set my new password").click()
    expect(page.locator("#reset-done")).to_be_visible()
    assert elsewhere.get(f"{site.base}/v1/session").status_code == 401

    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == "/jobs")
