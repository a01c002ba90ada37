"""Pages for people: plain server-rendered HTML, with a little JavaScript that calls the same
``/v1`` API as every client, with the session cookie and its CSRF token.

The pages hold no business rule of their own: prices, limits, tenancy and money all come
from the API. What the server does here is decide who may see a page (a person with a
session; staff for the console), look up what a URL names within the person's tenant (so a
job page of another tenant is a 404, as on the API), and set the headers that keep pages
safe (a Content-Security-Policy with a per-response nonce, no framing, no sniffing).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from faktry import clock, permissions
from faktry.errors import NotFound
from faktry.tenancy import User
from pipelines import services as jobs
from pipelines.webhooks import endpoints as webhook_endpoints
from quotas.models import CreditLot
from web.auth import csrf_token, db, session_user
from web.pages import consent

blueprint = Blueprint("pages", __name__)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Analytics:
    """The configured snippets, as each page needs them: parsed and rendered once."""

    settings: object
    #: The snippets as JSON for the consent script (no "<" at all: nothing in it can close
    #: or open a tag inside <script>); empty when there are none.
    json: str
    #: Their origins, for the Content-Security-Policy.
    origins: str


def _analytics() -> _Analytics:
    settings = current_app.extensions["faktry"].settings
    cached: _Analytics | None = current_app.extensions.get("faktry_analytics")
    if cached is None or cached.settings is not settings:
        snippets = consent.parse(settings.analytics_snippets)
        cached = _Analytics(
            settings=settings,
            json=json.dumps([s.to_dict() for s in snippets]).replace("<", "\\u003c") if snippets else "",
            origins=" ".join(sorted({o for s in snippets for o in s.script_origins()})),
        )
        current_app.extensions["faktry_analytics"] = cached
    return cached


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to somewhere else. Browsers drop
    tabs and newlines from URLs and read a backslash as a slash, so none may appear; the
    result is checked again after parsing."""
    if not target or any(ord(c) < 32 or c in "\\\x7f" for c in target):
        return "/jobs"
    parts = urlsplit(target)
    out = parts.path + (f"?{parts.query}" if parts.query else "")
    if parts.scheme or parts.netloc or not out.startswith("/") or out.startswith("//"):
        return "/jobs"
    return out


def person(view: F) -> F:
    """A page for someone logged in; others are sent to log in and brought back."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sess = db()
        user = session_user(sess)
        if user is None:
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        sess.info["tenant_id"] = user.tenant_id
        g.user = user
        # The same check as the API's (faktry/permissions.py), for the page's path.
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        needed = permissions.required("GET", rule)
        if needed not in (None, permissions.SELF, permissions.STAFF) and needed not in _scopes(user):
            message = (
                f"Your role in this account ({user.role}) does not include this page: it needs the scope "
                f"{needed}. An owner or admin of the account can change your role."
            )
            return render("error.html", title="Not for your role", message=message), 403
        return view(*args, **kwargs)

    wrapper.faktry_person = True  # type: ignore[attr-defined]
    return cast(F, wrapper)


def _scopes(user: User | None) -> frozenset[str]:
    return permissions.scopes_of(user.role) if user is not None else frozenset()


def staff(view: F) -> F:
    """A page of the operators' console: staff only, everyone else gets a 403 page."""

    @person
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_staff:
            return render("error.html", title="Staff only", message="This page is for faktry staff."), 403
        return view(*args, **kwargs)

    return cast(F, wrapper)


def render(template: str, **context: Any) -> str:
    settings = current_app.extensions["faktry"].settings
    analytics = _analytics()
    if "user" not in g:
        # Pages without @person (log-in, error pages); an error page renders even when the
        # database is what failed.
        try:
            g.user = session_user(db())
        except Exception:
            g.user = None
    user: User | None = g.user
    return render_template(
        template,
        user=user,
        notices=_notices(user),
        balance=_balance(user),
        csrf=csrf_token() if user is not None else "",
        nonce=_nonce(),
        poll_ms=settings.page_poll_ms,
        upload_chunk_bytes=settings.upload_chunk_bytes,
        analytics=analytics.json,
        has_analytics=bool(analytics.json),
        scopes=_scopes(user),
        scope_names=permissions.SCOPES,
        consent=request.cookies.get("faktry_consent"),
        **context,
    )


def _notices(user: User | None) -> list[dict[str, Any]]:
    """What every page tells the person at its top (an endpoint the platform turned off);
    none when the database cannot say (an error page still renders)."""
    if user is None:
        return []
    try:
        return webhook_endpoints.notices(db(), user.tenant_id)
    except Exception:
        return []


def _balance(user: User | None) -> str | None:
    """The credits the person can spend, for the header: "12.50 credits", rounded down so
    it never shows more than there is. One query, the sum `quotas.ledger.balances` calls
    available; none when the database cannot say (an error page still renders)."""
    if user is None:
        return None
    try:
        milli = db().scalar(
            select(func.coalesce(func.sum(CreditLot.remaining), 0)).where(
                CreditLot.tenant_id == user.tenant_id,
                CreditLot.remaining > 0,
                CreditLot.expires_at > clock.now(),
            )
        )
    except Exception:
        return None
    return money(int(milli or 0))


def money(milli: int) -> str:
    """Millicredits as people read them on pages: credits with two decimals ("1,234.50
    credits"), rounded down (toward zero) like ``faktry.money`` in faktry.js."""
    sign = "-" if milli < 0 else ""
    cents = abs(milli) // 10
    return f"{sign}{cents // 100:,}.{cents % 100:02d} credits"


