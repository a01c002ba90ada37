"""A real browser on a real faktry: Debian's headless Chromium (``/usr/bin/chromium``, from
the ``chromium`` package; no browser is ever downloaded) driven with Playwright, against a
faktry running in its own processes on PostgreSQL, Redis and S3 (moto).

Screenshots of the main pages are kept under ``test-artifacts/browser/``.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from aiosmtpd.controller import Controller

from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import create_tenant
from quotas import ledger
from quotas.models import MILLI
from tests import services as svc
from tests.mail.conftest import Smtp, free_port
from tests.platform import ROOT, Platform, production_platform
from tests.stripe_fake import StripeFake

CHROMIUM = os.environ.get("FAKTRY_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
PASSWORD = "correct horse battery"
# Without these, Chromium tries Google's services at every start, on a network that refuses.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
]  # fmt: skip

ANALYTICS_JS = b'window.faktrySrcAnalytics = true; document.cookie = "_fa_src=1; path=/";'


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        svc.missing("Playwright (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        svc.missing(f"Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _AnalyticsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript")
        self.send_header("Content-Length", str(len(ANALYTICS_JS)))
        self.end_headers()
        self.wfile.write(ANALYTICS_JS)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def analytics_origin() -> Iterator[str]:
    """An analytics vendor on another origin, serving its script."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnalyticsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stripe() -> Iterator[StripeFake]:
    fake = StripeFake(webhook_secret="whsec_" + uuid.uuid4().hex).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[Smtp]:
    """A real SMTP server on loopback that keeps what it is sent (tests/mail)."""
    handler = Smtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    s3_server: str,
    analytics_origin: str,
    stripe: StripeFake,
    smtp: Smtp,
) -> Iterator[Platform]:
    """faktry as deployed (PostgreSQL, Redis, S3), with analytics, Stripe and SMTP configured."""
    snippets = [
        {"name": "Vendor", "src": f"{analytics_origin}/a.js", "cookies": ["_fa_src"]},
        {
            "name": "Inline",
            "inline": 'window.faktryInlineAnalytics = true; document.cookie = "_fa_inline=1; path=/";',
            "cookies": ["_fa_in*"],
        },
    ]
    with production_platform(
        tmp_path_factory.mktemp("site"),
        s3_server,
        analytics_snippets=json.dumps(snippets),
        page_poll_ms=250,
        signup_credits=20,
        stripe_secret_key=stripe.secret_key,
        stripe_api_base=stripe.url,
        stripe_webhook_secret=stripe.webhook_secret,
        mail_smtp_host="127.0.0.1",
        mail_smtp_port=smtp.port,
        mail_smtp_tls="none",
        # The library's resumable uploads in pieces small enough that a test file has several.
        upload_chunk_bytes=1024 * 1024,
    ) as platform:
        stripe.webhook_url = f"{platform.base}/v1/billing/webhook"
        yield platform


@dataclass
class Person:
    email: str
    password: str
    tenant_id: str


@pytest.fixture(scope="module")
def make_person(site: Platform) -> Iterator[Any]:
    engine = make_engine(site.settings.resolved_database_url)
    sessions = make_sessionmaker(engine)

    def make(*, staff: bool = False, credits: int = 50, tier: str = "creator") -> Person:
        email = f"{'staff' if staff else 'person'}-{uuid.uuid4().hex[:8]}@example.com"
        with transaction(sessions) as session:
            tenant, _ = create_tenant(
                session, email=email, tier=tier, password=PASSWORD, is_staff=staff, bcrypt_rounds=4
            )
            if credits:
                ledger.add_credits(session, tenant.id, credits * MILLI, source="grant", key=f"t:{tenant.id}")
        return Person(email, PASSWORD, tenant.id)

    yield make
    engine.dispose()


