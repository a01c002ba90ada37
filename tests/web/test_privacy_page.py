"""The privacy policy at ``/privacy``: rendered from the plain text kept in the repository,
as headings, paragraphs and lists, linked from every page's footer and from sign-up; and
the balance every page shows in its header."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from quotas import ledger
from quotas.models import MILLI
from web.pages import money
from web.pages.privacy import POLICY, parse

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}
SEED = Path(__file__).resolve().parents[2].parent / "shared" / "seed" / "privacy-policy.txt"


class _Outline(HTMLParser):
    """The tags of a page's <main>, with the text each holds."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.found: list[tuple[str, str, dict[str, str | None]]] = []
        self.in_main = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main":
            self.in_main = True
        if self.in_main:
            self.stack.append(tag)
            self.found.append((tag, "", dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self.in_main = False
        if self.in_main and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.in_main and self.found and data.strip():
            tag, text, attrs = self.found[-1]
            self.found[-1] = (tag, (text + " " + data.strip()).strip(), attrs)


def outline(html: str) -> list[tuple[str, str, dict[str, str | None]]]:
    parser = _Outline()
    parser.feed(html)
    return parser.found


def test_the_policy_in_the_repository_is_the_one_the_product_publishes():
    if SEED.exists():
        assert POLICY.read_text(encoding="utf-8") == SEED.read_text(encoding="utf-8")
    assert POLICY.read_text(encoding="utf-8").startswith("Privacy Policy\n")


def test_privacy_renders_sections_as_headings_and_dashes_as_lists_for_anyone(client):
    r = client.get("/privacy", headers=HTML)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "script-src" in r.headers["Content-Security-Policy"]
    tags = outline(r.get_data(as_text=True))
    headings = [(tag, text) for tag, text, _ in tags if tag in ("h1", "h2", "h3")]
    assert headings[0] == ("h1", "Privacy Policy")
    assert [text for tag, text in headings if tag == "h2"][:3] == [
        "1. Information We Collect",
        "2. Feature-Specific Data Collection",
        "3. How We Use Your Information",
    ]
    assert len([1 for tag, _ in headings if tag == "h2"]) == 16
    assert ("h3", "1.1 Personal Information") in headings
    # Unnumbered subheadings before a list (section 5) are headings too, not paragraphs.
    assert ("h3", "Content Moderation") in headings
    assert ("h3", "Infrastructure") in headings
    # Anchors: the deletion page and the consent banner link to sections by number.
    ids = {attrs.get("id") for _, _, attrs in tags}
    assert {"section-8", "section-13", "section-1-1"} <= ids
    items = [text for tag, text, _ in tags if tag == "li"]
    assert "Your media library files are deleted" in items
    assert not any(text.startswith("- ") for _, text, _ in tags)
    paragraphs = [text for tag, text, _ in tags if tag == "p"]
    assert any(p.startswith("We do not use your content to train AI models.") for p in paragraphs)
    assert "Last updated: April 2026" in paragraphs


def test_the_policy_text_is_escaped_never_taken_as_html(app):
    from flask import render_template

    policy = parse("Title\nSummary\n1. <b>Bold</b>\n- <script>x</script>\nA line.\n")
    assert [(b.kind, b.text, b.items) for b in policy.blocks] == [
        ("h2", "1. <b>Bold</b>", ()),
        ("ul", "", ("<script>x</script>",)),
        ("p", "A line.", ()),
    ]
    with app.test_request_context():
        html = render_template("privacy.html", policy=policy, title="t", user=None, notices=[], nonce="n")
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>x" not in html
    assert parse("").blocks == () and parse("").title == ""


def test_the_footer_and_sign_up_link_to_the_policy(client, make_tenant):
    for path in ("/login", "/signup", "/privacy"):
        page = client.get(path, headers=HTML).get_data(as_text=True)
        assert '<a href="/privacy"' in page, path
    assert "privacy policy</a> says what faktry keeps" in client.get("/signup").get_data(as_text=True)
    person = make_tenant(password=PASSWORD)
    assert client.post("/v1/session", json={"email": person.email, "password": PASSWORD}).status_code == 201
    for path in ("/jobs", "/keys", "/profile", "/privacy"):
        assert '<a href="/privacy"' in client.get(path, headers=HTML).get_data(as_text=True), path


def test_the_consent_banner_links_to_the_cookie_section(settings, runtime):
    from web import create_app
    from workers.broker import BrokerSender

    snippets = '[{"name": "Vendor", "src": "https://analytics.example/a.js"}]'
    app = create_app(settings.replace(analytics_snippets=snippets), sender=BrokerSender(runtime.broker))
    try:
        page = app.test_client().get("/login", headers=HTML).get_data(as_text=True)
    finally:
        app.extensions["faktry"].sessions.kw["bind"].dispose()
    banner = page[page.index('id="consent"') :]
    assert '<a href="/privacy#section-8">' in banner


def test_every_page_shows_the_balance_in_credits_with_two_decimals_linking_to_credits(
    client, make_tenant, settings
):
    from faktry.db import make_engine, make_sessionmaker, transaction

    person = make_tenant(password=PASSWORD, credits=12)
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as session:
        ledger.add_credits(session, person.id, MILLI // 2 + 7, source="grant", key=f"half:{person.id}")
    engine.dispose()
    assert client.post("/v1/session", json={"email": person.email, "password": PASSWORD}).status_code == 201
    for path in ("/jobs", "/library", "/keys", "/profile", "/credits", "/privacy", "/webhooks"):
        page = client.get(path, headers=HTML).get_data(as_text=True)
        link = re.search(r'<a class="balance" id="balance" href="/credits">(.*?)</a>', page)
        assert link, path
        assert "Balance: </span>" in link.group(1)
        assert '<span id="balance-amount">12.50 credits</span>' in link.group(1), path


def test_people_who_are_not_logged_in_see_no_balance(client):
    for path in ("/login", "/signup", "/privacy", "/account/deleted"):
        assert 'id="balance"' not in client.get(path, headers=HTML).get_data(as_text=True)


def test_money_is_credits_with_two_decimals_rounded_down():
    assert money(0) == "0.00 credits"
    assert money(12_507) == "12.50 credits"
    assert money(1_234_560) == "1,234.56 credits"
    assert money(9) == "0.00 credits"
    assert money(-1_500) == "-1.50 credits"


def test_the_header_balance_costs_one_query_and_matches_what_the_api_calls_available(
    app, client, make_tenant
):
    from sqlalchemy import event

    person = make_tenant(password=PASSWORD, credits=3)
    assert client.post("/v1/session", json={"email": person.email, "password": PASSWORD}).status_code == 201
    engine = app.extensions["faktry"].sessions.kw["bind"]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        page = client.get("/keys", headers=HTML).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len([s for s in statements if "credit_lots" in s]) == 1
    available = client.get("/v1/account").json["credits"]["available"]
    assert f'<span id="balance-amount">{money(available)}</span>' in page
    assert money(available) == "3.00 credits"