def _nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def page_headers(response: Any) -> Any:
    """Headers for every HTML response of the app (pages and error pages)."""
    if response.mimetype != "text/html":
        return response
    origins = _analytics().origins
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' 'nonce-{_nonce()}' {origins}; "
        f"connect-src 'self' {origins}; img-src * data: blob:; media-src * blob:; "
        "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


# -- people ---------------------------------------------------------------------------------


@blueprint.get("/")
def home() -> Any:
    return redirect(url_for("pages.jobs_list" if session_user(db()) else "pages.login"))


@blueprint.get("/login")
def login() -> Any:
    target = _safe_next(request.args.get("next"))
    if session_user(db()) is not None:
        return redirect(target)
    return render("login.html", title="Log in", next=target)


@blueprint.get("/signup")
def signup() -> Any:
    if session_user(db()) is not None:
        return redirect(url_for("pages.jobs_list"))
    return render("signup.html", title="Sign up")


@dataclass(frozen=True)
class Page:
    """A page whose content the browser fetches from the API: only the shell is rendered here."""

    path: str
    endpoint: str
    template: str
    title: str
    active: str
    staff: bool = False
    extra: tuple[tuple[str, str], ...] = ()


PAGES = [
    Page("/library", "library", "library.html", "Library", "library"),
    Page("/jobs", "jobs_list", "jobs.html", "Jobs", "jobs"),
    Page("/credits", "credits", "credits.html", "Credits", "credits"),
    Page("/billing/success", "billing_success", "billing_return.html", "Thank you", "credits",
         extra=(("outcome", "success"),)),
    Page("/billing/cancel", "billing_cancel", "billing_return.html", "Checkout canceled", "credits",
         extra=(("outcome", "cancel"),)),
    Page("/keys", "keys", "keys.html", "API keys", "keys"),
    # The operators' console.
    Page("/admin", "admin_queues", "admin/queues.html", "Queues", "admin", True, (("section", "queues"),)),
    Page("/admin/dead-letters", "admin_dead_letters", "admin/dead_letters.html", "Dead letters", "admin",
         True, (("section", "dead"),)),
    Page("/admin/moderation", "admin_moderation", "admin/moderation.html", "Moderation log", "admin",
         True, (("section", "moderation"),)),
    Page("/admin/tenants", "admin_tenants", "admin/tenants.html", "Tenants", "admin", True,
         (("section", "tenants"),)),
]  # fmt: skip


def _shell(page: Page) -> Callable[[], Any]:
    def view() -> Any:
        return render(page.template, title=page.title, active=page.active, **dict(page.extra))

    view.__name__ = page.endpoint
    return staff(view) if page.staff else person(view)


for _page in PAGES:
    blueprint.add_url_rule(_page.path, _page.endpoint, _shell(_page), methods=["GET"])


@blueprint.get("/jobs/new")
@person
def job_new() -> Any:
    # ``type``, ``model`` and ``prompt`` pre-fill the form ("Use this prompt" in the gallery).
    return render(
        "job_new.html",
        title="New job",
        active="jobs",
        preset_file=request.args.get("file", ""),
        preset_type=request.args.get("type", ""),
        preset_model=request.args.get("model", ""),
        preset_prompt=request.args.get("prompt", ""),
    )


@blueprint.get("/profile")
@person
def profile() -> Any:
    hours = current_app.extensions["faktry"].settings.export_archive_hours
    days = hours / 24
    span = f"{days:g} day{'s' if days != 1 else ''}" if days == int(days) else f"{hours:g} hours"
    return render("profile.html", title="Profile", active="profile", export_days=span)


@blueprint.get("/members")
@person
def members() -> Any:
    days = current_app.extensions["faktry"].settings.invitation_days
    span = f"{days:g} day{'s' if days != 1 else ''}"
    return render("members.html", title="Members", active="members", invitation_days=span)


@blueprint.get("/audit-log")
@person
def audit_log() -> Any:
    from pipelines.audit.log import ACTIONS

    return render("audit_log.html", title="Audit log", active="audit", actions=ACTIONS)


@blueprint.get("/jobs/<job_id>")
@person
def job_detail(job_id: str) -> Any:
    try:
        job = jobs.get_job(db(), job_id)
    except NotFound:
        return render("error.html", title="Not found", message="There is no such job."), 404
    from pipelines.gallery import store as gallery

    return render(
        "job.html",
        title=f"Job {job.id}",
        active="jobs",
        job_id=job.id,
        # A generation job with a prompt may be published once it has succeeded.
        publishable=job.type in gallery.PUBLISHABLE,
        gallery_categories=gallery.CATEGORIES,
        max_display_name=gallery.MAX_DISPLAY_NAME,
    )


# Pages in modules of their own register on this blueprint when imported.
from web.pages import account_mail as _account_mail  # noqa: E402,F401
from web.pages import brands as _brands  # noqa: E402,F401
from web.pages import checkout as _checkout  # noqa: E402,F401
from web.pages import gallery as _gallery  # noqa: E402,F401
from web.pages import invitations as _invitations  # noqa: E402,F401
from web.pages import privacy as _privacy  # noqa: E402,F401
from web.pages import projects as _projects  # noqa: E402,F401
from web.pages import webhooks as _webhooks  # noqa: E402,F401
from web.pages import workflows as _workflows  # noqa: E402,F401
