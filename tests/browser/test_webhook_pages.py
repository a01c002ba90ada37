"""The webhooks page in a real browser, against faktry in real processes: an endpoint added
with its events ticked shows its secret; "Send test" reaches a loopback receiver that
first answers 500, and the log follows the retry to the 200 with both attempts; the
delivery verifies with the secret the page showed; "Send again" delivers it once more;
the endpoint is disabled, then deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from pipelines.webhooks import signing
from tests.browser.conftest import assert_accessible, assert_fits, log_in, shot
from tests.platform import Platform, production_platform
from tests.webhooks.conftest import Receiver, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Platform]:
    """faktry as deployed, whose webhooks may reach loopback and retry at once."""
    with production_platform(
        tmp_path_factory.mktemp("site"),
        s3_server,
        page_poll_ms=250,
        webhook_allow_loopback=True,
        webhook_retry_schedule="0.2,0.2,0.2",
    ) as platform:
        yield platform


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve() as state:
        yield state


def test_an_endpoint_is_added_tested_through_a_retry_redelivered_disabled_and_deleted(
    page, site: Platform, make_person, receiver: Receiver, tmp_path: Path
):
    person = make_person(credits=5)
    receiver.script = [500, 200]
    log_in(page, person, next_path="/webhooks")
    expect(page.get_by_role("link", name="Webhooks", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.locator("#hooks-status")).to_have_text("No endpoints yet.")
    assert_accessible(page)

    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_label("Description").fill("orders")
    page.get_by_label("webhook.test").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret_box = page.locator("#new-secret-value")
    expect(page.locator("#hooks tbody tr")).to_have_count(1)
    secret = secret_box.input_value()
    assert secret.startswith("whsec_")
    row = page.locator("#hooks tbody tr")
    expect(row).to_contain_text("webhook.test")
    expect(row).to_contain_text("enabled")

    page.get_by_role("button", name="Send test orders").click()
    message = page.locator("#messages tbody tr")
    expect(message).to_have_attribute("data-status", "delivered")
    expect(message.locator("ol.attempts li")).to_have_count(2)
    expect(message.locator("ol.attempts li").first).to_contain_text("500")
    expect(message.locator("ol.attempts li").last).to_contain_text("200")
    shot(page, "webhooks-log")
    assert_fits(page)
    assert len(receiver.got) == 2
    got = receiver.got[-1]
    assert signing.verify(secret, got.headers, got.body, now=int(got.headers["webhook-timestamp"]))
    assert json.loads(got.body)["type"] == "webhook.test"

    page.get_by_role("button", name="Send again webhook.test").click()
    expect(message.locator("ol.attempts li")).to_have_count(3)
    expect(message).to_have_attribute("data-status", "delivered")
    assert len(receiver.got) == 3 and receiver.got[-1].headers["webhook-id"] == got.headers["webhook-id"]

    page.get_by_role("button", name="Disable orders").click()
    expect(row).to_have_attribute("data-enabled", "false")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete orders").click()
    expect(page.locator("#hooks-status")).to_have_text("No endpoints yet.")