@pytest.fixture
def page(chromium: Any, site: Platform, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; console errors fail the test."""
    context = chromium.new_context(base_url=site.base, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    # A choice made already, so the banner stays out of the way; the consent test clears it.
    context.add_cookies([{"name": "faktry_consent", "value": "necessary", "url": site.base}])
    page = context.new_page()
    # Bounds on waiting, not on speed: on a busy machine a reload and its API calls can take
    # more than Playwright's 5 s for `expect`; both give up after the same 20 s.
    from playwright.sync_api import expect

    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not _expected_console_error(msg.text)
            else None
        ),
    )
    yield page
    context.close()
    assert not errors, "\n".join(errors)


def _expected_console_error(text: str) -> bool:
    # Answers the test provokes on purpose (a refused sign-up, a revoked key) are logged by
    # Chromium as failed resources; script errors and CSP violations are not expected.
    return bool(re.search(r"Failed to load resource: the server responded with a status of 4\d\d", text))


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Any, person: Person, *, next_path: str = "/jobs") -> None:
    """Log in with the keyboard only: type, Tab, Enter."""
    page.goto(f"/login?next={next_path}")
    page.get_by_label("Email").focus()
    page.keyboard.type(person.email)
    page.keyboard.press("Tab")
    page.keyboard.type(person.password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == next_path)


def assert_fits(page: Any) -> None:
    """Nothing sticks out sideways: the page reads without horizontal scrolling. A phone zooms
    out to fit a page that is too wide, which makes innerWidth grow with it, so the screen's
    own width is the measure too."""
    screen = page.viewport_size["width"]
    wide, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert wide <= inner + 1 and inner <= screen, (
        f"{page.url} scrolls sideways: {wide}px wide, {inner}px in {screen}px"
    )


_A11Y = """() => {
    const problems = [];
    const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    const named = (el) => (el.labels && el.labels.length) || el.getAttribute("aria-label")
        || el.getAttribute("aria-labelledby") || el.title;
    if (!document.documentElement.lang) problems.push("html has no lang");
    if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
    if (!document.querySelector("main")) problems.push("no main landmark");
    for (const el of document.querySelectorAll("input, select, textarea")) {
        if (el.type !== "hidden" && !named(el)) problems.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
    }
    for (const el of document.querySelectorAll("button, a[href]")) {
        if (visible(el) && !(el.textContent.trim() || el.getAttribute("aria-label"))) {
            problems.push(`nameless ${el.outerHTML.slice(0, 80)}`);
        }
    }
    for (const el of document.querySelectorAll("img")) {
        if (!el.hasAttribute("alt")) problems.push(`img without alt ${el.src}`);
    }
    const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
    const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (dupes.length) problems.push(`duplicate ids ${dupes}`);
    return problems;
}"""


def assert_accessible(page: Any) -> None:
    """The basics a screen reader and a keyboard need: a language, one h1, a main landmark,
    a label on every control, a name on every button and link, alt on every image, unique ids."""
    problems = page.evaluate(_A11Y)
    assert not problems, f"{page.url}: {problems}"


@pytest.fixture
def queued_job(site: Platform, make_person: Any, png_image: Any) -> Iterator[tuple[Any, Any, str]]:
    """A free-tier person's job that stays queued: the tenant's one running slot is taken by a
    job running elsewhere. (person, their API session, the job's id)."""
    import redis

    from quotas.ratelimit import RunningSlots

    person = make_person(credits=10, tier="free")
    slots = RunningSlots(redis.Redis.from_url(site.settings.redis_url), site.settings.redis_namespace)
    assert slots.acquire(person.tenant_id, "job_running_elsewhere", limit=1, ttl_seconds=120)
    http = api_session(site, person)
    file_id = http.post(f"{site.base}/v1/files", files={"file": ("p.png", png_image.read_bytes())}).json()[
        "id"
    ]
    resize = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    job = http.post(f"{site.base}/v1/jobs", json=resize).json()
    yield person, http, job["id"]
    slots.release(person.tenant_id, "job_running_elsewhere")


def api_session(site: Platform, person: Person) -> requests.Session:
    """A person's cookie session, used the way the pages use it."""
    http = requests.Session()
    r = http.post(f"{site.base}/v1/session", json={"email": person.email, "password": person.password})
    assert r.status_code == 201
    http.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return http
