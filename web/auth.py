"""Who is calling. A request authenticates with an API key (``Authorization: Bearer``)
or with the web session cookie; cookie-authenticated writes must carry the session's
CSRF token in ``X-CSRF-Token``. The request's database session is scoped to the
caller's tenant here, in one place, so views cannot forget to.

The session cookie (signed by Flask) carries two things only: the token of a server-side
session (``sid``, see `faktry.tenancy.UserSession`) and the CSRF token. Every cookie
request reads the session row, so a session that ended (log-out, log-out everywhere, a
password change, account deletion) or outlived its lifetime is refused at once, whichever
copy of the cookie is sent."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request, session

from faktry import permissions
from faktry.db import read_only
from faktry.errors import Forbidden, Unauthorized
from faktry.tenancy import (
    KeyChecker,
    Principal,
    SessionLifetime,
    User,
    authenticate_key,
    constant_time_equal,
    end_user_session,
    find_user_session,
    start_user_session,
)
from web import ratelimits

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def db() -> Any:
    """The request's session (scoped to the caller's tenant once authenticated)."""
    if "db" not in g:
        sessions = current_app.extensions["faktry"].sessions
        # A request that only reads takes no write lock on SQLite.
        g.db = read_only(sessions) if request.method in SAFE_METHODS or _joins_a_group() else sessions()
    return g.db


def writes_in_groups(view: F) -> F:
    """Mark a view whose writes may join a group (`web.submits`): while another request of
    the process writes, its session only reads, so that on SQLite it holds no write lock
    while it waits for its group."""
    view.faktry_writes_in_groups = True  # type: ignore[attr-defined]
    return view


def _joins_a_group() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    if not getattr(view, "faktry_writes_in_groups", False):
        return False
    from web.submits import alone_or_grouped

    return not alone_or_grouped()


def key_checker() -> KeyChecker:
    """This app's API key checker: its in-process key cache, its Redis, its secret key.
    Made on first use from what `create_app` built, then kept with the app."""
    extensions = current_app.extensions
    checker = extensions.get("faktry.key_checker")
    if checker is None:
        services = extensions["faktry"]
        made = KeyChecker.from_settings(services.settings, services.key_cache, services.redis)
        checker = extensions.setdefault("faktry.key_checker", made)
    return cast(KeyChecker, checker)


def session_lifetime() -> SessionLifetime:
    return SessionLifetime.from_settings(current_app.extensions["faktry"].settings)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def begin_session(sess: Any, user: User) -> dict[str, Any]:
    """Log ``user`` in on this browser: a new session row (flushed; the caller commits) and a
    new cookie with its token and a new CSRF token. Whatever the cookie named before is
    forgotten, so a session id planted before log-in is never the one logged in."""
    _, token = start_user_session(
        sess,
        user,
        session_lifetime(),
        user_agent=request.headers.get("User-Agent", ""),
        address=request.remote_addr or "",
    )
    session.clear()
    session["sid"] = token
    g.pop("faktry_session", None)
    return {
        "object": "session",
        "user_id": user.id,
        "tenant_id": user.tenant_id,
        "email_verified": user.email_verified_at is not None,
        "csrf_token": csrf_token(),
    }


def end_session(sess: Any) -> None:
    """Log out this browser: its session row goes (so every copy of the cookie stops
    working; the caller commits) and the cookie is cleared."""
    token = session.get("sid")
    if token:
        end_user_session(sess, str(token))
    session.clear()
    g.pop("faktry_session", None)


def session_user(sess: Any) -> User | None:
    """The person whose live session the cookie names, or None (a dead cookie is cleared).
    Looked up once per request."""
    if "faktry_session" in g:
        return cast(User | None, g.faktry_session)
    token = session.get("sid")
    found = find_user_session(sess, str(token), session_lifetime()) if token else None
    if found is None and session:
        session.clear()  # ended, expired, or a cookie from before sessions were kept
    g.faktry_session = found[0] if found else None
    return cast(User | None, g.faktry_session)


def _resolve() -> Principal:
    header = request.headers.get("Authorization")
    sess = db()
    if header is not None:
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("use 'Authorization: Bearer <API key>'", code="invalid_api_key")
        return authenticate_key(
            sess, presented.strip(), key_checker(), address=request.remote_addr, before_hashing=sess.commit
        )
    if session.get("sid") or session.get("user_id"):
        user = session_user(sess)
        if user is None:
            raise Unauthorized("your session has ended; log in again", code="session_expired")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent or not constant_time_equal(sent, str(session.get("csrf", ""))):
                raise Forbidden("missing or wrong X-CSRF-Token header", code="csrf_failed")
        return Principal(
            tenant_id=user.tenant_id, user_id=user.id, is_staff=user.is_staff, via="session",
            role=user.role, scopes=permissions.scopes_of(user.role),
        )  # fmt: skip
    raise Unauthorized("authentication required: an API key or a session", code="unauthenticated")


def authenticated(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = _resolve()
        guard(principal)
        sess = db()
        # Last-used stamps and the like from authentication commit with the request.
        sess.info["tenant_id"] = principal.tenant_id
        g.principal = principal
        if not getattr(view, "faktry_counted_with_submit", False):
            ratelimits.spend_for_tenant(principal.tenant_id)
        return view(*args, **kwargs)

    # The roles test finds guarded views by this mark.
    wrapper.faktry_guarded = True  # type: ignore[attr-defined]
    return cast(F, wrapper)


def guard(who: Principal) -> None:
    """The one check of what a request may do (`faktry.permissions`), for the route it is on:
    refused with ``403 insufficient_scope`` naming the scope it lacks."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    needed = permissions.required(request.method, rule)
    what = "this API key" if who.via == "api_key" else f"your role ({who.role})"
    permissions.check(who.scopes, needed, what=what)


def principal() -> Principal:
    return cast(Principal, g.principal)
