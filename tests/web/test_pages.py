"""The pages for people, as HTTP: who may see what, tenant isolation, and the headers that
keep pages safe. What the pages do in a browser is in tests/browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from faktry.config import Settings
from tests import services as svc
from tests.web.helpers import upload

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
PEOPLE_PAGES = [
    "/jobs",
    "/jobs/new",
    "/library",
    "/credits",
    "/keys",
    "/webhooks",
    "/profile",
    "/billing/success",
    "/billing/cancel",
]
CONSOLE_PAGES = ["/admin", "/admin/dead-letters", "/admin/moderation", "/admin/tenants"]
HTML = {"Accept": "text/html"}


def log_in(client, handle) -> str:
    r = client.post("/v1/session", json={"email": handle.email, "password": PASSWORD})
    assert r.status_code == 201
    return str(r.json["csrf_token"])


@pytest.mark.parametrize("path", PEOPLE_PAGES + CONSOLE_PAGES)
def test_pages_send_people_without_a_session_to_log_in_and_back(client, path):
    r = client.get(path, headers=HTML)
    assert r.status_code == 302
    assert r.headers["Location"] == f"/login?next={path}"


def test_log_in_returns_only_to_a_page_of_this_site(client):
    for target, expected in [
        ("/keys", "/keys"),
        ("https://evil.example/", "/jobs"),
        ("//evil.example/x", "/jobs"),
        ("/\\evil.example", "/jobs"),
        # Browsers drop tabs and newlines: "/\t//evil.example" would be "//evil.example".
        ("/\t///evil.example/x", "/jobs"),
        ("/\n/evil.example", "/jobs"),
        ("/\t/x", "/jobs"),
        ("https://evil.example/jobs", "/jobs"),
        ("/jobs?status=failed", "/jobs?status=failed"),
    ]:
        page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
        assert f'data-next="{expected}"' in page


def test_every_page_renders_for_a_person_with_the_csrf_token_and_no_api_key(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    token = log_in(client, person)
    for path in PEOPLE_PAGES:
        r = client.get(path, headers=HTML)
        assert r.status_code == 200, path
        page = r.get_data(as_text=True)
        assert f'<meta name="csrf-token" content="{token}">' in page
        assert person.key not in page and "fk_live_" not in page
        assert 'aria-current="page"' in page  # the navigation says where one is
        assert "Console" not in page  # no console link for people who are not staff
    assert client.get("/", headers=HTML).headers["Location"] == "/jobs"
    assert client.get("/login", headers=HTML).headers["Location"] == "/jobs"


def test_the_console_is_for_staff_only(client, make_tenant):
    log_in(client, make_tenant(password=PASSWORD))
    for path in CONSOLE_PAGES:
        r = client.get(path, headers=HTML)
        assert r.status_code == 403 and "for faktry staff" in r.get_data(as_text=True)
    client.delete("/v1/session", headers={"X-CSRF-Token": client.get("/v1/session").json["csrf_token"]})
    log_in(client, make_tenant(password=PASSWORD, admin=True))
    for path in CONSOLE_PAGES:
        r = client.get(path, headers=HTML)
        assert r.status_code == 200 and 'href="/admin"' in r.get_data(as_text=True)


def test_a_job_page_of_another_tenant_is_not_found(client, make_tenant, png_image):
    owner = make_tenant(password=PASSWORD)
    file_id = upload(client, owner, png_image).json["id"]
    job = client.post(
        "/v1/jobs",
        json={"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}},
        headers=owner.headers,
    ).json
    log_in(client, owner)
    assert client.get(f"/jobs/{job['id']}", headers=HTML).status_code == 200
    client.delete("/v1/session", headers={"X-CSRF-Token": client.get("/v1/session").json["csrf_token"]})
    log_in(client, make_tenant(password=PASSWORD))
    for path in (f"/jobs/{job['id']}", "/jobs/job_nope", "/jobs/fil_x"):
        r = client.get(path, headers=HTML)
        assert r.status_code == 404 and job["id"] not in r.get_data(as_text=True).replace(path, "")
    # The pages' data comes from the API, which answers the same way.
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.get(f"/v1/files/{file_id}").status_code == 404


def test_pages_carry_a_content_security_policy_whose_nonce_is_on_every_script(client):
    r = client.get("/login")
    policy = r.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    page = r.get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all(f'nonce="{nonce}"' in s or 'type="application/json"' in s for s in scripts)
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/login").headers["Content-Security-Policy"] != policy  # a fresh nonce each time


def test_an_unknown_page_is_an_html_404_and_the_api_stays_json(client, make_tenant):
    r = client.get("/no-such-page", headers=HTML)
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    log_in(client, make_tenant(password=PASSWORD))
    assert "Log out" in client.get("/no-such-page", headers=HTML).get_data(as_text=True)
    r = client.get("/v1/no-such-thing", headers=HTML)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


SNIPPETS = [
    {
        "name": "Vendor",
        "src": "https://analytics.example/a.js",
        "attrs": {"data-site": "x"},
        "cookies": ["_v*"],
    },
    {"name": "Inline", "inline": "window.x = 1;", "origins": ["https://tag.example"]},
]


def test_analytics_snippets_are_data_for_the_consent_script_never_scripts_in_the_page(settings, runtime):
    from web import create_app
    from workers.broker import BrokerSender

    app = create_app(
        settings.replace(analytics_snippets=json.dumps(SNIPPETS)), sender=BrokerSender(runtime.broker)
    )
    r = app.test_client().get("/login")
    page = r.get_data(as_text=True)
    assert "<script nonce" in page and 'https://analytics.example/a.js"' not in re.sub(
        r'<script type="application/json".*?</script>', "", page, flags=re.S
    )
    data = json.loads(
        re.search(
            r'<script type="application/json" id="analytics-snippets">(.*?)</script>', page, re.S
        ).group(1)
    )
    assert [s["name"] for s in data] == ["Vendor", "Inline"]
    assert 'id="consent"' in page and 'id="consent-open"' in page
    policy = r.headers["Content-Security-Policy"]
    assert "https://analytics.example" in policy and "https://tag.example" in policy
    # Once a choice is made, the banner starts hidden.
    client = app.test_client()
    client.set_cookie("faktry_consent", "necessary")
    assert re.search(r'id="consent"[^>]*hidden', client.get("/login").get_data(as_text=True))


def test_without_analytics_there_is_no_banner(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'id="consent"' not in page and "analytics-snippets" not in page


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"name": "x"}',
        '[{"src": "https://a.example/x.js"}]',
        '[{"name": "x"}]',
        '[{"name": "x", "src": "https://a/x.js", "inline": "1"}]',
        '[{"name": "x", "src": "javascript:alert(1)"}]',
        '[{"name": "x", "inline": "</script><script>alert(1)"}]',
        '[{"name": "x", "src": "/a.js", "attrs": {"onload": "alert(1)"}}]',
        '[{"name": "x", "src": "/a.js", "origins": ["*"]}]',
        '[{"name": "x", "src": "/a.js", "cookies": ["a;b"]}]',
        '[{"name": "x", "src": "/a.js", "colour": "red"}]',
    ],
)
def test_bad_analytics_settings_stop_the_app_at_start(settings: Settings, runtime, raw):
    from web import create_app
    from workers.broker import BrokerSender

    with pytest.raises(ValueError):
        create_app(settings.replace(analytics_snippets=raw), sender=BrokerSender(runtime.broker))


def test_sign_up_grants_the_configured_starter_credits_once(settings, runtime):
    from web import create_app
    from workers.broker import BrokerSender

    app = create_app(settings.replace(signup_credits=7), sender=BrokerSender(runtime.broker))
    client = app.test_client()
    r = client.post(
        "/v1/signup", json={"email": "new@example.com", "password": PASSWORD, "confirm_age_16": True}
    )
    assert r.status_code == 202
    login = client.post("/v1/session", json={"email": "new@example.com", "password": PASSWORD})
    assert login.status_code == 201
    credits = client.get("/v1/account").json["credits"]
    assert credits["available"] == 7000 and [lot["source"] for lot in credits["lots"]] == ["starter"]


def test_session_cookies_are_http_only_same_site_and_secure_behind_https(settings, runtime):
    from web import create_app
    from workers.broker import BrokerSender

    body = {"email": "c@example.com", "password": PASSWORD, "confirm_age_16": True}
    for base_url, secure in (("", False), ("https://faktry.example", True)):
        app = create_app(settings.replace(base_url=base_url), sender=BrokerSender(runtime.broker))
        login = {**body, "email": f"{secure}{body['email']}"}
        assert app.test_client().post("/v1/signup", json=login).status_code == 202
        del login["confirm_age_16"]
        cookie = app.test_client().post("/v1/session", json=login)
        header = cookie.headers["Set-Cookie"]
        assert "HttpOnly" in header and "SameSite=Lax" in header
        assert ("Secure" in header) is secure


def test_a_cross_site_form_cannot_log_in_or_sign_up(client, make_tenant):
    """Forms from other sites can only send form encodings; log-in and sign-up take JSON."""
    person = make_tenant(password=PASSWORD)
    for path, data in (
        ("/v1/session", {"email": person.email, "password": PASSWORD}),
        ("/v1/signup", {"email": "x@example.com", "password": PASSWORD, "confirm_age_16": "true"}),
    ):
        r = client.post(path, data=data)
        assert r.status_code == 422 and "Set-Cookie" not in r.headers


def test_the_account_tells_the_upload_limit_that_applies_here(client, make_tenant, app):
    person = make_tenant("studio")
    tier_limit = client.get("/v1/account", headers=person.headers).json["limits"]["max_upload_bytes"]
    svc = app.extensions["faktry"]
    svc.settings = svc.settings.replace(max_upload_bytes=1234)
    assert tier_limit > 1234
    assert client.get("/v1/account", headers=person.headers).json["limits"]["max_upload_bytes"] == 1234


def test_the_documented_analytics_example_is_a_valid_setting():
    from web.pages import consent

    doc = (Path(__file__).parents[2] / "docs" / "web.md").read_text()
    raw = re.search(r"FAKTRY_ANALYTICS_SNIPPETS='(\[.*?\])'", doc, re.S).group(1)
    snippets = consent.parse(raw)
    assert [s.name for s in snippets] == ["Google Analytics", "gtag config", "Hotjar"]
    assert "https://*.hotjar.com" in snippets[2].script_origins()


def test_a_logged_in_person_is_redirected_only_within_the_site(client, make_tenant):
    log_in(client, make_tenant(password=PASSWORD))
    for target in ("/\t///evil.example/x", "//evil.example", "/\t/x"):
        assert client.get("/login", query_string={"next": target}).headers["Location"] == "/jobs"
    assert client.get("/login", query_string={"next": "/keys"}).headers["Location"] == "/keys"


def test_every_page_module_is_on_the_blueprint_before_any_app_registers_it(tmp_path):
    """A module that adds pages must be imported by ``web.pages`` itself: registering the
    blueprint on any app (a test's bare one) and building the real app afterwards must both
    work, in a fresh interpreter where nothing was imported before."""
    import subprocess
    import sys

    script = (
        "from flask import Flask\n"
        "from web import pages\n"
        "bare = Flask('bare'); bare.register_blueprint(pages.blueprint)\n"
        "from pathlib import Path\nfrom faktry.config import Settings\n"
        "from web import create_app\n"
        f"app = create_app(Settings(var_dir=Path({str(tmp_path / 'var')!r}), secret_key='s', "
        f"database_url={'sqlite:///' + str(tmp_path / 'f.db')!r}, redis_url={svc.REDIS_URL!r}))\n"
        "ours = {r.rule for r in bare.url_map.iter_rules()} - {'/static/<path:filename>'}\n"
        "assert ours <= {r.rule for r in app.url_map.iter_rules()}, ours\n"
        "print(len(ours))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) > 10
